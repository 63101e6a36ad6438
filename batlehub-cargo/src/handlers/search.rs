//! `cargo search`: `GET /api/v1/crates?q=&per_page=`.

use batlehub_core::body::Body;
use batlehub_core::model::Decision;
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Error, Mode, Permission, Result};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::handlers::index::upstream_config;
use crate::wire::SearchHit;
use batlehub_core::protocol::{Cx, json};

/// The largest upstream search response read.
const MAX_UPSTREAM_SEARCH: u64 = 4 * 1024 * 1024;

/// Local crates whose name contains `q` (ignoring case and `-`/`_`), hidden and blocked
/// crates left out; then, in proxy and hybrid modes, the first upstream's own search
/// results for names not found locally (when its `config.json` names an `api`).
pub(crate) async fn search(ctx: &Cx, q: &str, per_page: u32) -> Result<Response<Body>> {
    ctx.registry
        .authorize(ctx.identity(), Permission::ReleasesRead, None)?;
    let mut hits: Vec<SearchHit> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    if ctx.registry.mode() != Mode::Proxy {
        let needle = q.trim().to_ascii_lowercase().replace('_', "-");
        let found = ctx.registry.local().search(&needle, 0, per_page).await?;
        for summary in found {
            if ctx
                .registry
                .check_package(&ctx.caller, Permission::ReleasesRead, &summary.name)
                .await
                .is_err()
            {
                continue;
            }
            keys.insert(summary.name.clone());
            if let Some(hit) = local_hit(ctx, &summary.name).await? {
                hits.push(hit);
            }
        }
    }
    if ctx.registry.mode().has_upstreams() && (hits.len() as u32) < per_page {
        match upstream_search(ctx, q, per_page).await {
            Ok(found) => {
                for hit in found {
                    let key = hit.name.to_ascii_lowercase().replace('_', "-");
                    if keys.contains(&key)
                        || crate::name::CrateName::parse(&hit.name).is_err()
                        || ctx
                            .registry
                            .check_package(&ctx.caller, Permission::ReleasesRead, &key)
                            .await
                            .is_err()
                    {
                        continue;
                    }
                    keys.insert(key);
                    hits.push(hit);
                }
            }
            Err(e) => tracing::warn!(error = %e, "upstream search failed; local results only"),
        }
    }
    hits.truncate(per_page as usize);
    let total = hits.len();
    Ok(json(
        StatusCode::OK,
        &json!({ "crates": hits, "meta": { "total": total } }),
    ))
}

/// A local crate as a search hit: the highest version policy lets this caller select
/// (not yanked when possible), with the name and description it was published with.
async fn local_hit(ctx: &Cx, key: &str) -> Result<Option<SearchHit>> {
    let Some(pkg) = ctx.registry.local().package(key).await? else {
        return Ok(None);
    };
    let facts: Vec<VersionFacts> = pkg.versions.iter().map(VersionFacts::of).collect();
    let decisions = ctx
        .registry
        .version_decisions(&ctx.caller, key, &facts)
        .await?;
    let allowed: Vec<_> = pkg
        .versions
        .iter()
        .zip(decisions)
        .filter(|(_, d)| matches!(d, Decision::Allow))
        .filter_map(|(v, _)| semver::Version::parse(&v.version).ok().map(|s| (s, v)))
        .collect();
    let best = allowed
        .iter()
        .filter(|(_, v)| !v.yanked)
        .max_by(|a, b| a.0.cmp(&b.0))
        .or_else(|| allowed.iter().max_by(|a, b| a.0.cmp(&b.0)));
    Ok(best.map(|(_, v)| SearchHit {
        name: v
            .metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(key)
            .to_owned(),
        max_version: v.version.clone(),
        description: v
            .metadata
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }))
}

async fn upstream_search(ctx: &Cx, q: &str, per_page: u32) -> Result<Vec<SearchHit>> {
    let config = upstream_config(ctx, 0).await?;
    let api = config
        .api
        .ok_or_else(|| Error::Upstream("the upstream has no web API".into()))?;
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("no upstream"))?;
    let mut url = ctx
        .registry
        .upstream_link(0, &format!("{}/api/v1/crates", api.trim_end_matches('/')))?;
    url.query_pairs_mut()
        .append_pair("q", q)
        .append_pair("per_page", &per_page.to_string());
    let resp = client.get(url, http::HeaderMap::new()).await?;
    if !resp.status().is_success() {
        return Err(Error::Upstream(format!(
            "upstream search answered {}",
            resp.status()
        )));
    }
    let buf =
        batlehub_core::upstream::read_limited(resp, MAX_UPSTREAM_SEARCH, "search result").await?;
    #[derive(serde::Deserialize)]
    struct Found {
        crates: Vec<SearchHit>,
    }
    let found: Found = serde_json::from_slice(&buf).map_err(|e| Error::Upstream(e.to_string()))?;
    Ok(found.crates)
}
