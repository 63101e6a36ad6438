//! `npm publish`, `npm deprecate`, `npm unpublish`.

use base64::Engine as _;
use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::{PublishFacts, Signature};
use batlehub_core::{Error, Permission, Result};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::handlers::read::not_found;
use crate::name::{PackageName, check_version};
use crate::wire::PublishBody;
use batlehub_core::protocol::{Cx, blocking, json};

async fn writable(ctx: &Cx, name: &PackageName) -> Result<()> {
    ctx.registry.authorize(
        &ctx.caller.identity,
        Permission::Publish,
        Some(name.as_str()),
    )?;
    ctx.registry.ensure_publishable()
}

pub(crate) fn parse_body(body: &Bytes) -> Result<PublishBody> {
    serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("publish body is not valid JSON: {e}")))
}

/// `PUT /{name}`: a publish when the body carries `_attachments`, else a metadata update
/// (`npm deprecate`).
pub(crate) async fn put_package(
    ctx: &Cx,
    name: &PackageName,
    body: &Bytes,
) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    // Parsing a body of up to ~4/3 of the upload limit is CPU work: off the async workers.
    let bytes = body.clone();
    let body = blocking(move || parse_body(&bytes)).await?;
    if let Some(n) = &body.name
        && n != name.as_str()
    {
        return Err(Error::BadRequest(format!(
            "body names package `{n}` but the URL names `{name}`"
        )));
    }
    if body.attachments.is_empty() {
        return update_metadata(ctx, name, &body).await;
    }
    publish(ctx, name, body).await
}

async fn local_exists(ctx: &Cx, name: &PackageName) -> Result<bool> {
    Ok(ctx.is_local(name.as_str()).await?
        && ctx.registry.local().package_exists(name.as_str()).await?)
}

/// Applies `deprecated` changes from a full document.
async fn update_metadata(
    ctx: &Cx,
    name: &PackageName,
    body: &PublishBody,
) -> Result<Response<Body>> {
    if !local_exists(ctx, name).await? {
        return Err(not_found(name));
    }
    ctx.registry
        .check_manage(&ctx.caller, name.as_str(), "deprecate")
        .await?;
    let index = ctx.registry.local();
    for (version, manifest) in &body.versions {
        let Some(current) = index.version(name.as_str(), version).await? else {
            continue;
        };
        let wanted = manifest
            .get("deprecated")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty());
        if current.deprecated.as_deref() != wanted {
            index.set_deprecated(name.as_str(), version, wanted).await?;
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "ok": true, "id": name.as_str() }),
    ))
}

async fn publish(ctx: &Cx, name: &PackageName, body: PublishBody) -> Result<Response<Body>> {
    let reg = ctx.registry.name();
    let index = ctx.registry.local();
    let exists = index.package_exists(name.as_str()).await?;
    if !exists {
        name.check_new()?;
    }
    if body.versions.len() != 1 || body.attachments.len() != 1 {
        return Err(Error::BadRequest(
            "a publish must carry exactly one version and one tarball".into(),
        ));
    }
    let Some((version, manifest)) = body.versions.into_iter().next() else {
        return Err(Error::BadRequest("no version in publish body".into()));
    };
    check_version(&version)?;
    let Value::Object(mut manifest) = manifest else {
        return Err(Error::BadRequest(
            "version manifest must be an object".into(),
        ));
    };
    if manifest.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(Error::BadRequest(format!(
            "manifest name does not match package `{name}`"
        )));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(Error::BadRequest(format!(
            "manifest version does not match `{version}`"
        )));
    }
    let Some((file_key, attachment)) = body.attachments.into_iter().next() else {
        return Err(Error::BadRequest("no tarball in publish body".into()));
    };
    let filename = name.tarball_file(&version);
    if file_key != filename && file_key != format!("{}-{version}.tgz", name.as_str()) {
        return Err(Error::BadRequest(format!(
            "attachment `{file_key}` should be named `{filename}`"
        )));
    }
    let data = attachment.data;
    let tarball = blocking(move || {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| {
                Error::BadRequest(format!(
                    "attachment data is not valid base64 (truncated?): {e}"
                ))
            })
    })
    .await?;
    if tarball.is_empty() {
        return Err(Error::BadRequest("attachment is empty".into()));
    }
    if let Some(len) = attachment.length
        && len != tarball.len() as u64
    {
        return Err(Error::BadRequest(format!(
            "attachment is {} bytes but declares length {len} (truncated upload?)",
            tarball.len()
        )));
    }
    if tarball.len() as u64 > ctx.registry.config().max_upload_bytes {
        return Err(Error::PayloadTooLarge(
            "tarball exceeds the upload limit".into(),
        ));
    }
    // Hashing and the bounded decompression run off the async workers.
    let tarball = Bytes::from(tarball);
    let (digests, inner) = {
        let tarball = tarball.clone();
        blocking(move || {
            let digests = batlehub_core::digest::Digests::of(&tarball);
            let inner = crate::tarball::read_package_json(&tarball);
            Ok((digests, inner))
        })
        .await?
    };
    let dist = manifest.get("dist").cloned().unwrap_or_else(|| json!({}));
    if let Some(sri) = dist.get("integrity").and_then(Value::as_str) {
        let expected = ExpectedDigest::from_sri(sri)
            .ok_or_else(|| Error::BadRequest("dist.integrity is not a valid SRI string".into()))?;
        if !expected.matches(&digests) {
            return Err(Error::BadRequest(
                "tarball does not match dist.integrity".into(),
            ));
        }
    }
    if let Some(shasum) = dist.get("shasum").and_then(Value::as_str)
        && !shasum.eq_ignore_ascii_case(&digests.sha1_hex())
    {
        return Err(Error::BadRequest(
            "tarball does not match dist.shasum".into(),
        ));
    }
    let inner = inner?;
    let (in_name, in_version) = (
        inner
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        inner
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    if in_name != name.as_str() || in_version != version {
        return Err(Error::BadRequest(format!(
            "the tarball's package.json is {in_name}@{in_version}, but this publishes {name}@{version}"
        )));
    }

    let publisher = ctx.caller.identity.key().into_owned();
    let mut dist_out = match dist {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    dist_out.insert("integrity".into(), Value::String(digests.sha512_sri()));
    dist_out.insert("shasum".into(), Value::String(digests.sha1_hex()));
    dist_out.insert("tarball".into(), Value::String(String::new()));
    manifest.insert("dist".into(), Value::Object(dist_out));
    manifest.insert("_id".into(), Value::String(format!("{name}@{version}")));
    manifest.insert("_npmUser".into(), json!({ "name": publisher, "email": "" }));
    manifest.insert(
        "maintainers".into(),
        json!([{ "name": publisher, "email": "" }]),
    );
    manifest.remove("_attachments");
    let deprecated = manifest
        .remove("deprecated")
        .and_then(|d| d.as_str().map(str::to_owned))
        .filter(|d| !d.is_empty());

    let mut tags: Vec<String> = body
        .dist_tags
        .iter()
        .filter(|(_, v)| **v == version)
        .map(|(t, _)| t.clone())
        .collect();
    if !tags.iter().any(|t| t == "latest")
        && !index.tags(name.as_str()).await?.contains_key("latest")
    {
        tags.push("latest".into());
    }

    let signature = signature_of(ctx)?;
    let facts = PublishFacts {
        package: name.as_str().to_owned(),
        version: version.clone(),
        size: digests.size,
        sha256: digests.sha256.clone(),
        package_exists: exists,
        signature: signature.clone(),
    };
    let outcome = ctx.check_publish(&facts).await?;

    let staged = ctx.registry.stage_bytes(tarball).await?;
    let new = NewVersion {
        registry: reg.to_owned(),
        version: VersionRecord {
            package: name.as_str().to_owned(),
            version: version.clone(),
            published_at: ctx.registry.now(),
            yanked: false,
            deprecated,
            publisher: Some(publisher),
            metadata: Value::Object(manifest),
            files: vec![FileRecord {
                filename,
                sha256: digests.sha256_hex(),
                size: digests.size,
                signature: signature.as_ref().map(|s| s.value.clone()),
                signature_type: signature.map(|s| s.kind),
            }],
        },
        tags,
    };
    match ctx.registry.publish(&ctx.caller, new, vec![staged]).await {
        Ok(()) => {
            tracing::info!(registry = reg, package = %name, %version, "published");
            let mut resp = json(StatusCode::OK, &json!({ "ok": true, "id": name.as_str() }));
            resp.headers_mut().extend(outcome.headers);
            Ok(resp)
        }
        Err(Error::Conflict(_)) => Err(Error::Conflict(format!(
            "You cannot publish over the previously published versions: {version}."
        ))),
        Err(e) => Err(e),
    }
}

/// `PUT /{name}/-rev/{rev}`: `npm unpublish name@version` sends the document without the
/// removed versions (and with repaired tags).
pub(crate) async fn put_revision(
    ctx: &Cx,
    name: &PackageName,
    body: &Bytes,
) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    if !local_exists(ctx, name).await? {
        return Err(not_found(name));
    }
    ctx.registry
        .check_manage(&ctx.caller, name.as_str(), "unpublish")
        .await?;
    let body = parse_body(body)?;
    let reg = ctx.registry.name();
    let index = ctx.registry.local();
    let Some(pkg) = index.package(name.as_str()).await? else {
        return Err(not_found(name));
    };
    // Versions hidden by policy travel in `policyRestrictions`; they are not being removed.
    let restricted = body
        .policy_restrictions
        .as_ref()
        .and_then(|r| r.get("versions"))
        .and_then(Value::as_object);
    for v in &pkg.versions {
        if !body.versions.contains_key(&v.version)
            && !restricted.is_some_and(|r| r.contains_key(&v.version))
        {
            index.delete_version(name.as_str(), &v.version).await?;
            tracing::info!(registry = reg, package = %name, version = %v.version, "unpublished");
        }
    }
    for (tag, version) in &body.dist_tags {
        if batlehub_core::coords::check_segment("tag", tag).is_ok() {
            index.set_tag(name.as_str(), tag, version).await?;
        }
    }
    update_metadata(ctx, name, &body)
        .await
        .or_else(|e| match e {
            Error::NotFound(_) => Ok(json(StatusCode::OK, &json!({ "ok": true }))),
            e => Err(e),
        })
}

/// `DELETE /{name}/-rev/{rev}`: unpublish the whole package.
pub(crate) async fn unpublish_package(ctx: &Cx, name: &PackageName) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    if !local_exists(ctx, name).await? {
        return Err(not_found(name));
    }
    ctx.registry
        .check_manage(&ctx.caller, name.as_str(), "unpublish")
        .await?;
    ctx.registry.local().delete_package(name.as_str()).await?;
    tracing::info!(registry = ctx.registry.name(), package = %name, "unpublished package");
    Ok(json(StatusCode::OK, &json!({ "ok": true })))
}

/// `DELETE /{name}/-/{file}/-rev/{rev}`: the tarball of a version removed just before.
pub(crate) async fn delete_tarball(
    ctx: &Cx,
    name: &PackageName,
    _file: &str,
) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    if !ctx.is_local(name.as_str()).await? {
        return Err(not_found(name));
    }
    ctx.registry
        .check_manage(&ctx.caller, name.as_str(), "unpublish")
        .await?;
    // Blobs are content-addressed and may be shared; the index no longer references this
    // file once its version is gone. Unreferenced blobs are garbage for a later sweep.
    Ok(json(StatusCode::OK, &json!({ "ok": true })))
}

/// The detached signature sent with a publish (`X-Artifact-Signature`, `X-Signature-Type`).
fn signature_of(ctx: &Cx) -> Result<Option<Signature>> {
    let h = &ctx.parts.headers;
    let get = |n: &str| h.get(n).map(|v| v.to_str().map(|s| s.trim().to_owned()));
    match (get("x-artifact-signature"), get("x-signature-type")) {
        (None, None) => Ok(None),
        (Some(Ok(value)), Some(Ok(kind))) if !value.is_empty() && !kind.is_empty() => {
            Ok(Some(Signature { value, kind }))
        }
        (Some(Ok(value)), None) if !value.is_empty() => Ok(Some(Signature {
            value,
            kind: "ed25519".into(),
        })),
        _ => Err(Error::BadRequest(
            "X-Artifact-Signature and X-Signature-Type must both be valid, non-empty headers"
                .into(),
        )),
    }
}
