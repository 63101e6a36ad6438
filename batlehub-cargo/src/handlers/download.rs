//! `GET /api/v1/crates/{name}/{version}/download`: the `.crate`, refused when policy denies
//! the version (with the rule's reason).

use batlehub_core::body::Body;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Permission, Result};
use http::{HeaderValue, Response};

use crate::handlers::index::{
    is_local, not_found, upstream_config, upstream_index, upstream_lines,
};
use crate::name::CrateName;
use crate::service::Ctx;
use crate::wire::parse_pubtime;

fn version_not_found(name: &CrateName, version: &str) -> Error {
    Error::NotFound(format!("crate `{name}` has no version `{version}`"))
}

/// `GET /api/v1/crates/{name}/{version}/download`.
pub(crate) async fn download(ctx: &Ctx, name: &CrateName, version: &str) -> Result<Response<Body>> {
    let key = name.key();
    ctx.registry
        .authorize(&ctx.identity, Permission::SourceRead, Some(&key))?;
    if is_local(ctx, name).await? {
        let v = ctx
            .registry
            .index()
            .version(ctx.registry.name(), &key, version)
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
        return Ok(artifact_response(
            ctx.registry.open_blob(&file.sha256).await?,
        ));
    }

    let doc = upstream_index(ctx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let prepared = upstream_lines(ctx, name, &doc)?;
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
        return Ok(artifact_response(hit));
    }
    let cksum = line.cksum.as_deref().unwrap_or_default();
    let expected = ExpectedDigest::from_hex("sha256", cksum).ok_or_else(|| {
        Error::Upstream(format!(
            "the upstream index line of {name}@{version} has no valid cksum; refusing an unverifiable download"
        ))
    })?;
    let config = upstream_config(ctx, doc.upstream).await?;
    let raw_url = config.download_url(&line.name, &line.vers, cksum);
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("proxy without upstream client"))?;
    let root = client
        .roots()
        .get(doc.upstream)
        .ok_or_else(|| Error::internal("upstream index out of range"))?;
    let url = root.join(&raw_url).map_err(|e| {
        Error::Upstream(format!(
            "the upstream download URL for {name}@{version} is invalid: {e}"
        ))
    })?;
    let artifact = ctx
        .registry
        .upstream_artifact(&cache_key, url, Some(expected))
        .await?;
    Ok(artifact_response(artifact))
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
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    resp
}
