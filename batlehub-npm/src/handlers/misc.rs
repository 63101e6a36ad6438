//! whoami and search.

use batlehub_core::body::Body;
use batlehub_core::{Error, Identity, Mode, Permission, Result};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::wire::iso;
use batlehub_core::protocol::{Cx, json};

/// `GET /-/whoami`.
pub(crate) fn whoami(ctx: &Cx) -> Result<Response<Body>> {
    match &ctx.caller.identity {
        Identity::User(p) => Ok(json(StatusCode::OK, &json!({ "username": p.id }))),
        Identity::Invalid(reason) => Err(Error::Unauthorized(reason.clone())),
        Identity::Anonymous => Err(Error::Unauthorized("not logged in: send a token".into())),
    }
}

/// `GET /-/v1/search?text=&size=&from=`: local packages, then (proxy/hybrid) the first
/// upstream's results for names not found locally.
pub(crate) async fn search(ctx: &Cx, text: &str, size: u32, from: u32) -> Result<Response<Body>> {
    ctx.registry
        .authorize(&ctx.caller.identity, Permission::ReleasesRead, None)?;
    let mut objects = Vec::new();
    let mut names = std::collections::HashSet::new();
    if ctx.registry.mode() != Mode::Proxy {
        for hit in ctx.registry.local().search(text, from, size).await? {
            // Report the `latest` tag's version, as npm does, not the newest publish.
            let tags = ctx.registry.local().tags(&hit.name).await?;
            let latest = match tags.get("latest") {
                Some(v) if *v != hit.latest_version => {
                    ctx.registry.local().version(&hit.name, v).await?
                }
                _ => None,
            };
            let (version, m) = match &latest {
                Some(v) => (v.version.clone(), &v.metadata),
                None => (hit.latest_version.clone(), &hit.metadata),
            };
            // Hidden and blocked packages are absent from search results.
            if ctx
                .registry
                .check_package(&ctx.caller, Permission::ReleasesRead, &hit.name)
                .await
                .is_err()
            {
                continue;
            }
            names.insert(hit.name.clone());
            objects.push(json!({
                "package": {
                    "name": hit.name,
                    "version": version,
                    "description": m.get("description").cloned().unwrap_or(Value::Null),
                    "keywords": m.get("keywords").cloned().unwrap_or_else(|| json!([])),
                    "date": iso(hit.updated_at),
                    "links": {},
                    "publisher": { "username": m.pointer("/_npmUser/name").cloned().unwrap_or_else(|| json!("")) },
                    "maintainers": search_maintainers(m.get("maintainers")),
                },
                "score": { "final": 1.0, "detail": { "quality": 1.0, "popularity": 1.0, "maintenance": 1.0 } },
                "searchScore": 1.0,
            }));
        }
    }
    if ctx.registry.mode().has_upstreams() && (objects.len() as u32) < size {
        match upstream_search(ctx, text, size, from).await {
            Ok(found) => {
                for o in found {
                    let n = o
                        .pointer("/package/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if !n.is_empty()
                        && !names.contains(&n)
                        && o.pointer("/package/version").is_some()
                    {
                        let mut o = o;
                        if let Some(p) = o.get_mut("package").and_then(Value::as_object_mut) {
                            let m = search_maintainers(p.get("maintainers"));
                            p.insert("maintainers".into(), m);
                        }
                        objects.push(o);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "upstream search failed; local results only"),
        }
    }
    objects.truncate(size as usize);
    let total = objects.len();
    Ok(json(
        StatusCode::OK,
        &json!({ "objects": objects, "total": total, "time": iso(ctx.registry.now()) }),
    ))
}

async fn upstream_search(ctx: &Cx, text: &str, size: u32, from: u32) -> Result<Vec<Value>> {
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("no upstream"))?;
    let mut url = client.url_for(0, "-/v1/search")?;
    url.query_pairs_mut()
        .append_pair("text", text)
        .append_pair("size", &size.to_string())
        .append_pair("from", &from.to_string());
    let resp = client.get(url, http::HeaderMap::new()).await?;
    if !resp.status().is_success() {
        return Err(Error::Upstream(format!(
            "upstream search answered {}",
            resp.status()
        )));
    }
    let body =
        batlehub_core::upstream::read_limited(resp, MAX_UPSTREAM_SEARCH, "search result").await?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| Error::Upstream(e.to_string()))?;
    Ok(value
        .get("objects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// The largest upstream search result read.
const MAX_UPSTREAM_SEARCH: u64 = 16 * 1024 * 1024;

/// The npm CLI prints `maintainers[].username` and crashes when it is missing; packuments
/// call it `name`.
fn search_maintainers(list: Option<&Value>) -> Value {
    let items = list.and_then(Value::as_array).cloned().unwrap_or_default();
    Value::Array(
        items
            .into_iter()
            .map(|m| {
                let name = m
                    .get("username")
                    .or_else(|| m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let email = m
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                json!({ "username": name, "email": email })
            })
            .collect(),
    )
}
