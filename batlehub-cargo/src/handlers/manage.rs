//! `cargo yank [--undo]` and `cargo owner --list|--add|--remove`, on local crates only.

use batlehub_core::body::Body;
use batlehub_core::model::Owner;
use batlehub_core::{Error, Permission, Result};
use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;

use crate::handlers::index::{local_package, not_found};
use crate::name::CrateName;
use crate::wire::{OwnerEntry, OwnersRequest};
use batlehub_core::protocol::{Cx, json};

/// Refuses changes to crates that are not stored here (proxy mode, or a proxied name in
/// hybrid mode) and to crates that do not exist.
async fn local_crate(ctx: &Cx, name: &CrateName) -> Result<()> {
    if !ctx.is_local(&name.key()).await?
        || !ctx.registry.local().package_exists(&name.key()).await?
    {
        return Err(not_found(name));
    }
    Ok(())
}

/// `DELETE .../{version}/yank` and `PUT .../{version}/unyank`.
pub(crate) async fn set_yanked(
    ctx: &Cx,
    name: &CrateName,
    version: &str,
    yanked: bool,
) -> Result<Response<Body>> {
    let key = name.key();
    let action = if yanked { "yank" } else { "unyank" };
    ctx.registry.check_manage(&ctx.caller, &key, action).await?;
    local_crate(ctx, name).await?;
    let found = ctx
        .registry
        .local()
        .set_yanked(&key, version, yanked)
        .await?;
    if !found {
        return Err(Error::NotFound(format!(
            "crate `{name}` has no version `{version}`"
        )));
    }
    tracing::info!(registry = ctx.registry.name(), krate = %name, version, yanked, "yank flag set");
    Ok(json(StatusCode::OK, &json!({ "ok": true })))
}

/// An owner as cargo shows it: a principal id, or `group:NAME`.
fn login(owner: &Owner) -> String {
    match owner {
        Owner::User(u) => u.clone(),
        Owner::Group(g) => format!("group:{g}"),
    }
}

fn parse_login(login: &str) -> Result<Owner> {
    let login = login.trim();
    let owner = match login.strip_prefix("group:") {
        Some(g) => Owner::Group(g.to_owned()),
        None => Owner::User(login.to_owned()),
    };
    let (Owner::User(id) | Owner::Group(id)) = &owner;
    batlehub_core::coords::check_segment("owner login", id)?;
    if id.len() > 128 || id.chars().any(char::is_whitespace) {
        return Err(Error::BadRequest(format!(
            "invalid owner login `{}`",
            login.escape_default()
        )));
    }
    Ok(owner)
}

fn parse_users(body: &Bytes) -> Result<Vec<Owner>> {
    let req: OwnersRequest = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("expected {{\"users\": [\"login\", ...]}}: {e}")))?;
    if req.users.is_empty() {
        return Err(Error::BadRequest("no owner named".into()));
    }
    req.users.iter().map(|u| parse_login(u)).collect()
}

/// `GET /api/v1/crates/{name}/owners`.
pub(crate) async fn list_owners(ctx: &Cx, name: &CrateName) -> Result<Response<Body>> {
    let key = name.key();
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, &key)
        .await?;
    if !ctx.is_local(&name.key()).await? || local_package(ctx, name).await?.is_none() {
        return Err(not_found(name));
    }
    let owners = ctx.registry.local().owners(&key).await?;
    let users: Vec<OwnerEntry> = owners
        .iter()
        .zip(1u32..)
        .map(|(o, id)| OwnerEntry {
            id,
            login: login(o),
            name: None,
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "users": users })))
}

/// `PUT /api/v1/crates/{name}/owners`.
pub(crate) async fn add_owners(ctx: &Cx, name: &CrateName, body: &Bytes) -> Result<Response<Body>> {
    let key = name.key();
    ctx.registry
        .check_manage(&ctx.caller, &key, "owners")
        .await?;
    local_crate(ctx, name).await?;
    let owners = parse_users(body)?;
    let mut added = Vec::new();
    let mut already = Vec::new();
    for o in &owners {
        if ctx.registry.local().add_owner(&key, o).await? {
            added.push(login(o));
        } else {
            already.push(login(o));
        }
    }
    tracing::info!(registry = ctx.registry.name(), krate = %name, ?added, "owners added");
    let mut msg = Vec::new();
    if !added.is_empty() {
        msg.push(format!(
            "{} added as owner(s) of crate {name}",
            added.join(", ")
        ));
    }
    if !already.is_empty() {
        msg.push(format!(
            "{} already owner(s) of crate {name}",
            already.join(", ")
        ));
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "ok": true, "msg": msg.join("; ") }),
    ))
}

/// `DELETE /api/v1/crates/{name}/owners`. The last owner cannot be removed: a crate without
/// owners could be taken over by any publisher.
pub(crate) async fn remove_owners(
    ctx: &Cx,
    name: &CrateName,
    body: &Bytes,
) -> Result<Response<Body>> {
    let key = name.key();
    ctx.registry
        .check_manage(&ctx.caller, &key, "owners")
        .await?;
    local_crate(ctx, name).await?;
    let remove = parse_users(body)?;
    let index = ctx.registry.local();
    let reg = ctx.registry.name();
    let current = index.owners(&key).await?;
    if let Some(missing) = remove.iter().find(|o| !current.contains(o)) {
        return Err(Error::NotFound(format!(
            "`{}` is not an owner of crate `{name}`",
            login(missing)
        )));
    }
    if current.iter().all(|o| remove.contains(o)) {
        return Err(Error::BadRequest(format!(
            "cannot remove every owner of crate `{name}`: add another owner first"
        )));
    }
    for o in &remove {
        index.remove_owner(&key, o).await?;
    }
    let removed: Vec<String> = remove.iter().map(login).collect();
    tracing::info!(registry = reg, krate = %name, ?removed, "owners removed");
    Ok(json(
        StatusCode::OK,
        &json!({ "ok": true, "msg": format!("{} removed from the owners of crate {name}", removed.join(", ")) }),
    ))
}
