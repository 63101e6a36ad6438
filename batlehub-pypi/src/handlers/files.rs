//! Downloads: distribution files and their PEP 658 `.metadata` files.

use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::model::Decision;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Permission, Result};
use http::Response;

use crate::handlers::project::{self, not_found};
use crate::name::{DistKind, ProjectName, check_filename, parse_filename};
use crate::wire::DistFile;
use batlehub_core::protocol::{self, Cx};

/// `GET /packages/{project}/{filename}` and `GET /packages/{project}/{filename}.metadata`.
pub(crate) async fn download(ctx: &Cx, project: &str, filename: &str) -> Result<Response<Body>> {
    let name = ProjectName::parse(project)?;
    check_filename(filename)?;
    let (dist, metadata) = match filename.strip_suffix(".metadata") {
        Some(d) => (d, true),
        None => (filename, false),
    };
    let not_a_dist = || Error::NotFound(format!("`{filename}` is not a file of `{name}`"));
    let kind = parse_filename(dist, &name).ok_or_else(not_a_dist)?.kind;
    let permission = if kind == DistKind::Sdist && !metadata {
        Permission::SourceRead
    } else {
        Permission::ReleasesRead
    };
    // Refuse anonymous callers before touching any upstream.
    ctx.registry
        .authorize(ctx.identity(), permission, Some(name.as_str()))?;
    let shared = project::load_shared(ctx, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let listing = &shared.listing;
    let (release, file) = listing.find_file(dist).ok_or_else(not_a_dist)?;
    let facts = VersionFacts {
        version: release.version.clone(),
        published_at: release.published_at,
    };
    if metadata {
        // Metadata is read like a project page: checked, not audited as a download.
        ctx.registry
            .check_package(&ctx.caller, permission, name.as_str())
            .await?;
        let decision = ctx
            .registry
            .version_decisions(&ctx.caller, name.as_str(), std::slice::from_ref(&facts))
            .await?;
        if let Some(Decision::Deny(d)) = decision.into_iter().next() {
            return Err(Error::Denied(d));
        }
    } else {
        ctx.registry
            .check_download(&ctx.caller, permission, name.as_str(), &facts)
            .await?;
    }
    let no_metadata = || Error::NotFound(format!("`{dist}` has no core metadata file"));
    let content_type = if metadata {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    if listing.local {
        let sha = if metadata {
            file.core_metadata
                .as_ref()
                .and_then(|m| m.get("sha256"))
                .ok_or_else(no_metadata)?
        } else {
            file.hashes
                .get("sha256")
                .ok_or_else(|| Error::internal("local file without sha256"))?
        };
        return Ok(protocol::artifact(
            ctx.registry.open_blob(sha).await?,
            content_type,
            ctx.audience(),
        ));
    }
    let artifact = upstream_file(ctx, &name, file, metadata).await?;
    Ok(protocol::artifact(artifact, content_type, ctx.audience()))
}

/// A file of an upstream project (or its `.metadata` file), through the artifact cache,
/// verified against the sha256 the upstream page published.
pub(crate) async fn upstream_file(
    ctx: &Cx,
    name: &ProjectName,
    file: &DistFile,
    metadata: bool,
) -> Result<Artifact> {
    let dist = &file.filename;
    let (key, raw_url, expected) = if metadata {
        let meta = file
            .core_metadata
            .as_ref()
            .ok_or_else(|| Error::NotFound(format!("`{dist}` has no core metadata file")))?;
        (
            format!("metadata/{name}/{dist}"),
            format!("{}.metadata", file.url),
            meta.get("sha256"),
        )
    } else {
        (
            format!("file/{name}/{dist}"),
            file.url.clone(),
            file.hashes.get("sha256"),
        )
    };
    if let Some(hit) = ctx.registry.cached_artifact(&key).await? {
        return Ok(hit);
    }
    let url = url::Url::parse(&raw_url)
        .map_err(|e| Error::Upstream(format!("the upstream URL of `{dist}` is invalid: {e}")))?;
    let expected = expected.and_then(|h| ExpectedDigest::from_hex("sha256", h));
    ctx.registry.upstream_artifact(&key, url, expected).await
}
