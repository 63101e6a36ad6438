//! The upstream RubyGems source: its compact index (`/info/{gem}` read once per document
//! and kept byte for byte when policy hides nothing; `/versions` and `/names` passed
//! through), its push times (`/api/v1/versions/{gem}.json`, asked only when policy decides
//! on them), and its `.gem` files, each checked while it streams against the `checksum:`
//! its `/info` line publishes (fail closed: a `.gem` without one is refused).

use std::sync::Arc;

use base64::Engine as _;

use batlehub_core::digest::ExpectedDigest;
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::Cx;
use batlehub_core::{Artifact, Error, Result};
use bytes::Bytes;

use crate::handlers::compact::CompactDoc;
use crate::handlers::prepared::{Entry, Prepared};
use crate::wire::{InfoLine, UpstreamVersion};

/// The upstream's `/info/{name}` prepared, and whether it is a stale copy; `None` when no
/// upstream has the gem.
pub(crate) async fn prepared(cx: &Cx, name: &str) -> Result<Option<(Arc<Prepared>, bool)>> {
    let Some(doc) = cx
        .registry
        .upstream_document_ref(
            &format!("info:{name}"),
            &format!("info/{name}"),
            "text/plain",
        )
        .await?
    else {
        return Ok(None);
    };
    // The prepared value records which upstream served it: the key names the registry and
    // the upstream (the memory cache is shared by every registry of a hub).
    let key = format!(
        "gem-info:{}:{}:{}:{name}",
        cx.registry.name(),
        doc.upstream,
        doc.sha256
    );
    let prepared = cx
        .registry
        .memo()
        .get_or_load(&key, async {
            let body = cx.registry.document_bytes(&doc).await?;
            let text = std::str::from_utf8(&body).map_err(|_| {
                Error::Upstream(format!("the upstream's /info/{name} is not UTF-8 text"))
            })?;
            let prepared = Prepared::new(
                parse_info(text),
                CompactDoc::new(body.clone()),
                doc.upstream,
            );
            let weight = prepared.weight();
            Ok((prepared, weight))
        })
        .await?;
    Ok(Some((prepared, doc.stale)))
}

/// The entries of an `/info` document (lines after `---`; lines that are not versions are
/// left out).
fn parse_info(text: &str) -> Vec<Entry> {
    let body = match text.split_once("---\n") {
        Some((_, rest)) => rest,
        None => text,
    };
    body.lines()
        .filter_map(|line| {
            let parsed = InfoLine::parse(line)?;
            Some(Entry {
                number: parsed.number,
                platform: parsed.platform,
                line: line.to_owned(),
                sha256: parsed.sha256,
                published_at: parsed.created_at,
            })
        })
        .collect()
}

/// Fills in the push times a release-age gate needs from the upstream's
/// `/api/v1/versions/{name}.json` (one request per gem, cached like any document).
/// Versions it does not list keep no time (policy decides what that means).
pub(crate) async fn learn_publish_times(
    cx: &Cx,
    name: &str,
    prepared: &Prepared,
    facts: &mut [VersionFacts],
) -> Result<()> {
    let Some(versions) = versions_json(cx, name).await? else {
        return Ok(());
    };
    let times: std::collections::HashMap<(&str, &str), _> = versions
        .iter()
        .map(|v| {
            (
                (v.number.as_str(), v.platform.as_deref().unwrap_or("ruby")),
                v.created_at(),
            )
        })
        .collect();
    for (fact, entry) in facts.iter_mut().zip(&prepared.entries) {
        if fact.published_at.is_none() {
            fact.published_at = times
                .get(&(entry.number.as_str(), entry.platform.as_str()))
                .copied()
                .flatten();
        }
    }
    Ok(())
}

/// The upstream's `/api/v1/versions/{name}.json`, read (cached per document).
async fn versions_json(cx: &Cx, name: &str) -> Result<Option<Arc<Vec<UpstreamVersion>>>> {
    let Some(doc) = cx
        .registry
        .upstream_document_ref(
            &format!("versions-json:{name}"),
            &format!("api/v1/versions/{name}.json"),
            "application/json",
        )
        .await?
    else {
        return Ok(None);
    };
    let key = format!("gem-versions-json:{}", doc.sha256);
    let parsed = cx
        .registry
        .memo()
        .get_or_load(&key, async {
            let body = cx.registry.document_bytes(&doc).await?;
            let versions: Vec<UpstreamVersion> = serde_json::from_slice(&body).map_err(|e| {
                Error::Upstream(format!(
                    "the upstream's version list of {name} is not valid JSON: {e}"
                ))
            })?;
            let weight = versions.len() * 96;
            Ok((versions, weight))
        })
        .await?;
    Ok(Some(parsed))
}

/// An upstream document passed through as it is (`/versions`, `/names`, the full index,
/// quick gemspecs, the JSON APIs): its bytes and whether they are a stale copy; `None`
/// when no upstream has it.
pub(crate) async fn document(
    cx: &Cx,
    path: &str,
    accept: &'static str,
) -> Result<Option<(Bytes, String, bool)>> {
    let Some(doc) = cx
        .registry
        .upstream_document_ref(&format!("doc:{path}"), path, accept)
        .await?
    else {
        return Ok(None);
    };
    let body = cx.registry.document_bytes(&doc).await?;
    Ok(Some((body, doc.sha256, doc.stale)))
}

/// The upstream's compact index document at `path`, with its digests (computed once per
/// document).
pub(crate) async fn compact(cx: &Cx, path: &str) -> Result<Option<(Arc<CompactDoc>, bool)>> {
    let Some(doc) = cx
        .registry
        .upstream_document_ref(&format!("doc:{path}"), path, "text/plain")
        .await?
    else {
        return Ok(None);
    };
    let key = format!("gem-compact:{}", doc.sha256);
    let compact = cx
        .registry
        .memo()
        .get_or_load(&key, async {
            let body = cx.registry.document_bytes(&doc).await?;
            let compact = CompactDoc::new(body);
            let weight = compact.weight();
            Ok((compact, weight))
        })
        .await?;
    Ok(Some((compact, doc.stale)))
}

/// The `.gem` `{full_name}.gem`, from the cache or the upstream, checked against `entry`'s
/// `checksum:` while it streams.
pub(crate) async fn gem(
    cx: &Cx,
    full_name: &str,
    entry: &Entry,
    upstream: usize,
) -> Result<Artifact> {
    // `checksum:` is hex (64 characters) or, from some servers, base64 (44): bundler takes
    // both. The cache key holds it, so a copy cached under another checksum (an upstream
    // that changed its mind, another upstream) is never served for this one.
    let expected = entry.sha256.as_deref().and_then(|c| {
        let bytes = match c.len() {
            64 => hex::decode(c).ok(),
            44 => base64::engine::general_purpose::STANDARD.decode(c).ok(),
            _ => None,
        };
        bytes.filter(|d| d.len() == 32)
    });
    let key = format!(
        "gem:{full_name}:{}",
        expected.as_deref().map(hex::encode).unwrap_or_default()
    );
    if let Some(hit) = cx.registry.cached_artifact(&key).await? {
        return Ok(hit);
    }
    let expected = expected.map(ExpectedDigest::Sha256);
    let client = cx
        .registry
        .upstream()
        .ok_or_else(|| Error::NotFound("registry has no upstream".into()))?;
    let url = client.url_for(upstream, &format!("gems/{full_name}.gem"))?;
    cx.registry.upstream_artifact(&key, url, expected).await
}
