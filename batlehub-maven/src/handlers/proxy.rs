//! Proxy and hybrid reads: upstream metadata, POM publish times, and artifacts checked
//! against the upstream's `.sha256` (or `.sha1`) while they stream.

use std::sync::Arc;

use batlehub_core::body;
use batlehub_core::digest::{Digests, ExpectedDigest};
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Permission, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::checksum::Algo;
use crate::name::{Coords, parse_file};
use crate::wire::{self, Metadata};
use batlehub_core::protocol::Cx;

/// The cache key of the POM document of `coords:version`.
fn pom_key(coords: &Coords, version: &str, pom_file: &str) -> String {
    format!("maven:pom:{}/{version}/{pom_file}", coords.path())
}

fn check_names(meta: &Metadata, coords: &Coords, what: &str) -> Result<()> {
    if meta.group.as_deref().is_some_and(|g| g != coords.group)
        || meta
            .artifact
            .as_deref()
            .is_some_and(|a| a != coords.artifact)
    {
        return Err(Error::Upstream(format!(
            "the upstream {what} names another artifact than {coords}"
        )));
    }
    Ok(())
}

/// The upstream's artifact-level `maven-metadata.xml`, parsed (once per document digest),
/// its digest, and whether it is a stale copy (every upstream failed); `None` when no
/// upstream has the artifact.
pub(crate) async fn upstream_metadata(
    ctx: &Cx,
    coords: &Coords,
) -> Result<Option<(Arc<Metadata>, String, bool)>> {
    let Some(doc) = ctx
        .registry
        .upstream_document(
            &format!("maven:meta:{}", coords.path()),
            &format!("{}/maven-metadata.xml", coords.path()),
            "application/xml, text/xml",
        )
        .await?
    else {
        return Ok(None);
    };
    let key = format!("maven-meta:{}:{}", doc.sha256, coords.path());
    let meta = ctx
        .registry
        .memo()
        .get_or_try(&key, doc.body.len().saturating_mul(2), || {
            let meta = wire::parse_metadata(&doc.body).map_err(|e| {
                Error::Upstream(format!(
                    "the upstream maven-metadata.xml of {coords} is unusable: {}",
                    e.client_message()
                ))
            })?;
            check_names(&meta, coords, "maven-metadata.xml")?;
            Ok::<_, Error>(meta)
        })?;
    Ok(Some((meta, doc.sha256, doc.stale)))
}

/// The upstream's version-level metadata of a SNAPSHOT, checked and passed through.
pub(crate) async fn upstream_snapshot_metadata(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
) -> Result<Option<Bytes>> {
    let Some(doc) = ctx
        .registry
        .upstream_document(
            &format!("maven:meta:{}/{version}", coords.path()),
            &format!("{}/{version}/maven-metadata.xml", coords.path()),
            "application/xml, text/xml",
        )
        .await?
    else {
        return Ok(None);
    };
    let meta = wire::parse_metadata(&doc.body).map_err(|e| {
        Error::Upstream(format!(
            "the upstream maven-metadata.xml of {coords}:{version} is unusable: {}",
            e.client_message()
        ))
    })?;
    check_names(&meta, coords, "maven-metadata.xml")?;
    Ok(Some(doc.body))
}

/// When `coords:version` was published upstream, as far as known: the `Last-Modified` of
/// its POM when that POM has been fetched (the core keeps it with the cached document).
pub(crate) async fn pom_time(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
) -> Result<Option<DateTime<Utc>>> {
    let pom = format!("{}-{version}.pom", coords.artifact);
    cached_time(ctx, &pom_key(coords, version, &pom)).await
}

/// Fetches the POM of `coords:version` (through the document cache) to learn its publish
/// time; failures leave it unknown.
pub(crate) async fn fetch_pom_time(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
) -> Option<DateTime<Utc>> {
    let pom = format!("{}-{version}.pom", coords.artifact);
    let key = pom_key(coords, version, &pom);
    let path = format!("{}/{version}/{pom}", coords.path());
    match ctx
        .registry
        .upstream_document(&key, &path, "application/xml, text/xml")
        .await
    {
        Ok(doc) => doc
            .and_then(|d| d.last_modified)
            .as_deref()
            .and_then(http_time),
        Err(e) => {
            tracing::warn!(%coords, version, error = %e, "upstream POM failed; publish time unknown");
            None
        }
    }
}

async fn cached_time(ctx: &Cx, key: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(ctx
        .registry
        .local()
        .cached_document(key)
        .await?
        .and_then(|d| d.last_modified)
        .as_deref()
        .and_then(http_time))
}

/// An HTTP date (`Last-Modified`).
fn http_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The checksum the upstream publishes beside `path` for `algo`, when it has one.
pub(crate) async fn upstream_checksum(ctx: &Cx, path: &str, algo: Algo) -> Option<String> {
    let name = algo.name();
    match ctx
        .registry
        .upstream_document(
            &format!("maven:sum:{path}.{name}"),
            &format!("{path}.{name}"),
            "text/plain",
        )
        .await
    {
        Ok(Some(doc)) => algo
            .parse_file(&doc.body)
            .inspect_err(|_| tracing::warn!(path, name, "upstream checksum file is malformed"))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(path, name, error = %e, "upstream checksum file failed");
            None
        }
    }
}

/// The digest the upstream publishes beside `path`: `.sha256`, else `.sha1`.
async fn expected_digest(ctx: &Cx, path: &str) -> Option<ExpectedDigest> {
    for algo in [Algo::Sha256, Algo::Sha1] {
        if let Some(hex) = upstream_checksum(ctx, path, algo).await {
            return ExpectedDigest::from_hex(algo.name(), &hex);
        }
    }
    None
}

/// An upstream file, through the cache, after the download check (publish time: the
/// `Last-Modified` of the build's POM).
pub(crate) async fn file(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    permission: Permission,
) -> Result<(Artifact, Option<DateTime<Utc>>)> {
    let not_found = || Error::NotFound(format!("no file {file} in {coords}:{version}"));
    let name = parse_file(&coords.artifact, version, file).ok_or_else(not_found)?;
    let dir = format!("{}/{version}", coords.path());
    let pom_file = format!("{}-{}.pom", coords.artifact, name.value(version));
    let pom_key = pom_key(coords, version, &pom_file);
    let pom = ctx
        .registry
        .upstream_document(
            &pom_key,
            &format!("{dir}/{pom_file}"),
            "application/xml, text/xml",
        )
        .await?
        .ok_or_else(not_found)?;
    let published_at = pom.last_modified.as_deref().and_then(http_time);
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at,
    };
    ctx.registry
        .check_download(&ctx.caller, permission, &coords.key(), &facts)
        .await?;
    let path = format!("{dir}/{file}");
    if file == pom_file {
        let digests = Digests::of(&pom.body);
        let unverified = match expected_digest(ctx, &path).await {
            Some(expected) if !expected.matches(&digests) => {
                tracing::error!(%path, "upstream POM does not match its published checksum");
                return Err(Error::Integrity { key: path });
            }
            Some(_) => false,
            None if ctx.registry.config().allow_unverified => true,
            None => {
                return Err(Error::Upstream(format!(
                    "the upstream published no digest for {path}, so its bytes cannot be verified; refusing them (a registry may set allow_unverified)"
                )));
            }
        };
        let artifact = Artifact {
            size: Some(pom.body.len() as u64),
            sha256: Some(digests.sha256_hex()),
            body: body::full(pom.body),
            unverified,
        };
        return Ok((artifact, published_at));
    }
    let cache_key = format!("maven:file:{path}");
    if let Some(hit) = ctx.registry.cached_artifact(&cache_key).await? {
        return Ok((hit, published_at));
    }
    let expected = expected_digest(ctx, &path).await;
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("proxy without upstream client"))?;
    let url = client.url_for(pom.upstream, &path)?;
    let artifact = ctx
        .registry
        .upstream_artifact(&cache_key, url, expected)
        .await?;
    Ok((artifact, published_at))
}
