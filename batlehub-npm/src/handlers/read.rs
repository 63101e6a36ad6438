//! Reads: packuments, version manifests, tarballs — with policy applied on the way out.

use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::model::Decision;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Mode, Permission, Result};
use chrono::{DateTime, Utc};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value, json};

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
/// hybrid mode a local name never falls through to an upstream, even when policy hides
/// every local version).
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

/// The full packument as stored or fetched, tarball URLs pointing here, before policy;
/// and whether it is stale.
async fn raw_packument(ctx: &Ctx, name: &PackageName) -> Result<(Value, bool)> {
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

fn published_at(doc: &Value, version: &str) -> Option<DateTime<Utc>> {
    doc.get("time")
        .and_then(|t| t.get(version))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// The packument this caller may see: package access checked, versions denied by policy
/// moved from `versions` to npm's `policyRestrictions` (so `npm install pkg@denied` prints
/// the reason), dist-tags repaired. Returns the document, whether it is stale, and the
/// denials by version.
pub(crate) async fn full_packument(ctx: &Ctx, name: &PackageName) -> Result<(Value, bool)> {
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, name.as_str())
        .await?;
    let (mut doc, stale) = raw_packument(ctx, name).await?;
    // `npm unpublish` and `npm deprecate` read `?write=true` and send the document back:
    // owners get every version, so that hidden ones are not dropped by the round trip.
    let write = ctx
        .parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "write=true"));
    if write
        && is_local(ctx, name).await?
        && ctx
            .registry
            .check_manage(&ctx.caller, name.as_str(), "read-for-write")
            .await
            .is_ok()
    {
        return Ok((doc, stale));
    }
    let versions: Vec<String> = doc
        .get("versions")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let facts: Vec<VersionFacts> = versions
        .iter()
        .map(|v| VersionFacts {
            version: v.clone(),
            published_at: published_at(&doc, v),
        })
        .collect();
    let decisions = ctx
        .registry
        .version_decisions(&ctx.caller, name.as_str(), &facts)
        .await?;
    let denied: Vec<(String, String)> = versions
        .iter()
        .zip(decisions)
        .filter_map(|(v, d)| match d {
            Decision::Deny(denial) => Some((v.clone(), denial.reason)),
            Decision::Allow => None,
        })
        .collect();
    if !denied.is_empty() {
        apply_denials(&mut doc, &denied);
    }
    Ok((doc, stale))
}

/// Moves denied versions out of sight and repairs the tags that pointed at them.
fn apply_denials(doc: &mut Value, denied: &[(String, String)]) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    let mut restricted = Map::new();
    if let Some(Value::Object(versions)) = obj.get_mut("versions") {
        for (v, _) in denied {
            if let Some(manifest) = versions.remove(v) {
                restricted.insert(v.clone(), manifest);
            }
        }
    }
    if let Some(Value::Object(time)) = obj.get_mut("time") {
        for (v, _) in denied {
            time.remove(v);
        }
    }
    let visible: Vec<String> = obj
        .get("versions")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(Value::Object(tags)) = obj.get_mut("dist-tags") {
        let hidden: Vec<(String, String)> = tags
            .iter()
            .filter_map(|(t, v)| v.as_str().map(|v| (t.clone(), v.to_owned())))
            .filter(|(_, v)| !visible.contains(v))
            .collect();
        for (tag, version) in hidden {
            let replacement = (tag == "latest")
                .then(|| {
                    batlehub_core::versions::repair_pointer(
                        visible.iter().map(String::as_str),
                        &version,
                    )
                })
                .flatten();
            match replacement {
                Some(r) => {
                    tags.insert(tag, Value::String(r));
                }
                None => {
                    tags.remove(&tag);
                }
            }
        }
    }
    let message = denied
        .iter()
        .map(|(v, reason)| format!("{v}: {reason}"))
        .collect::<Vec<_>>()
        .join("\n");
    obj.insert(
        "policyRestrictions".into(),
        json!({ "versions": restricted, "message": message }),
    );
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
    if semver::Version::parse(spec).is_err() {
        ctx.registry.check_tag(&ctx.caller, name.as_str(), spec)?;
    }
    let (full, stale) = full_packument(ctx, name).await?;
    let version = full
        .get("dist-tags")
        .and_then(|t| t.get(spec))
        .and_then(Value::as_str)
        .unwrap_or(spec);
    let Some(manifest) = full.get("versions").and_then(|v| v.get(version)) else {
        if full
            .pointer("/policyRestrictions/versions")
            .and_then(|r| r.get(version))
            .is_some()
        {
            return Err(denied_version(ctx, name, version).await);
        }
        return Err(Error::NotFound(format!(
            "version `{spec}` of `{name}` not found"
        )));
    };
    let mut resp = json(StatusCode::OK, manifest);
    mark_stale(&mut resp, stale);
    Ok(resp)
}

/// The denial for a version hidden by policy, with its reason and eligibility time.
async fn denied_version(ctx: &Ctx, name: &PackageName, version: &str) -> Error {
    let (doc, _) = match raw_packument(ctx, name).await {
        Ok(d) => d,
        Err(e) => return e,
    };
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at: published_at(&doc, version),
    };
    match ctx
        .registry
        .version_decisions(&ctx.caller, name.as_str(), std::slice::from_ref(&facts))
        .await
    {
        Ok(d) => match d.into_iter().next() {
            Some(Decision::Deny(denial)) => Error::Denied(denial),
            _ => Error::NotFound(format!("version `{version}` of `{name}` not found")),
        },
        Err(e) => e,
    }
}

fn artifact_response(artifact: Artifact, signature: Option<(&str, &str)>) -> Response<Body> {
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
    if let Some((sig, kind)) = signature
        && let (Ok(sig), Ok(kind)) = (HeaderValue::from_str(sig), HeaderValue::from_str(kind))
    {
        h.insert("x-artifact-signature", sig);
        h.insert("x-signature-type", kind);
    }
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

#[derive(serde::Deserialize)]
struct TimesOnly {
    #[serde(default)]
    time: std::collections::HashMap<String, Value>,
}

/// `GET /{name}/-/{file}`.
pub(crate) async fn tarball(ctx: &Ctx, name: &PackageName, file: &str) -> Result<Response<Body>> {
    ctx.registry.authorize(
        &ctx.caller.identity,
        Permission::SourceRead,
        Some(name.as_str()),
    )?;
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
        let facts = VersionFacts {
            version: version.to_owned(),
            published_at: Some(v.published_at),
        };
        ctx.registry
            .check_download(&ctx.caller, Permission::SourceRead, name.as_str(), &facts)
            .await?;
        let f = v
            .files
            .iter()
            .find(|f| f.filename == file)
            .ok_or_else(|| Error::NotFound(format!("`{file}` not found")))?;
        let sig = f.signature.as_deref().zip(f.signature_type.as_deref());
        return Ok(artifact_response(
            ctx.registry.open_blob(&f.sha256).await?,
            sig,
        ));
    }
    let key = format!("tarball/{}/{version}", name.as_str());
    let doc = ctx
        .registry
        .upstream_document(&packument_key(name), &name.escaped(), "application/json")
        .await?
        .ok_or_else(|| not_found(name))?;
    let times: TimesOnly = serde_json::from_slice(&doc.body).map_err(|_| {
        Error::Upstream(format!("upstream sent an unreadable packument for {name}"))
    })?;
    let published = times
        .time
        .get(version)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at: published,
    };
    ctx.registry
        .check_download(&ctx.caller, Permission::SourceRead, name.as_str(), &facts)
        .await?;
    if let Some(hit) = ctx.registry.cached_artifact(&key).await? {
        return Ok(artifact_response(hit, None));
    }
    let value: Value = serde_json::from_slice(&doc.body).map_err(|_| {
        Error::Upstream(format!("upstream sent an unreadable packument for {name}"))
    })?;
    let dist = value
        .get("versions")
        .and_then(|v| v.get(version))
        .and_then(|v| v.get("dist"))
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
    Ok(artifact_response(artifact, None))
}
