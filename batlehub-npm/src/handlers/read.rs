//! Reads: packuments, version manifests, tarballs — with policy applied on the way out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use batlehub_core::baseurl::{self, Rendering};
use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::model::Decision;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Permission, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Response, StatusCode};
use serde_json::Value;

use crate::name::PackageName;
use crate::render::Packument;
use crate::wire::{self, CORGI};
use batlehub_core::protocol::{self, Cx, json};

pub(crate) fn packument_key(name: &PackageName) -> String {
    format!("packument/{}", name.as_str())
}

/// A packument ready to serve, before policy: its JSON text and what policy needs to know
/// of each version. Prepared once per upstream document digest (or local package state)
/// and shared by every request whatever its `Host`; renderings (see [`rendering`]) live
/// beside it in the memo under keys derived from its `id`, tarball URLs under
/// [`baseurl::placeholder`], each response [`baseurl::rebase`]d. No parsed tree is kept:
/// a big packument's tree weighs fifteen times its text.
pub(crate) struct Prepared {
    /// Content digest and name, or a local state id that is never reused.
    id: String,
    name: PackageName,
    /// The document (an upstream's as it sent it, or a local package's as written).
    source: Bytes,
    facts: Vec<VersionFacts>,
    times: HashMap<String, Option<DateTime<Utc>>>,
    /// The `dist` of each version as the upstream wrote it (its own tarball URL and
    /// digests), for fetching tarballs; empty for a local packument.
    upstream_dist: HashMap<String, Value>,
}

impl Prepared {
    /// Reads `source` (call it on the blocking pool when it is big).
    fn new(id: String, name: PackageName, source: Bytes, upstream: bool) -> Result<Self> {
        let doc = Packument::parse(&source).map_err(|e| {
            tracing::warn!(package = %name, error = %e, "packument is not a JSON object");
            Error::Upstream(format!("upstream sent an unreadable packument for {name}"))
        })?;
        let facts = doc.facts();
        let times = doc.times();
        let upstream_dist = if upstream {
            doc.dists()
        } else {
            HashMap::new()
        };
        drop(doc);
        Ok(Self {
            id,
            name,
            source,
            facts,
            times,
            upstream_dist,
        })
    }

    /// What this preparation holds, in bytes.
    fn weight(&self) -> usize {
        let facts = self.facts.len().saturating_mul(160);
        let dist = self.upstream_dist.len().saturating_mul(256);
        facts.saturating_add(dist).saturating_add(self.source.len())
    }

    /// When `version` was published, as the packument says.
    fn published(&self, version: &str) -> Option<DateTime<Utc>> {
        self.times.get(version).copied().flatten()
    }
}

/// The packument as this caller sees it (full or abbreviated, `denied` moved out of
/// sight), rendered once per preparation, representation and set of denials and shared:
/// a burst of requests renders it once, on the blocking pool when it is big.
async fn rendering(
    ctx: &Cx,
    prepared: &Arc<Prepared>,
    corgi: bool,
    denied: Vec<(String, String)>,
) -> Result<Arc<Rendering>> {
    let fingerprint = batlehub_core::policy::denials_key(
        denied
            .iter()
            .map(|(v, reason)| (v.as_str(), reason.as_str())),
    );
    let key = format!("{}:render:{corgi}:{fingerprint}", prepared.id);
    let size = prepared.source.len();
    let prepared = prepared.clone();
    ctx.registry
        .memo()
        .get_or_build(&key, size, move || {
            // The source was read when it was prepared: it is a JSON object.
            let doc = Packument::parse(&prepared.source)
                .map_err(|e| Error::internal(format!("prepared packument unreadable: {e}")))?;
            let bytes = doc.render(baseurl::placeholder(), &prepared.name, corgi, &denied);
            let rendering = Rendering::new(Bytes::from(bytes));
            let weight = rendering.weight();
            Ok((rendering, weight))
        })
        .await
}

/// The base URL as it is written inside a JSON string.
fn json_base(ctx: &Cx) -> String {
    let quoted = serde_json::to_string(&ctx.base).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

/// The upstream packument `doc` prepared, shared by every request that sees the same
/// document bytes (whatever base URL it asks under): found by digest without touching the
/// bytes; on a miss read and parsed once per burst of requests, off the async workers when
/// it is large.
async fn prepared(
    ctx: &Cx,
    name: &PackageName,
    doc: &batlehub_core::DocumentRef,
) -> Result<Arc<Prepared>> {
    let key = format!("npm:{}:{}", doc.sha256, name.as_str());
    let (name, id) = (name.clone(), key.clone());
    ctx.registry
        .memo()
        .get_or_load(&key, async move {
            let body = ctx.registry.document_bytes(doc).await?;
            let build = move || {
                let prepared = Prepared::new(id, name, body, true)?;
                let weight = prepared.weight();
                Ok((prepared, weight))
            };
            protocol::blocking(build).await
        })
        .await
}

/// The local packument of `name`, prepared once per package state (reused while the index
/// hands out the same package; it hands out a new one after every change).
async fn local_prepared(ctx: &Cx, name: &PackageName) -> Result<Option<Arc<Prepared>>> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let Some(pkg) = ctx.registry.local_package(name.as_str()).await? else {
        return Ok(None);
    };
    let key = format!("npm-local:{}:{}", ctx.registry.name(), name.as_str());
    let weight = pkg.versions.len().saturating_mul(4096);
    let prepared = ctx
        .registry
        .memo()
        .derived::<_, _, Error>(key, &pkg, weight, |pkg| {
            let doc = wire::local_packument(baseurl::placeholder(), name, pkg);
            let source = Bytes::from(serde_json::to_vec(&doc).map_err(Error::internal)?);
            // Ids are never reused, so renderings kept under them cannot be mistaken for
            // another state's.
            let id = format!("npm-local#{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
            Prepared::new(id, name.clone(), source, false)
        })?;
    Ok(Some(prepared))
}

/// The packument as stored or fetched, prepared; and whether it is stale.
async fn load_prepared(ctx: &Cx, name: &PackageName) -> Result<(Arc<Prepared>, bool)> {
    if ctx.is_local(name.as_str()).await? {
        return local_prepared(ctx, name)
            .await?
            .map(|p| (p, false))
            .ok_or_else(|| not_found(name));
    }
    let doc = ctx
        .registry
        .upstream_document_ref(&packument_key(name), &name.escaped(), "application/json")
        .await?
        .ok_or_else(|| not_found(name))?;
    Ok((prepared(ctx, name, &doc).await?, doc.stale))
}

/// The packument this caller may see: package access checked, versions denied by policy
/// moved from `versions` to npm's `policyRestrictions` (so `npm install pkg@denied` prints
/// the reason), dist-tags repaired. Returns the document, whether it is stale, and the
/// denials by version.
pub(crate) async fn full_packument(ctx: &Cx, name: &PackageName) -> Result<(Value, bool)> {
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, name.as_str())
        .await?;
    let (prepared, stale) = load_prepared(ctx, name).await?;
    // `npm unpublish` and `npm deprecate` read `?write=true` and send the document back:
    // owners get every version, so that hidden ones are not dropped by the round trip.
    let owner = wants_write(ctx)
        && ctx.is_local(name.as_str()).await?
        && ctx
            .registry
            .check_manage(&ctx.caller, name.as_str(), "read-for-write")
            .await
            .is_ok();
    let denied = if owner {
        Vec::new()
    } else {
        let decisions = ctx
            .registry
            .version_decisions(&ctx.caller, name.as_str(), &prepared.facts)
            .await?;
        denials(&prepared.facts, decisions)
    };
    let big = prepared.source.len() >= batlehub_core::memo::INLINE_SIZE;
    let bytes = rendering(ctx, &prepared, false, denied)
        .await?
        .at(&json_base(ctx));
    let parse = move || {
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format!("rendered packument unreadable: {e}")))
    };
    let doc = if big {
        protocol::blocking(parse).await?
    } else {
        parse()?
    };
    Ok((doc, stale))
}

pub(crate) fn not_found(name: &PackageName) -> Error {
    Error::NotFound(format!("package `{name}` not found"))
}

fn wants_corgi(ctx: &Cx) -> bool {
    ctx.parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(CORGI))
}

fn wants_write(ctx: &Cx) -> bool {
    ctx.parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "write=true"))
}

/// `GET /{name}`.
///
/// The hot path: the prepared packument is shared, the policy decides per version from
/// in-memory facts, and when it denies nothing the rendering made for the first request is
/// served as is. Denials are rendered once per distinct set of denials.
pub(crate) async fn packument(ctx: &Cx, name: &PackageName) -> Result<Response<Body>> {
    let corgi = wants_corgi(ctx);
    let content_type = if corgi { CORGI } else { "application/json" };
    if wants_write(ctx) {
        let (full, stale) = full_packument(ctx, name).await?;
        let mut resp = json(StatusCode::OK, &full);
        protocol::mark_stale(&mut resp, stale);
        return Ok(resp);
    }
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, name.as_str())
        .await?;
    let (prepared, stale) = load_prepared(ctx, name).await?;
    let decisions = ctx
        .registry
        .version_decisions(&ctx.caller, name.as_str(), &prepared.facts)
        .await?;
    let denied = denials(&prepared.facts, decisions);
    let bytes = rendering(ctx, &prepared, corgi, denied)
        .await?
        .at(&json_base(ctx));
    let mut resp = Response::new(batlehub_core::body::full(bytes));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// The denied versions and their reasons, in document order.
fn denials(facts: &[VersionFacts], decisions: Vec<Decision>) -> Vec<(String, String)> {
    facts
        .iter()
        .zip(decisions)
        .filter_map(|(f, d)| match d {
            Decision::Deny(denial) => Some((f.version.clone(), denial.reason)),
            Decision::Allow => None,
        })
        .collect()
}

/// `GET /{name}/{version-or-tag}`.
pub(crate) async fn version(ctx: &Cx, name: &PackageName, spec: &str) -> Result<Response<Body>> {
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
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// The denial for a version hidden by policy, with its reason and eligibility time.
async fn denied_version(ctx: &Cx, name: &PackageName, version: &str) -> Error {
    let prepared = match load_prepared(ctx, name).await {
        Ok((p, _)) => p,
        Err(e) => return e,
    };
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at: prepared.published(version),
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

fn artifact_response(
    ctx: &Cx,
    artifact: Artifact,
    signature: Option<(&str, &str)>,
) -> Response<Body> {
    let mut resp = protocol::artifact(artifact, protocol::OCTET_STREAM, ctx.audience());
    if let Some((sig, kind)) = signature
        && let (Ok(sig), Ok(kind)) = (HeaderValue::from_str(sig), HeaderValue::from_str(kind))
    {
        let h = resp.headers_mut();
        h.insert("x-artifact-signature", sig);
        h.insert("x-signature-type", kind);
    }
    resp
}

/// `GET /{name}/-/{file}`.
pub(crate) async fn tarball(ctx: &Cx, name: &PackageName, file: &str) -> Result<Response<Body>> {
    ctx.registry.authorize(
        &ctx.caller.identity,
        Permission::SourceRead,
        Some(name.as_str()),
    )?;
    let version = name
        .version_of_file(file)
        .ok_or_else(|| Error::NotFound(format!("`{file}` is not a tarball of `{name}`")))?;
    if ctx.is_local(name.as_str()).await? {
        let v = ctx
            .registry
            .local()
            .version(name.as_str(), version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("`{name}@{version}` not found")))?;
        let facts = VersionFacts::of(&v);
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
            ctx,
            ctx.registry.open_blob(&f.sha256).await?,
            sig,
        ));
    }
    let key = format!("tarball/{}/{version}", name.as_str());
    let doc = ctx
        .registry
        .upstream_document_ref(&packument_key(name), &name.escaped(), "application/json")
        .await?
        .ok_or_else(|| not_found(name))?;
    let prepared = prepared(ctx, name, &doc).await?;
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at: prepared.published(version),
    };
    ctx.registry
        .check_download(&ctx.caller, Permission::SourceRead, name.as_str(), &facts)
        .await?;
    if let Some(hit) = ctx.registry.cached_artifact(&key).await? {
        return Ok(artifact_response(ctx, hit, None));
    }
    let dist = prepared
        .upstream_dist
        .get(version)
        .ok_or_else(|| Error::NotFound(format!("`{name}@{version}` not found")))?;
    let raw_url = dist.get("tarball").and_then(Value::as_str).ok_or_else(|| {
        Error::Upstream(format!("upstream lists no tarball for {name}@{version}"))
    })?;
    let url = ctx.registry.upstream_link(doc.upstream, raw_url)?;
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
    Ok(artifact_response(ctx, artifact, None))
}
