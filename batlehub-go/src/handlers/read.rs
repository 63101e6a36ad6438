//! Reads: `@v/list`, `@latest`, `.info`, `.mod` and `.zip`, from the local index or an
//! upstream GOPROXY, with policy applied on the way out: versions refused by policy are
//! absent from `@v/list` and `@latest`, and a request naming one is refused with the reason.

use std::sync::Arc;

use batlehub_core::body::Body;
use batlehub_core::model::{Decision, VersionRecord};
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Error, Permission, Result};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::handlers::versions::{PreparedList, compare, render};
use crate::handlers::{JSON, TEXT, ZIP, proxy, unknown_module, unknown_version};
use crate::name::{ModulePath, Version};
use crate::routes::Ext;
use crate::wire::Info;

/// A module's prepared versions, whether they came from a stale copy of the upstream's
/// list, and whether the module is served from the local index.
async fn prepared(cx: &Cx, m: &ModulePath) -> Result<(Arc<PreparedList>, bool, bool)> {
    let key = m.as_str();
    if cx.is_local(key).await? {
        let Some(pkg) = cx.registry.local_package(key).await? else {
            return Err(unknown_module(m));
        };
        let memo_key = format!("go-local:{}:{key}", cx.registry.name());
        let weight = pkg.versions.len().saturating_mul(160);
        let prepared = cx.registry.memo().derived(memo_key, &pkg, weight, |pkg| {
            let facts = pkg
                .versions
                .iter()
                .filter(|v| !v.yanked)
                .map(VersionFacts::of)
                .collect();
            Ok::<_, Error>(PreparedList::new(facts))
        })?;
        return Ok((prepared, false, true));
    }
    let Some((prepared, stale)) = proxy::list(cx, m).await? else {
        return Err(unknown_module(m));
    };
    Ok((prepared, stale, false))
}

/// Which of `prepared`'s versions policy lets this caller see (`None`: all of them), with
/// their facts (upstream publish times learned when a release-age gate needs them).
async fn allowed_versions(
    cx: &Cx,
    m: &ModulePath,
    prepared: &PreparedList,
    local: bool,
) -> Result<(Option<Vec<bool>>, Vec<VersionFacts>)> {
    let key = m.as_str();
    let mut facts = prepared.facts.clone();
    if !local {
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
    }
    let decisions = cx
        .registry
        .version_decisions(&cx.caller, key, &facts)
        .await?;
    if decisions.iter().all(|d| matches!(d, Decision::Allow)) {
        return Ok((None, facts));
    }
    let allowed = decisions
        .iter()
        .map(|d| matches!(d, Decision::Allow))
        .collect();
    Ok((Some(allowed), facts))
}

/// `GET {module}/@v/list`.
pub(crate) async fn list(cx: &Cx, m: &ModulePath) -> Result<Response<Body>> {
    cx.registry
        .check_package(&cx.caller, Permission::ReleasesRead, m.as_str())
        .await?;
    let (prepared, stale, local) = prepared(cx, m).await?;
    let (allowed, _) = allowed_versions(cx, m, &prepared, local).await?;
    let (body, etag) = match allowed {
        None => (prepared.plain.clone(), Some(prepared.plain_etag.clone())),
        Some(allowed) => (
            Bytes::from(render(&prepared.versions, |i| allowed[i])),
            None,
        ),
    };
    let mut resp = protocol::conditional(&cx.parts, TEXT, body, etag);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
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
    let (prepared, stale, local) = prepared(cx, m).await?;
    let (allowed, facts) = allowed_versions(cx, m, &prepared, local).await?;
    let visible = |i: usize| allowed.as_ref().is_none_or(|a| a[i]);
    let newest = |want: &dyn Fn(&Version) -> bool| {
        (0..prepared.versions.len())
            .rev()
            .find(|&i| visible(i) && want(&prepared.versions[i]))
    };
    let pick = newest(&|v| !v.is_prerelease())
        .or_else(|| newest(&|v| !v.is_pseudo()))
        .or_else(|| newest(&|_| true));
    let Some((v, f)) = pick.map(|i| (&prepared.versions[i], &facts[i])) else {
        return Err(Error::NotFound(format!(
            "module {m}: no version is available (none published, or every one is refused by policy)"
        )));
    };
    let info = match f.published_at {
        Some(at) => Info::new(v.as_str(), Some(at)),
        None if local => Info::new(v.as_str(), None),
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
    // `.mod` and `.zip` need the upstream's `.info` only for its publish time, and only a
    // policy that decides on publish times needs that (a missing version is `404` from the
    // `.mod` either way).
    let (info, stale) = if ext == Ext::Info || cx.registry.uses_publish_times() {
        let (info, stale) = proxy::info(cx, m, v)
            .await?
            .ok_or_else(|| unknown_version(m, v))?;
        (Some(info), stale)
    } else {
        (None, false)
    };
    let facts = VersionFacts {
        version: v.stored().to_owned(),
        published_at: info.as_ref().and_then(Info::published_at),
    };
    let mut resp = match ext {
        Ext::Info => {
            allowed(cx, key, permission, &facts).await?;
            let info = info.ok_or_else(|| unknown_version(m, v))?;
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
