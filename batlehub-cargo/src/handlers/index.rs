//! The sparse index: `config.json` and index files, with policy applied on the way out.

use batlehub_core::body::Body;
use batlehub_core::model::{Decision, LocalPackage, VersionRecord};
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Document, Error, Identity, Permission, Result};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};

use crate::name::CrateName;
use crate::wire::{IndexConfig, IndexLine, LineFacts, parse_pubtime, pubtime};
use batlehub_core::protocol::{self, Cx};

/// Cache key of the upstream `config.json`.
const CONFIG_KEY: &str = "config.json";
/// The largest upstream `config.json` read outside the document cache.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

pub(crate) fn not_found(name: &CrateName) -> Error {
    Error::NotFound(format!("crate `{name}` does not exist"))
}

/// The local crate stored under `name`'s key, with at least one version.
pub(crate) async fn local_package(ctx: &Cx, name: &CrateName) -> Result<Option<LocalPackage>> {
    Ok(ctx
        .registry
        .local()
        .package(&name.key())
        .await?
        .filter(|p| !p.versions.is_empty()))
}

/// The upstream index file of `name` (each spelling is its own upstream file), through the
/// document cache.
pub(crate) async fn upstream_index(ctx: &Cx, name: &CrateName) -> Result<Option<Document>> {
    ctx.registry
        .upstream_document(
            &format!("index/{}", name.lower()),
            &name.index_path(),
            "text/plain, */*",
        )
        .await
}

/// An upstream index file read once per content digest: its readable lines with what
/// policy and downloads need from each, and the file as served when policy denies nothing.
pub(crate) struct UpstreamIndex {
    /// Each line as the upstream wrote it, and its facts.
    pub(crate) lines: Vec<(String, LineFacts)>,
    facts: Vec<VersionFacts>,
    plain: Bytes,
    plain_etag: String,
}

/// The non-empty lines of an upstream index file, with what policy needs from each, kept
/// in the registry's memory cache by digest. Lines that cannot be read are dropped (policy
/// cannot vouch for them).
pub(crate) async fn upstream_lines(
    ctx: &Cx,
    name: &CrateName,
    doc: &Document,
) -> Result<Arc<UpstreamIndex>> {
    let key = format!("cargo-index:{}:{}", doc.sha256, name.lower());
    let (body, name) = (doc.body.clone(), name.clone());
    // Parsed once per burst of requests, off the async workers when large.
    ctx.registry
        .memo()
        .get_or_build(&key, doc.body.len(), move || {
            let weight = body.len().saturating_mul(3);
            let text = std::str::from_utf8(&body).map_err(|_| {
                Error::Upstream(format!("upstream sent an unreadable index file for {name}"))
            })?;
            let lines: Vec<(String, LineFacts)> = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| match serde_json::from_str::<LineFacts>(l) {
                    Ok(f) => Some((l.to_owned(), f)),
                    Err(e) => {
                        tracing::warn!(krate = %name, error = %e, "dropping unreadable upstream index line");
                        None
                    }
                })
                .collect();
            let facts = lines
                .iter()
                .map(|(_, f)| VersionFacts {
                    version: f.vers.clone(),
                    published_at: f.pubtime.as_deref().and_then(parse_pubtime),
                })
                .collect();
            let mut plain = String::new();
            for (raw, _) in &lines {
                plain.push_str(raw);
                plain.push('\n');
            }
            let index = UpstreamIndex {
                lines,
                facts,
                plain_etag: protocol::etag_of(plain.as_bytes()),
                plain: Bytes::from(plain),
            };
            Ok((index, weight))
        })
        .await
}

/// The `config.json` of upstream `i`: from the document cache when the cached copy came
/// from that upstream, else fetched directly.
pub(crate) async fn upstream_config(ctx: &Cx, i: usize) -> Result<IndexConfig> {
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<IndexConfig>(bytes).map_err(|e| {
            tracing::warn!(error = %e, "upstream config.json is not a cargo index config");
            Error::Upstream("the upstream's config.json is not a cargo index configuration".into())
        })
    };
    if let Some(doc) = ctx
        .registry
        .upstream_document(CONFIG_KEY, "config.json", "application/json")
        .await?
        && doc.upstream == i
    {
        return parse(&doc.body);
    }
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("proxy without upstream client"))?;
    let url = client.url_for(i, "config.json")?;
    let resp = client.get(url, http::HeaderMap::new()).await?;
    if !resp.status().is_success() {
        return Err(Error::Upstream(format!(
            "upstream answered {} for its config.json (is the upstream URL a sparse index root?)",
            resp.status()
        )));
    }
    let buf = batlehub_core::upstream::read_limited(resp, MAX_CONFIG_BYTES, "config.json").await?;
    parse(&buf)
}

/// `GET /registry/config.json`.
pub(crate) fn config(ctx: &Cx) -> Result<Response<Body>> {
    ctx.registry
        .authorize(ctx.identity(), Permission::ReleasesRead, None)?;
    let auth_required = ctx
        .registry
        .authorize(&Identity::Anonymous, Permission::ReleasesRead, None)
        .is_err();
    let config = IndexConfig::for_base(&ctx.base, auth_required);
    let bytes = serde_json::to_vec(&config).map_err(Error::internal)?;
    Ok(etagged(ctx, bytes.into(), None, "application/json"))
}

/// `GET /registry/{prefix}/{name}`: one line per version; versions policy denies this caller
/// are shown as yanked, so cargo keeps them in lockfiles but never selects them.
pub(crate) async fn index_file(ctx: &Cx, name: &CrateName) -> Result<Response<Body>> {
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, &name.key())
        .await?;
    let (bytes, etag, stale) = if ctx.is_local(&name.key()).await? {
        let (bytes, etag) = render_local(ctx, name).await?;
        (bytes, etag, false)
    } else {
        let doc = upstream_index(ctx, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let (bytes, etag) = render_upstream(ctx, name, &doc).await?;
        (bytes, etag, doc.stale)
    };
    let mut resp = etagged(ctx, bytes, etag, "text/plain; charset=utf-8");
    if stale {
        resp.headers_mut()
            .insert("x-batlehub-cache", HeaderValue::from_static("stale"));
        resp.headers_mut().insert(
            http::header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
    Ok(resp)
}

async fn decisions(ctx: &Cx, name: &CrateName, facts: &[VersionFacts]) -> Result<Vec<Decision>> {
    ctx.registry
        .version_decisions(&ctx.caller, &name.key(), facts)
        .await
}

/// The index line of a stored version: the metadata written at publish, with the current
/// yanked flag (or policy's denial) and the publish time.
pub(crate) fn local_line(v: &VersionRecord, denied: bool) -> Result<IndexLine> {
    let mut line: IndexLine = serde_json::from_value(v.metadata.clone()).map_err(|e| {
        Error::internal(format!(
            "stored index line of {}@{} is unreadable: {e}",
            v.package, v.version
        ))
    })?;
    line.yanked = v.yanked || denied;
    line.pubtime = Some(pubtime(v.published_at));
    Ok(line)
}

/// A local crate's index file prepared from one state of the package, reused while the
/// index hands out the same package (it hands out a new one after every change).
struct LocalIndex {
    facts: Vec<VersionFacts>,
    plain: Bytes,
    plain_etag: String,
}

/// The index file of a local crate as this caller may see it, and its ETag when known.
async fn render_local(ctx: &Cx, name: &CrateName) -> Result<(Bytes, Option<String>)> {
    let pkg = ctx
        .registry
        .local_package(&name.key())
        .await?
        .ok_or_else(|| not_found(name))?;
    let key = format!("cargo-local:{}:{}", ctx.registry.name(), name.key());
    let weight = pkg.versions.len().saturating_mul(2048);
    let prepared = ctx.registry.memo().derived(key, &pkg, weight, |pkg| {
        let plain = local_lines(pkg, &[])?;
        Ok::<_, Error>(LocalIndex {
            facts: pkg.versions.iter().map(VersionFacts::of).collect(),
            plain_etag: protocol::etag_of(plain.as_bytes()),
            plain: Bytes::from(plain),
        })
    })?;
    let decisions = decisions(ctx, name, &prepared.facts).await?;
    if decisions.iter().all(|d| matches!(d, Decision::Allow)) {
        return Ok((prepared.plain.clone(), Some(prepared.plain_etag.clone())));
    }
    let denied: Vec<bool> = decisions
        .iter()
        .map(|d| matches!(d, Decision::Deny(_)))
        .collect();
    Ok((local_lines(&pkg, &denied)?.into(), None))
}

/// The index lines of `pkg`'s versions; `denied[i]` shows version `i` as yanked.
fn local_lines(pkg: &LocalPackage, denied: &[bool]) -> Result<String> {
    let mut out = String::new();
    for (i, v) in pkg.versions.iter().enumerate() {
        let line = local_line(v, denied.get(i).copied().unwrap_or(false))?;
        out.push_str(&serde_json::to_string(&line).map_err(Error::internal)?);
        out.push('\n');
    }
    Ok(out)
}

/// The index file as this caller may see it, and its ETag when already known.
async fn render_upstream(
    ctx: &Cx,
    name: &CrateName,
    doc: &Document,
) -> Result<(Bytes, Option<String>)> {
    let prepared = upstream_lines(ctx, name, doc).await?;
    let decisions = decisions(ctx, name, &prepared.facts).await?;
    if decisions.iter().all(|d| matches!(d, Decision::Allow)) {
        return Ok((prepared.plain.clone(), Some(prepared.plain_etag.clone())));
    }
    let mut out = String::new();
    for ((raw, f), d) in prepared.lines.iter().zip(decisions) {
        if matches!(d, Decision::Deny(_)) && !f.yanked {
            // Only the yanked flag changes; every other field passes through untouched.
            let mut value: serde_json::Value =
                serde_json::from_str(raw).map_err(Error::internal)?;
            if let Some(obj) = value.as_object_mut() {
                obj.insert("yanked".into(), serde_json::Value::Bool(true));
            }
            out.push_str(&value.to_string());
        } else {
            out.push_str(raw);
        }
        out.push('\n');
    }
    Ok((out.into(), None))
}

/// A document with a strong ETag (sha256 of the bytes), answering 304 when the client's
/// `If-None-Match` has it. No `Last-Modified`: policy makes the content depend on the clock,
/// so only the content itself can say whether it changed; `no-cache` makes cargo revalidate.
fn etagged(
    ctx: &Cx,
    bytes: Bytes,
    etag: Option<String>,
    content_type: &'static str,
) -> Response<Body> {
    let mut resp = protocol::conditional(&ctx.parts, content_type, bytes, etag);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    resp
}
