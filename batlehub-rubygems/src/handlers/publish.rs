//! `gem push` and `gem yank`: `POST /api/v1/gems` with the raw `.gem` (the key in
//! `Authorization` as it is, no scheme) and `DELETE /api/v1/gems/yank` with a form body.
//! Answers are plain text: `gem` prints them.

use std::io::{Seek as _, SeekFrom};

use batlehub_core::body::Body;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::PublishFacts;
use batlehub_core::protocol::{self, Cx, RequestBody};
use batlehub_core::{Error, Permission, Result, Staged};
use http::{Response, StatusCode};

use crate::gemspec::GemSpec;
use crate::name::full_name;
use crate::package::{self, Limits};
use crate::wire::Stored;

/// The largest yank form read.
const MAX_FORM: usize = 16 * 1024;

/// How `gem` shows a gem: `name (version)` or `name (version-platform)`.
fn shown(spec: &GemSpec) -> String {
    let v = full_name("", &spec.version, &spec.platform);
    format!("{} ({})", spec.name, v.trim_start_matches('-'))
}

/// `POST /api/v1/gems`.
pub(crate) async fn push(cx: &Cx, body: RequestBody) -> Result<Response<Body>> {
    cx.registry.ensure_publishable()?;
    // Before reading the body: an anonymous push gets the challenge at once.
    cx.registry
        .authorize(cx.identity(), Permission::Publish, None)?;
    let (staged, file) = cx.registry.stage_spooled(body.into_stream()).await?;
    let read = protocol::blocking(move || {
        let mut file = file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::storage(format!("reading a spooled upload: {e}")))?;
        package::read(std::io::BufReader::new(file), Limits::default())
            .map_err(|e| Error::Unprocessable(format!("the uploaded file is not a valid gem: {e}")))
    })
    .await;
    let spec = match read {
        Ok(p) => p.spec,
        Err(e) => {
            cx.registry.discard(staged).await;
            return Err(e);
        }
    };
    let out = commit(cx, &spec, &staged).await;
    if out.is_err() {
        cx.registry.discard(staged).await;
    }
    out
}

async fn commit(cx: &Cx, spec: &GemSpec, staged: &Staged) -> Result<Response<Body>> {
    let key = spec.name.as_str();
    if key.starts_with(crate::handlers::view::REFUSED_PREFIX) {
        return Err(Error::Unprocessable(format!(
            "gem names starting with `{}` are reserved by this source",
            crate::handlers::view::REFUSED_PREFIX
        )));
    }
    cx.registry
        .authorize(cx.identity(), Permission::Publish, Some(key))?;
    let version_key = full_name("", &spec.version, &spec.platform)
        .trim_start_matches('-')
        .to_owned();
    let file_name = format!("{}.gem", full_name(key, &spec.version, &spec.platform));
    let sha256 = staged.digests.sha256_hex();
    if let Some(existing) = cx.registry.local().version(key, &version_key).await? {
        if existing.files.iter().any(|f| f.sha256 == sha256) {
            cx.registry.discard(staged.clone()).await;
            return Ok(protocol::text(
                StatusCode::OK,
                format!("Gem was already pushed: {}\n", shown(spec)),
            ));
        }
        return Err(Error::Conflict(format!(
            "Repushing of gem versions is not allowed: {} is already published with other contents. Publish a new version.",
            shown(spec)
        )));
    }
    let facts = PublishFacts {
        package: key.to_owned(),
        version: spec.version.clone(),
        size: staged.digests.size,
        sha256: staged.digests.sha256.clone(),
        package_exists: cx.registry.local().package_exists(key).await?,
        signature: None,
    };
    let outcome = cx.check_publish(&facts).await?;
    let stored = Stored {
        info: crate::index::info_line(spec, &sha256),
        spec: spec.clone(),
    };
    let new = NewVersion {
        registry: cx.registry.name().to_owned(),
        version: VersionRecord {
            package: key.to_owned(),
            version: version_key,
            published_at: cx.registry.now(),
            yanked: false,
            deprecated: None,
            publisher: Some(cx.identity().key().into_owned()),
            metadata: serde_json::to_value(&stored).map_err(Error::internal)?,
            files: vec![FileRecord {
                filename: file_name,
                sha256,
                size: staged.digests.size,
                signature: None,
                signature_type: None,
            }],
        },
        tags: Vec::new(),
    };
    cx.registry
        .publish(&cx.caller, new, vec![staged.clone()])
        .await
        .map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!(
                "Repushing of gem versions is not allowed: {} was pushed by a concurrent upload.",
                shown(spec)
            )),
            other => other,
        })?;
    let mut resp = protocol::text(
        StatusCode::OK,
        format!("Successfully registered gem: {}\n", shown(spec)),
    );
    resp.headers_mut().extend(outcome.headers);
    Ok(resp)
}

/// `DELETE /api/v1/gems/yank` (form body or query: `gem_name`, `version`, `platform`).
pub(crate) async fn yank(cx: &Cx, body: RequestBody) -> Result<Response<Body>> {
    cx.registry.ensure_publishable()?;
    cx.registry
        .authorize(cx.identity(), Permission::Publish, None)?;
    let form = body.read_to_bytes(&cx.parts, MAX_FORM).await?;
    let form = String::from_utf8_lossy(&form);
    let field = |k: &str| {
        protocol::query_param(Some(&form), k)
            .or_else(|| protocol::query_param(cx.parts.uri.query(), k))
            .filter(|v| !v.is_empty())
    };
    let name = field("gem_name").ok_or_else(|| Error::BadRequest("gem_name is missing".into()))?;
    let version = field("version").ok_or_else(|| Error::BadRequest("version is missing".into()))?;
    let platform = field("platform").unwrap_or_else(|| "ruby".into());
    crate::name::check_name(&name).map_err(|e| Error::BadRequest(e.0))?;
    crate::name::check_version(&version).map_err(|e| Error::BadRequest(e.0))?;
    if platform != "ruby" {
        crate::name::check_platform(&platform).map_err(|e| Error::BadRequest(e.0))?;
    }
    cx.registry.check_manage(&cx.caller, &name, "yank").await?;
    let version_key = full_name("", &version, &platform)
        .trim_start_matches('-')
        .to_owned();
    let found = cx
        .registry
        .local()
        .set_yanked(&name, &version_key, true)
        .await?;
    if !found {
        return Err(Error::NotFound(format!(
            "The version {version_key} of {name} does not exist."
        )));
    }
    tracing::info!(registry = cx.registry.name(), gem = %name, version = %version_key, "yanked");
    Ok(protocol::text(
        StatusCode::OK,
        format!("Successfully deleted gem: {name} ({version_key})\n"),
    ))
}
