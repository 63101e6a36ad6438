//! `npm dist-tag ls|add|rm`.

use batlehub_core::body::Body;
use batlehub_core::{Error, Result};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::handlers::read::{full_packument, not_found};
use crate::name::PackageName;
use batlehub_core::protocol::{Cx, json};

/// `GET /-/package/{name}/dist-tags`.
pub(crate) async fn list(ctx: &Cx, name: &PackageName) -> Result<Response<Body>> {
    let (full, _) = full_packument(ctx, name).await?;
    Ok(json(
        StatusCode::OK,
        full.get("dist-tags").unwrap_or(&json!({})),
    ))
}

async fn writable(ctx: &Cx, name: &PackageName) -> Result<()> {
    ctx.registry
        .check_manage(&ctx.caller, name.as_str(), "dist-tag")
        .await?;
    if !ctx.is_local(name.as_str()).await?
        || !ctx.registry.local().package_exists(name.as_str()).await?
    {
        return Err(not_found(name));
    }
    Ok(())
}

/// `PUT /-/package/{name}/dist-tags/{tag}` with the version as a JSON string.
pub(crate) async fn add(
    ctx: &Cx,
    name: &PackageName,
    tag: &str,
    body: &Bytes,
) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    if semver::VersionReq::parse(tag).is_ok() {
        return Err(Error::BadRequest(format!(
            "tag `{tag}` must not be a valid semver range"
        )));
    }
    let version = match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(v)) => v,
        _ => {
            return Err(Error::BadRequest(
                "body must be the version as a JSON string".into(),
            ));
        }
    };
    let set = ctx
        .registry
        .local()
        .set_tag(name.as_str(), tag, &version)
        .await?;
    if !set {
        return Err(Error::NotFound(format!(
            "version `{version}` of `{name}` not found"
        )));
    }
    Ok(json(StatusCode::OK, &json!({ "ok": true })))
}

/// `DELETE /-/package/{name}/dist-tags/{tag}`.
pub(crate) async fn remove(ctx: &Cx, name: &PackageName, tag: &str) -> Result<Response<Body>> {
    writable(ctx, name).await?;
    if tag == "latest" {
        return Err(Error::BadRequest(
            "the `latest` tag cannot be removed; point it elsewhere instead".into(),
        ));
    }
    if !ctx.registry.local().remove_tag(name.as_str(), tag).await? {
        return Err(Error::NotFound(format!(
            "tag `{tag}` of `{name}` not found"
        )));
    }
    Ok(json(StatusCode::OK, &json!({ "ok": true })))
}
