//! `GET /api/v1/crates/{name}/{version}/download`: the `.crate`, refused when policy denies
//! the version (with the rule's reason).

use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Error, Permission, Result};
use http::Response;

use crate::handlers::index::{not_found, upstream_config, upstream_index, upstream_lines};
use crate::name::CrateName;
use crate::wire::parse_pubtime;
use batlehub_core::protocol::{self, Cx};

fn version_not_found(name: &CrateName, version: &str) -> Error {
    Error::NotFound(format!("crate `{name}` has no version `{version}`"))
}

/// `GET /api/v1/crates/{name}/{version}/download`.
pub(crate) async fn download(ctx: &Cx, name: &CrateName, version: &str) -> Result<Response<Body>> {
    let key = name.key();
    ctx.registry
        .authorize(ctx.identity(), Permission::SourceRead, Some(&key))?;
    if ctx.is_local(&name.key()).await? {
        let v = ctx
            .registry
            .local()
            .version(&key, version)
            .await?
            .ok_or_else(|| version_not_found(name, version))?;
        let facts = VersionFacts::of(&v);
        ctx.registry
            .check_download(&ctx.caller, Permission::SourceRead, &key, &facts)
            .await?;
        let file = v
            .files
            .first()
            .ok_or_else(|| Error::internal(format!("{key}@{version} has no .crate file")))?;
        let blob = ctx.registry.open_blob(&file.sha256).await?;
        return Ok(protocol::artifact(
            blob,
            protocol::OCTET_STREAM,
            ctx.audience(),
        ));
    }

    let doc = upstream_index(ctx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let prepared = upstream_lines(ctx, name, &doc).await?;
    let line = prepared
        .lines
        .iter()
        .map(|(_, f)| f)
        .find(|f| f.vers == version)
        .ok_or_else(|| version_not_found(name, version))?;
    let facts = VersionFacts {
        version: version.to_owned(),
        published_at: line.pubtime.as_deref().and_then(parse_pubtime),
    };
    ctx.registry
        .check_download(&ctx.caller, Permission::SourceRead, &key, &facts)
        .await?;
    let cache_key = format!("crate/{}/{version}", name.lower());
    if let Some(hit) = ctx.registry.cached_artifact(&cache_key).await? {
        return Ok(protocol::artifact(
            hit,
            protocol::OCTET_STREAM,
            ctx.audience(),
        ));
    }
    let cksum = line.cksum.as_deref().unwrap_or_default();
    let expected = ExpectedDigest::from_hex("sha256", cksum).ok_or_else(|| {
        Error::Upstream(format!(
            "the upstream index line of {name}@{version} has no valid cksum; refusing an unverifiable download"
        ))
    })?;
    let config = upstream_config(ctx, doc.upstream).await?;
    let raw_url = config.download_url(&line.name, &line.vers, cksum);
    let url = ctx.registry.upstream_link(doc.upstream, &raw_url)?;
    let artifact = ctx
        .registry
        .upstream_artifact(&cache_key, url, Some(expected))
        .await?;
    Ok(protocol::artifact(
        artifact,
        protocol::OCTET_STREAM,
        ctx.audience(),
    ))
}
