//! The upstream GOPROXY: version lists, `.info`, `.mod` and module zips, each checked before
//! it is served or cached. GOPROXY publishes no digest of a zip's bytes; what a zip must
//! agree with is its `go.mod`, published beside it as `.mod`, and, with a checksum database
//! configured, the `h1:` hashes the database publishes for both. A downloaded zip is
//! therefore spooled, checked as the go command checks it (paths, sizes, module path), its
//! `go.mod` compared with the upstream's `.mod` and its `h1:` with the database's; a zip
//! that fails is neither served nor cached.

use std::sync::Arc;

use batlehub_core::body::Body;
use batlehub_core::digest::ContentCheck;
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Artifact, Error, Permission, Result};
use bytes::Bytes;
use http::{Response, StatusCode};

use crate::handlers::TEXT;
use crate::handlers::versions::PreparedList;
use crate::modzip;
use crate::name::{ModulePath, Version, escape};
use crate::sumdb::{ChecksumDb, Sums};
use crate::wire::{self, Info};

/// The most upstream `.info` files fetched for one version list to learn publish times.
pub(crate) const MAX_TIME_LOOKUPS: usize = 8;

fn version_path(m: &ModulePath, v: &Version, ext: &str) -> String {
    format!("{}/@v/{}.{ext}", m.escaped(), escape(v.as_str()))
}

/// The upstream's versions of `m` (canonical, of this module's major version, not
/// pseudo-versions), read once per version of the upstream's list document; whether the
/// list is a stale copy; `None` when no upstream has the module.
pub(crate) async fn list(cx: &Cx, m: &ModulePath) -> Result<Option<(Arc<PreparedList>, bool)>> {
    let Some(doc) = cx
        .registry
        .upstream_document_ref(
            &format!("list:{m}"),
            &format!("{}/@v/list", m.escaped()),
            "text/plain",
        )
        .await?
    else {
        return Ok(None);
    };
    let key = format!("go-list:{}:{m}", doc.sha256);
    let prepared = cx
        .registry
        .memo()
        .get_or_load(&key, async {
            let body = cx.registry.document_bytes(&doc).await?;
            if std::str::from_utf8(&body).is_err() {
                return Err(Error::Upstream(format!(
                    "the upstream's version list of {m} is not UTF-8 text"
                )));
            }
            let facts = wire::parse_list(&body)
                .iter()
                .filter_map(|v| Version::parse(v).ok())
                .filter(|v| m.check_version(v).is_ok() && !v.is_pseudo())
                .map(|v| VersionFacts {
                    version: v.stored().to_owned(),
                    published_at: None,
                })
                .collect();
            let prepared = PreparedList::new(facts);
            let weight = prepared.weight();
            Ok((prepared, weight))
        })
        .await?;
    Ok(Some((prepared, doc.stale)))
}

/// The upstream's `.info` of `m@v` (its `Version` checked), and whether it is a stale copy.
pub(crate) async fn info(cx: &Cx, m: &ModulePath, v: &Version) -> Result<Option<(Info, bool)>> {
    let Some(doc) = cx
        .registry
        .upstream_document(
            &format!("info:{m}@{v}"),
            &version_path(m, v, "info"),
            "application/json",
        )
        .await?
    else {
        return Ok(None);
    };
    let info: Info = serde_json::from_slice(&doc.body).map_err(|e| {
        Error::Upstream(format!("the upstream's .info of {m}@{v} is not valid: {e}"))
    })?;
    if info.version != v.as_str() {
        return Err(Error::Upstream(format!(
            "the upstream's .info of {m}@{v} names version {:?}",
            info.version
        )));
    }
    Ok(Some((
        Info::new(v.as_str(), info.published_at()),
        doc.stale,
    )))
}

/// The upstream's `.mod` of `m@v` (its module directive checked), and which upstream
/// served it.
pub(crate) async fn go_mod(cx: &Cx, m: &ModulePath, v: &Version) -> Result<Option<(Bytes, usize)>> {
    let Some(doc) = cx
        .registry
        .upstream_document(
            &format!("mod:{m}@{v}"),
            &version_path(m, v, "mod"),
            "text/plain",
        )
        .await?
    else {
        return Ok(None);
    };
    match modzip::module_directive(&doc.body) {
        Some(declared) if declared == m.as_str() => {}
        declared => {
            return Err(Error::Upstream(format!(
                "the upstream's go.mod of {m}@{v} declares module {declared:?}"
            )));
        }
    }
    if let Some(sums) = checksums(cx, m, v).await?
        && modzip::go_mod_hash(&doc.body) != sums.go_mod
    {
        tracing::error!(registry = %cx.registry.name(), module = %m, version = %v, "an upstream go.mod does not match the checksum database");
        return Err(Error::Upstream(format!(
            "integrity check failed for {m}@{v}: the upstream's go.mod does not match the checksum database ({}); not served",
            sums.go_mod
        )));
    }
    Ok(Some((doc.body, doc.upstream)))
}

/// What the checksum database says of `m@v`: `None` without a database or for a module it
/// skips; an error when it does not know the version (fail closed).
async fn checksums(cx: &Cx, m: &ModulePath, v: &Version) -> Result<Option<Sums>> {
    let Some(db) = cx.parts.extensions.get::<ChecksumDb>() else {
        return Ok(None);
    };
    if db.skips(m.as_str()) {
        return Ok(None);
    }
    match db.sums(cx.registry.memo(), m, v).await? {
        Some(sums) => Ok(Some(sums)),
        None => Err(Error::Upstream(format!(
            "{m}@{v} is not in the checksum database {}, so it cannot be verified; refusing it (list private modules in checksum_db_skip)",
            db.name()
        ))),
    }
}

/// `GET sumdb/{name}/{rest}`: the checksum database, passed through (`supported` says it
/// is), never filtered; `404` for a database this registry does not pass through.
pub(crate) async fn sumdb(cx: &Cx, name: &str, rest: &str) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    let Some(db) = cx
        .parts
        .extensions
        .get::<ChecksumDb>()
        .filter(|db| db.serves(name))
    else {
        return Err(Error::NotFound(format!(
            "this registry does not pass the checksum database {name} through"
        )));
    };
    if rest == "supported" {
        return Ok(protocol::typed(StatusCode::OK, TEXT, Bytes::new()));
    }
    let (status, body) = db.get(cx.registry.memo(), rest).await?;
    let content_type = if rest.starts_with("tile/") {
        "application/octet-stream"
    } else {
        TEXT
    };
    match status {
        StatusCode::OK | StatusCode::NOT_FOUND | StatusCode::GONE | StatusCode::BAD_REQUEST => {
            Ok(protocol::typed(status, content_type, body))
        }
        other => Err(Error::Upstream(format!(
            "the checksum database {name} answered {other}"
        ))),
    }
}

/// The module zip of `m@v`, from the cache or the upstream that served its `.mod`.
pub(crate) async fn zip(cx: &Cx, m: &ModulePath, v: &Version) -> Result<Artifact> {
    let key = format!("zip:{m}@{v}");
    if let Some(hit) = cx.registry.cached_artifact(&key).await? {
        return Ok(hit);
    }
    let (go_mod, upstream) = go_mod(cx, m, v)
        .await?
        .ok_or_else(|| super::unknown_version(m, v))?;
    let client = cx
        .registry
        .upstream()
        .ok_or_else(|| Error::NotFound("registry has no upstream".into()))?;
    let url = client.url_for(upstream, &version_path(m, v, "zip"))?;
    let h1 = checksums(cx, m, v).await?.map(|s| s.zip);
    let check = Arc::new(ZipCheck {
        module: m.clone(),
        version: v.clone(),
        go_mod,
        h1,
    });
    cx.registry
        .upstream_artifact_checked(&key, url, None, check)
        .await
}

/// What an upstream module zip must be: a valid module zip of this module and version whose
/// `go.mod` is the `.mod` the upstream published.
#[derive(Debug)]
struct ZipCheck {
    module: ModulePath,
    version: Version,
    go_mod: Bytes,
    /// The zip's `h1:` from the checksum database, when there is one.
    h1: Option<String>,
}

impl ContentCheck for ZipCheck {
    fn check(&self, file: &mut std::fs::File) -> std::result::Result<(), String> {
        let zip = modzip::inspect(file, &self.module, &self.version)?;
        if zip.go_mod != self.go_mod {
            return Err(format!(
                "the go.mod inside the upstream's zip of {}@{} differs from the .mod it publishes",
                self.module, self.version
            ));
        }
        if let Some(h1) = &self.h1
            && *h1 != zip.h1
        {
            return Err(format!(
                "the upstream's zip of {}@{} hashes to {}, the checksum database says {h1}",
                self.module, self.version, zip.h1
            ));
        }
        Ok(())
    }
}
