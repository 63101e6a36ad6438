//! The JSON APIs tools read (`gem` and bundler do not): `/api/v1/gems/{gem}.json`,
//! `/api/v1/versions/{gem}.json`, `/api/v2/rubygems/{gem}/versions/{version}.json`. Local
//! gems are described from their gemspecs; a proxy passes the upstream's documents
//! through, with what policy refuses left out of the version list and refused by name.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Error, Result};
use http::{Response, StatusCode};
use serde_json::Value;

use crate::handlers::view::{self, View};
use crate::handlers::{local, proxy, unknown_gem};
use crate::wire::Described;

/// The local versions `view` lets through, newest first, with their records.
async fn local_described(
    cx: &Cx,
    name: &str,
    view: &View,
) -> Result<Vec<(crate::wire::Stored, String, chrono::DateTime<chrono::Utc>)>> {
    let mut out = Vec::new();
    for (i, e) in view.prepared.entries.iter().enumerate().rev() {
        if !view.visible(i) {
            continue;
        }
        if let Some(record) = local::record(cx, name, &e.number, &e.platform).await? {
            let sha = record
                .files
                .first()
                .map(|f| f.sha256.clone())
                .unwrap_or_default();
            out.push((local::stored(&record)?, sha, record.published_at));
        }
    }
    Ok(out)
}

fn json_response(value: &Value, stale: bool) -> Response<Body> {
    let mut resp = protocol::json(StatusCode::OK, value);
    protocol::mark_stale(&mut resp, stale);
    resp
}

/// `GET /api/v1/versions/{gem}.json`.
pub(crate) async fn versions(cx: &Cx, name: &str) -> Result<Response<Body>> {
    let view = view::require(cx, name).await?;
    if view.local {
        let described: Vec<Value> = local_described(cx, name, &view)
            .await?
            .iter()
            .map(|(s, sha, at)| {
                Described {
                    spec: &s.spec,
                    sha256: sha,
                    created_at: *at,
                }
                .version_entry()
            })
            .collect();
        return Ok(json_response(&Value::Array(described), false));
    }
    let path = format!("api/v1/versions/{name}.json");
    let (body, _, stale) = proxy::document(cx, &path, "application/json")
        .await?
        .ok_or_else(|| unknown_gem(name))?;
    let mut all: Vec<Value> = serde_json::from_slice(&body).map_err(|e| {
        Error::Upstream(format!(
            "the upstream's version list of {name} is not valid JSON: {e}"
        ))
    })?;
    all.retain(|v| {
        let number = v.get("number").and_then(Value::as_str).unwrap_or_default();
        let platform = v.get("platform").and_then(Value::as_str).unwrap_or("ruby");
        view.prepared
            .entries
            .iter()
            .enumerate()
            .any(|(i, e)| e.is(number, platform) && view.visible(i))
    });
    Ok(json_response(&Value::Array(all), stale))
}

/// `GET /api/v1/gems/{gem}.json`: the newest release (the newest pre-release when there
/// is none).
pub(crate) async fn gem(cx: &Cx, name: &str) -> Result<Response<Body>> {
    let view = view::require(cx, name).await?;
    if view.local {
        let described = local_described(cx, name, &view).await?;
        let pick = described
            .iter()
            .find(|(s, _, _)| !crate::name::is_prerelease(&s.spec.version))
            .or_else(|| described.first())
            .ok_or_else(|| unknown_gem(name))?;
        let value = Described {
            spec: &pick.0.spec,
            sha256: &pick.1,
            created_at: pick.2,
        }
        .gem(&cx.base, false);
        return Ok(json_response(&value, false));
    }
    let path = format!("api/v1/gems/{name}.json");
    let (body, _, stale) = proxy::document(cx, &path, "application/json")
        .await?
        .ok_or_else(|| unknown_gem(name))?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::Upstream(format!("the upstream's {path} is not valid JSON: {e}")))?;
    // The upstream describes its newest version: one policy refuses is refused here too.
    let number = value
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let platform = value
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or("ruby");
    if let Err(e @ Error::Denied(_)) = view.entry(name, number, platform) {
        return Err(e);
    }
    Ok(json_response(&value, stale))
}

/// `GET /api/v2/rubygems/{gem}/versions/{version}.json[?platform=P]`.
pub(crate) async fn version(cx: &Cx, name: &str, number: &str) -> Result<Response<Body>> {
    let platform = protocol::query_param(cx.parts.uri.query(), "platform")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "ruby".into());
    if platform != "ruby" {
        crate::name::check_platform(&platform).map_err(|e| Error::BadRequest(e.0))?;
    }
    let view = view::require(cx, name).await?;
    view.entry(name, number, &platform)?;
    if view.local {
        let record = local::record(cx, name, number, &platform)
            .await?
            .ok_or_else(|| unknown_gem(name))?;
        let stored = local::stored(&record)?;
        let sha = record
            .files
            .first()
            .map(|f| f.sha256.clone())
            .unwrap_or_default();
        let value = Described {
            spec: &stored.spec,
            sha256: &sha,
            created_at: record.published_at,
        }
        .gem(&cx.base, true);
        return Ok(json_response(&value, false));
    }
    let mut path = format!("api/v2/rubygems/{name}/versions/{number}.json");
    if platform != "ruby" {
        path.push_str("?platform=");
        path.push_str(&platform);
    }
    let (body, _, stale) = proxy::document(cx, &path, "application/json")
        .await?
        .ok_or_else(|| unknown_gem(name))?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::Upstream(format!("the upstream's {path} is not valid JSON: {e}")))?;
    Ok(json_response(&value, stale))
}
