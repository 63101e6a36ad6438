//! Reads: packuments, version manifests, tarballs.

use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::{Artifact, Error, Mode, Permission, Result};
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

use crate::name::PackageName;
use crate::service::{Ctx, json, json_typed};
use crate::wire::{self, CORGI};

/// Where a package's metadata comes from for this request.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// The local index.
    Local(batlehub_core::model::LocalPackage),
    /// An upstream document (raw), possibly served stale.
    Upstream(batlehub_core::Document),
}

/// Whether `name` is served from the local index here (dependency-confusion guard: in
/// hybrid mode a local name never falls through to an upstream).
pub(crate) async fn is_local(ctx: &Ctx, name: &PackageName) -> Result<bool> {
    Ok(match ctx.registry.mode() {
        Mode::Local => true,
        Mode::Proxy => false,
        Mode::Hybrid => {
            ctx.registry
                .index()
                .package_exists(ctx.registry.name(), name.as_str())
                .await?
        }
    })
}

pub(crate) fn packument_key(name: &PackageName) -> String {
    format!("packument/{}", name.as_str())
}

/// Loads a package's metadata from wherever this registry gets it.
pub(crate) async fn load(ctx: &Ctx, name: &PackageName) -> Result<Option<Loaded>> {
    if is_local(ctx, name).await? {
        let pkg = ctx
            .registry
            .index()
            .package(ctx.registry.name(), name.as_str())
            .await?;
        return Ok(pkg.filter(|p| !p.versions.is_empty()).map(Loaded::Local));
    }
    let doc = ctx
        .registry
        .upstream_document(&packument_key(name), &name.escaped(), "application/json")
        .await?;
    Ok(doc.map(Loaded::Upstream))
}

/// The full packument, tarball URLs pointing here; and whether it is stale.
pub(crate) async fn full_packument(ctx: &Ctx, name: &PackageName) -> Result<(Value, bool)> {
    match load(ctx, name).await? {
        Some(Loaded::Local(pkg)) => Ok((wire::local_packument(&ctx.base, name, &pkg), false)),
        Some(Loaded::Upstream(doc)) => {
            let mut value: Value = serde_json::from_slice(&doc.body).map_err(|e| {
                tracing::warn!(package = %name, error = %e, "upstream packument is not JSON");
                Error::Upstream(format!("upstream sent an unreadable packument for {name}"))
            })?;
            if !value.is_object() {
                return Err(Error::Upstream(format!(
                    "upstream sent an unreadable packument for {name}"
                )));
            }
            wire::rewrite_tarballs(&mut value, &ctx.base, name);
            Ok((value, doc.stale))
        }
        None => Err(not_found(name)),
    }
}

pub(crate) fn not_found(name: &PackageName) -> Error {
    Error::NotFound(format!("package `{name}` not found"))
}

fn wants_corgi(ctx: &Ctx) -> bool {
    ctx.parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(CORGI))
}

pub(crate) fn mark_stale(resp: &mut Response<Body>, stale: bool) {
    if stale {
        resp.headers_mut()
            .insert("x-batlehub-cache", HeaderValue::from_static("stale"));
        resp.headers_mut().insert(
            http::header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
}

/// `GET /{name}`.
pub(crate) async fn packument(ctx: &Ctx, name: &PackageName) -> Result<Response<Body>> {
    ctx.registry
        .authorize(&ctx.identity, Permission::ReleasesRead, Some(name.as_str()))?;
    let (full, stale) = full_packument(ctx, name).await?;
    let mut resp = if wants_corgi(ctx) {
        json_typed(StatusCode::OK, &wire::abbreviate(&full), CORGI)
    } else {
        json(StatusCode::OK, &full)
    };
    mark_stale(&mut resp, stale);
    Ok(resp)
}

/// `GET /{name}/{version-or-tag}`.
pub(crate) async fn version(ctx: &Ctx, name: &PackageName, spec: &str) -> Result<Response<Body>> {
    ctx.registry
        .authorize(&ctx.identity, Permission::ReleasesRead, Some(name.as_str()))?;
    let (full, stale) = full_packument(ctx, name).await?;
    let version = full
        .get("dist-tags")
        .and_then(|t| t.get(spec))
        .and_then(Value::as_str)
        .unwrap_or(spec);
    let manifest = full
        .get("versions")
        .and_then(|v| v.get(version))
        .ok_or_else(|| Error::NotFound(format!("version `{spec}` of `{name}` not found")))?;
    let mut resp = json(StatusCode::OK, manifest);
    mark_stale(&mut resp, stale);
    Ok(resp)
}

fn artifact_response(artifact: Artifact) -> Response<Body> {
    let mut resp = Response::new(artifact.body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = artifact.size {
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(sha) = artifact
        .sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(&format!("\"{s}\"")).ok())
    {
        h.insert(http::header::ETAG, sha);
    }
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

/// `GET /{name}/-/{file}`.
pub(crate) async fn tarball(ctx: &Ctx, name: &PackageName, file: &str) -> Result<Response<Body>> {
    ctx.registry
        .authorize(&ctx.identity, Permission::SourceRead, Some(name.as_str()))?;
    let version = name
        .version_of_file(file)
        .ok_or_else(|| Error::NotFound(format!("`{file}` is not a tarball of `{name}`")))?;
    if is_local(ctx, name).await? {
        let v = ctx
            .registry
            .index()
            .version(ctx.registry.name(), name.as_str(), version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("`{name}@{version}` not found")))?;
        let f = v
            .files
            .iter()
            .find(|f| f.filename == file)
            .ok_or_else(|| Error::NotFound(format!("`{file}` not found")))?;
        return Ok(artifact_response(ctx.registry.open_blob(&f.sha256).await?));
    }
    let key = format!("tarball/{}/{version}", name.as_str());
    if let Some(hit) = ctx.registry.cached_artifact(&key).await? {
        return Ok(artifact_response(hit));
    }
    let doc = ctx
        .registry
        .upstream_document(&packument_key(name), &name.escaped(), "application/json")
        .await?
        .ok_or_else(|| not_found(name))?;
    let value: Value = serde_json::from_slice(&doc.body).map_err(|_| {
        Error::Upstream(format!("upstream sent an unreadable packument for {name}"))
    })?;
    let dist = value
        .pointer(&format!(
            "/versions/{}/dist",
            version.replace('~', "~0").replace('/', "~1")
        ))
        .ok_or_else(|| Error::NotFound(format!("`{name}@{version}` not found")))?;
    let raw_url = dist.get("tarball").and_then(Value::as_str).ok_or_else(|| {
        Error::Upstream(format!("upstream lists no tarball for {name}@{version}"))
    })?;
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("proxy without upstream client"))?;
    let root = client
        .roots()
        .get(doc.upstream)
        .ok_or_else(|| Error::internal("upstream index out of range"))?;
    let url = root.join(raw_url).map_err(|e| {
        Error::Upstream(format!(
            "upstream tarball URL for {name}@{version} is invalid: {e}"
        ))
    })?;
    let expected = dist
        .get("integrity")
        .and_then(Value::as_str)
        .and_then(ExpectedDigest::from_sri)
        .or_else(|| {
            dist.get("shasum")
                .and_then(Value::as_str)
                .and_then(|s| ExpectedDigest::from_hex("sha1", s))
        });
    let artifact = ctx.registry.upstream_artifact(&key, url, expected).await?;
    Ok(artifact_response(artifact))
}
