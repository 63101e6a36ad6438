//! Publishing: `PUT {module}/@v/{version}.zip` with a module zip in the `go mod zip`
//! layout. The zip is checked as the go command checks it, its `go.mod` becomes the
//! version's `.mod`, and its `h1:` hash is recorded. A version is immutable: the same zip
//! again is accepted (a retried upload), another is `409`. Uploaders that also send `.mod`
//! and `.info` (before or after the zip) have them checked against the zip.

use batlehub_core::body::Body;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::PublishFacts;
use batlehub_core::protocol::{self, Cx, RequestBody};
use batlehub_core::{Error, Permission, Result, Staged};
use bytes::Bytes;
use http::{Response, StatusCode};

use crate::handlers::TEXT;
use crate::modzip::{self, MAX_GO_MOD, ModuleZip};
use crate::name::{ModulePath, Version};
use crate::routes::Ext;
use crate::wire::Info;

/// The largest `.info` read.
const MAX_INFO: usize = 64 * 1024;

fn text(status: StatusCode, body: String) -> Response<Body> {
    protocol::typed(status, TEXT, Bytes::from(body))
}

/// Memory-cache key of a `.mod` sent before its zip.
fn pending_key(cx: &Cx, m: &ModulePath, v: &Version) -> String {
    format!("go-pending-mod:{}:{m}@{v}", cx.registry.name())
}

/// `PUT {module}/@v/{version}.{zip,mod,info}`.
pub(crate) async fn put(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    ext: Ext,
    body: RequestBody,
) -> Result<Response<Body>> {
    cx.registry.ensure_publishable()?;
    let key = m.as_str();
    // Before reading the body: an anonymous upload gets the challenge at once.
    cx.registry
        .authorize(cx.identity(), Permission::Publish, Some(key))?;
    m.check_version(v)?;
    if v.is_pseudo() {
        return Err(Error::BadRequest(format!(
            "{v} is a pseudo-version; publish a tagged version"
        )));
    }
    match ext {
        Ext::Zip => put_zip(cx, m, v, body).await,
        Ext::Mod => put_mod(cx, m, v, body).await,
        Ext::Info => put_info(cx, m, v, body).await,
    }
}

async fn put_zip(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    body: RequestBody,
) -> Result<Response<Body>> {
    let (staged, file) = cx.registry.stage_spooled(body.into_stream()).await?;
    let checked = {
        let (m, v) = (m.clone(), v.clone());
        protocol::blocking(move || {
            let mut file = file;
            modzip::inspect(&mut file, &m, &v).map_err(Error::BadRequest)
        })
        .await
    };
    let zip = match checked {
        Ok(zip) => zip,
        Err(e) => {
            cx.registry.discard(staged).await;
            return Err(e);
        }
    };
    let out = commit(cx, m, v, &zip, &staged).await;
    if out.is_err() {
        // Publishing consumes the staged blob; discarding one already gone is harmless.
        cx.registry.discard(staged).await;
    }
    out
}

async fn commit(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    zip: &ModuleZip,
    staged: &Staged,
) -> Result<Response<Body>> {
    let key = m.as_str();
    let zip_name = format!("{v}.zip");
    if let Some(existing) = cx.registry.local().version(key, v.stored()).await? {
        let same = existing
            .files
            .iter()
            .any(|f| f.filename == zip_name && f.sha256 == staged.digests.sha256_hex());
        if same {
            cx.registry.discard(staged.clone()).await;
            return Ok(text(
                StatusCode::OK,
                format!("{m}@{v} is already published with this zip ({})\n", zip.h1),
            ));
        }
        return Err(Error::Conflict(format!(
            "{m}@{v} is already published with another zip; versions are immutable, publish a new version"
        )));
    }
    if let Some(pending) = cx.registry.memo().get::<Bytes>(&pending_key(cx, m, v))
        && *pending != zip.go_mod
    {
        return Err(Error::BadRequest(format!(
            "the .mod uploaded for {m}@{v} differs from the go.mod in its zip"
        )));
    }
    let go_mod = cx.registry.stage_bytes(zip.go_mod.clone()).await?;
    let facts = PublishFacts {
        package: key.to_owned(),
        version: v.stored().to_owned(),
        size: staged.digests.size + go_mod.digests.size,
        sha256: staged.digests.sha256.clone(),
        package_exists: cx.registry.local().package_exists(key).await?,
        signature: None,
    };
    let outcome = match cx.check_publish(&facts).await {
        Ok(o) => o,
        Err(e) => {
            cx.registry.discard(go_mod).await;
            return Err(e);
        }
    };
    let file = |filename: String, s: &Staged| FileRecord {
        filename,
        sha256: s.digests.sha256_hex(),
        size: s.digests.size,
        signature: None,
        signature_type: None,
    };
    let new = NewVersion {
        registry: cx.registry.name().to_owned(),
        version: VersionRecord {
            package: key.to_owned(),
            version: v.stored().to_owned(),
            published_at: cx.registry.now(),
            yanked: false,
            deprecated: None,
            publisher: Some(cx.identity().key().into_owned()),
            metadata: serde_json::json!({
                "h1": zip.h1,
                "go_mod_h1": modzip::go_mod_hash(&zip.go_mod),
                "has_go_mod": zip.has_go_mod,
            }),
            files: vec![file(zip_name, staged), file(format!("{v}.mod"), &go_mod)],
        },
        tags: Vec::new(),
    };
    cx.registry
        .publish(&cx.caller, new, vec![staged.clone(), go_mod])
        .await
        .map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "{m}@{v} was published by a concurrent upload; versions are immutable"
            )),
            other => other,
        })?;
    let mut resp = text(
        StatusCode::CREATED,
        format!("published {m}@{v} {}\n", zip.h1),
    );
    resp.headers_mut().extend(outcome.headers);
    Ok(resp)
}

/// A `.mod`: after the zip, it must be the zip's `go.mod`; before it, it must declare this
/// module, and is kept (in memory, for a while) to be compared with the zip's.
async fn put_mod(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    body: RequestBody,
) -> Result<Response<Body>> {
    let limit = usize::try_from(MAX_GO_MOD).unwrap_or(usize::MAX);
    let bytes = body.read_to_bytes(&cx.parts, limit).await?;
    if let Some(existing) = cx.registry.local().version(m.as_str(), v.stored()).await? {
        let stored = existing
            .files
            .iter()
            .find(|f| f.filename == format!("{v}.mod"))
            .ok_or_else(|| Error::internal(format!("{m}@{v} has no .mod")))?;
        return if batlehub_core::digest::Digests::of(&bytes).sha256_hex() == stored.sha256 {
            Ok(text(StatusCode::OK, format!("{m}@{v}: .mod matches\n")))
        } else {
            Err(Error::Conflict(format!(
                "{m}@{v} is published with another go.mod; versions are immutable"
            )))
        };
    }
    match modzip::module_directive(&bytes) {
        Some(declared) if declared == m.as_str() => {}
        declared => {
            return Err(Error::BadRequest(format!(
                "the go.mod declares module {declared:?}, not {:?}",
                m.as_str()
            )));
        }
    }
    let weight = bytes.len();
    cx.registry
        .memo()
        .insert(pending_key(cx, m, v), std::sync::Arc::new(bytes), weight);
    Ok(text(
        StatusCode::ACCEPTED,
        format!("{m}@{v}: .mod accepted; it must match the go.mod of the zip that follows\n"),
    ))
}

/// A `.info`: its `Version` must be this version. Its `Time` is not kept: the publish time
/// is the server's (what a release-age gate counts from).
async fn put_info(
    cx: &Cx,
    m: &ModulePath,
    v: &Version,
    body: RequestBody,
) -> Result<Response<Body>> {
    let bytes = body.read_to_bytes(&cx.parts, MAX_INFO).await?;
    let info: Info = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("the .info is not valid JSON: {e}")))?;
    if info.version != v.as_str() {
        return Err(Error::BadRequest(format!(
            "the .info names version {:?}, not {v}",
            info.version
        )));
    }
    let status = if cx
        .registry
        .local()
        .version(m.as_str(), v.stored())
        .await?
        .is_some()
    {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(text(status, format!("{m}@{v}: .info matches\n")))
}
