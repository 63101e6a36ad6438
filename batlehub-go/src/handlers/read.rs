//! Reads: `@v/list`, `@latest`, `.info`, `.mod` and `.zip`, from the local index or an
//! upstream GOPROXY, with policy applied on the way out: versions refused by policy are
//! absent from `@v/list` and `@latest`, and a request naming one is refused with the reason.

use std::cmp::Ordering;

use batlehub_core::body::Body;
use batlehub_core::model::{Decision, VersionRecord};
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Error, Permission, Result};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::handlers::{JSON, TEXT, ZIP, proxy, unknown_module, unknown_version};
use crate::name::{ModulePath, Version};
use crate::routes::Ext;
use crate::wire::{self, Info};

/// Orders versions as the go command does (semver; invalid ones first).
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok();
    parse(a).cmp(&parse(b))
}

/// The versions of a module before policy (stored form, no `v`), each with its publish
/// time when known, and whether they came from a stale copy of the upstream's list.
async fn all_versions(cx: &Cx, m: &ModulePath) -> Result<(Vec<VersionFacts>, bool)> {
    let key = m.as_str();
    if cx.is_local(key).await? {
        let Some(pkg) = cx.registry.local_package(key).await? else {
            return Err(unknown_module(m));
        };
        let facts = pkg
            .versions
            .iter()
            .filter(|v| !v.yanked)
            .map(VersionFacts::of)
            .collect();
        return Ok((facts, false));
    }
    let Some((versions, stale)) = proxy::list(cx, m).await? else {
        return Err(unknown_module(m));
    };
    let mut facts: Vec<VersionFacts> = versions
        .iter()
        .map(|v| VersionFacts {
            version: v.stored().to_owned(),
            published_at: None,
        })
        .collect();
    cx.registry
        .learn_publish_times(
            &cx.caller,
            key,
            &mut facts,
            proxy::MAX_TIME_LOOKUPS,
            compare,
            |stored| async move {
                let v = Version::from_stored(&stored).ok()?;
                proxy::info(cx, m, &v)
                    .await
                    .ok()
                    .flatten()?
                    .0
                    .published_at()
            },
        )
        .await?;
    Ok((facts, stale))
}

/// The versions policy lets this caller see, oldest first.
async fn visible_versions(cx: &Cx, m: &ModulePath) -> Result<(Vec<VersionFacts>, bool)> {
    let (mut facts, stale) = all_versions(cx, m).await?;
    let decisions = cx
        .registry
        .version_decisions(&cx.caller, m.as_str(), &facts)
        .await?;
    let mut keep = decisions.iter().map(|d| matches!(d, Decision::Allow));
    facts.retain(|_| keep.next().unwrap_or(false));
    facts.sort_by(|a, b| compare(&a.version, &b.version));
    Ok((facts, stale))
}

/// `GET {module}/@v/list`.
pub(crate) async fn list(cx: &Cx, m: &ModulePath) -> Result<Response<Body>> {
    cx.registry
        .check_package(&cx.caller, Permission::ReleasesRead, m.as_str())
        .await?;
    let (facts, stale) = visible_versions(cx, m).await?;
    let body = wire::list(
        facts
            .iter()
            .filter_map(|f| Version::from_stored(&f.version).ok())
            .filter(|v| !v.is_pseudo())
            .map(|v| v.as_str().to_owned())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let mut resp = protocol::typed(StatusCode::OK, TEXT, Bytes::from(body));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// `GET {module}/@latest`: the newest release policy lets through (the newest pre-release
/// when there is none); `404` when none is left.
pub(crate) async fn latest(cx: &Cx, m: &ModulePath) -> Result<Response<Body>> {
    let key = m.as_str();
    cx.registry
        .check_package(&cx.caller, Permission::ReleasesRead, key)
        .await?;
    cx.registry.check_tag(&cx.caller, key, "latest")?;
    let (facts, stale) = visible_versions(cx, m).await?;
    let versions: Vec<(Version, &VersionFacts)> = facts
        .iter()
        .filter_map(|f| Version::from_stored(&f.version).ok().map(|v| (v, f)))
        .collect();
    let pick = versions
        .iter()
        .rev()
        .find(|(v, _)| !v.is_prerelease())
        .or_else(|| versions.iter().rev().find(|(v, _)| !v.is_pseudo()))
        .or_else(|| versions.last());
    let Some((v, f)) = pick else {
        return Err(Error::NotFound(format!(
            "module {m}: no version is available (none published, or every one is refused by policy)"
        )));
    };
    let info = match f.published_at {
        Some(at) => Info::new(v.as_str(), Some(at)),
        None if cx.is_local(key).await? => Info::new(v.as_str(), None),
        None => proxy::info(cx, m, v)
            .await?
            .map_or_else(|| Info::new(v.as_str(), None), |(i, _)| i),
    };
    let mut resp = protocol::typed(StatusCode::OK, JSON, Bytes::from(info.to_json()));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// `GET {module}/@v/{version}.{info,mod,zip}`.
pub(crate) async fn file(cx: &Cx, m: &ModulePath, v: &Version, ext: Ext) -> Result<Response<Body>> {
    let key = m.as_str();
    let permission = match ext {
        Ext::Zip => Permission::SourceRead,
        Ext::Info | Ext::Mod => Permission::ReleasesRead,
    };
    // Refuse anonymous callers before touching any upstream.
    cx.registry
        .authorize(cx.identity(), permission, Some(key))?;
    if cx.is_local(key).await? {
        let record = cx
            .registry
            .local()
            .version(key, v.stored())
            .await?
            .ok_or_else(|| unknown_version(m, v))?;
        return local_file(cx, m, v, ext, &record, permission).await;
    }
    if m.check_version(v).is_err() {
        return Err(unknown_version(m, v));
    }
    let (info, stale) = proxy::info(cx, m, v)
        .await?
        .ok_or_else(|| unknown_version(m, v))?;
    let facts = VersionFacts {
        version: v.stored().to_owned(),
        published_at: info.published_at(),
    };
    let mut resp = match ext {
        Ext::Info => {
            allowed(cx, key, permission, &facts).await?;
            protocol::typed(StatusCode::OK, JSON, Bytes::from(info.to_json()))
        }
        Ext::Mod => {
            allowed(cx, key, permission, &facts).await?;
            let (go_mod, _) = proxy::go_mod(cx, m, v)
                .await?
                .ok_or_else(|| unknown_version(m, v))?;
            protocol::typed(StatusCode::OK, TEXT, go_mod)
        }
        Ext::Zip => {
            cx.registry
                .check_download(&cx.caller, permission, key, &facts)
                .await?;
            let artifact = proxy::zip(cx, m, v).await?;
            protocol::artifact(artifact, ZIP, cx.audience())
        }
    };
    if ext != Ext::Zip {
        protocol::mark_stale(&mut resp, stale);
    }
    Ok(resp)
}

/// A local version's file.
async fn local_file(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    ext: Ext,
    record: &VersionRecord,
    permission: Permission,
) -> Result<Response<Body>> {
    let key = m.as_str();
    let facts = VersionFacts::of(record);
    if ext == Ext::Info {
        allowed(cx, key, permission, &facts).await?;
        let info = Info::new(v.as_str(), Some(record.published_at));
        return Ok(protocol::typed(
            StatusCode::OK,
            JSON,
            Bytes::from(info.to_json()),
        ));
    }
    let name = format!("{v}.{}", ext.as_str());
    let file = record
        .files
        .iter()
        .find(|f| f.filename == name)
        .ok_or_else(|| unknown_version(m, v))?;
    let content_type = if ext == Ext::Zip {
        cx.registry
            .check_download(&cx.caller, permission, key, &facts)
            .await?;
        ZIP
    } else {
        allowed(cx, key, permission, &facts).await?;
        TEXT
    };
    Ok(protocol::artifact(
        cx.registry.open_blob(&file.sha256).await?,
        content_type,
        cx.audience(),
    ))
}

/// Package access and version rules for metadata (not audited as a download).
async fn allowed(cx: &Cx, key: &str, permission: Permission, facts: &VersionFacts) -> Result<()> {
    cx.registry
        .check_package(&cx.caller, permission, key)
        .await?;
    let decisions = cx
        .registry
        .version_decisions(&cx.caller, key, std::slice::from_ref(facts))
        .await?;
    match decisions.into_iter().next() {
        Some(Decision::Deny(d)) => Err(Error::Denied(d)),
        _ => Ok(()),
    }
}
