//! The Simple repository API: the project list and project pages.

use std::collections::BTreeMap;

use batlehub_core::baseurl::{self, Rendering};
use batlehub_core::body::Body;
use batlehub_core::model::Decision;
use batlehub_core::{Mode, Permission, Result};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::handlers::project::{self, not_found};
use crate::name::{ProjectName, normalize};
use crate::wire::{self, Format};
use batlehub_core::protocol::{Cx, mark_stale, redirect, typed};

/// How many local packages are read per index query when listing projects.
const PAGE: u32 = 1000;

fn format(ctx: &Cx) -> Format {
    wire::negotiate(
        ctx.parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The page in the negotiated form, with `Vary: Accept` and an `ETag` (a matching
/// `If-None-Match` gets 304: proxies of this registry and pip's cache revalidate cheaply).
fn negotiated(
    ctx: &Cx,
    html: impl FnOnce() -> String,
    json_doc: impl FnOnce() -> Vec<u8>,
) -> Response<Body> {
    let format = format(ctx);
    let rendered = rendered(format, html, json_doc);
    respond(ctx, format, &rendered)
}

/// A page rendered in one format (links under [`baseurl::placeholder`]), with its `ETag`.
struct Rendered {
    page: Rendering,
    etag: String,
}

impl Rendered {
    fn weight(&self) -> usize {
        self.page.weight().saturating_add(self.etag.len())
    }
}

fn rendered(
    format: Format,
    html: impl FnOnce() -> String,
    json_doc: impl FnOnce() -> Vec<u8>,
) -> Rendered {
    let body: Vec<u8> = match format {
        Format::Json => json_doc(),
        _ => html().into_bytes(),
    };
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    Rendered {
        page: Rendering::new(body.into()),
        etag,
    }
}

/// Serves `rendered` (file URLs under [`baseurl::placeholder`]) rebased onto this request's
/// base URL; the `ETag` names the base too.
fn respond(ctx: &Cx, format: Format, rendered: &Rendered) -> Response<Body> {
    let base = match format {
        Format::Json => serde_json::to_string(&ctx.base)
            .ok()
            .and_then(|q| Some(q.strip_prefix('"')?.strip_suffix('"')?.to_owned()))
            .unwrap_or_default(),
        _ => wire::escape(&ctx.base),
    };
    let body = rendered.page.at(&base);
    let rebased_etag;
    let etag = if body.as_ptr() == rendered.page.bytes().as_ptr() {
        &rendered.etag
    } else {
        let mut h = Sha256::new();
        h.update(rendered.etag.as_bytes());
        h.update(base.as_bytes());
        rebased_etag = format!("\"{}\"", &hex::encode(h.finalize())[..32]);
        &rebased_etag
    };
    let fresh = ctx
        .parts
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut resp = if fresh {
        typed(
            StatusCode::NOT_MODIFIED,
            format.content_type(),
            Bytes::new(),
        )
    } else {
        typed(StatusCode::OK, format.content_type(), body)
    };
    let h = resp.headers_mut();
    h.insert(http::header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(http::header::ETAG, v);
    }
    resp
}

/// `GET /simple/`: every project this caller may see (local first, then the upstream's).
pub(crate) async fn index(ctx: &Cx, slash: bool) -> Result<Response<Body>> {
    if !slash {
        return Ok(redirect(&format!("{}/simple/", ctx.base)));
    }
    ctx.registry
        .authorize(ctx.identity(), Permission::ReleasesRead, None)?;
    let mut projects: BTreeMap<String, String> = BTreeMap::new();
    let reg = ctx.registry.name();
    let index = ctx.registry.index();
    if ctx.registry.mode() != Mode::Proxy {
        let mut offset = 0;
        loop {
            let hits = index.search(reg, "", offset, PAGE).await?;
            let n = hits.len();
            for hit in hits {
                let display = hit
                    .metadata
                    .get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&hit.name)
                    .to_owned();
                projects.insert(hit.name, display);
            }
            if n < PAGE as usize {
                break;
            }
            offset += PAGE;
        }
        // Hidden and blocked packages are absent from the list.
        let mut suspects: Vec<String> = index
            .restricted_packages(reg)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        suspects.extend(
            index
                .list_blocks(Some(reg))
                .await?
                .into_iter()
                .filter(|b| b.versions.is_none())
                .map(|b| b.package),
        );
        for name in suspects {
            if projects.contains_key(&name)
                && ctx
                    .registry
                    .check_package(&ctx.caller, Permission::ReleasesRead, &name)
                    .await
                    .is_err()
            {
                projects.remove(&name);
            }
        }
    }
    let mut stale = false;
    if ctx.registry.mode().has_upstreams() {
        match ctx
            .registry
            .upstream_document("simple-index", "", wire::UPSTREAM_ACCEPT)
            .await
        {
            Ok(Some(doc)) => {
                stale = doc.stale;
                for display in wire::parse_index(doc.content_type.as_deref(), &doc.body) {
                    if ProjectName::parse(&display).is_ok() {
                        projects.entry(normalize(&display)).or_insert(display);
                    }
                }
            }
            Ok(None) => {}
            Err(e) if ctx.registry.mode() == Mode::Hybrid => {
                tracing::warn!(error = %e, "upstream project list failed; listing local projects only");
            }
            Err(e) => return Err(e),
        }
    }
    let list: Vec<(String, String)> = projects.into_iter().collect();
    let mut resp = negotiated(
        ctx,
        || wire::render_index_html(&list),
        || serde_json::to_vec(&wire::render_index_json(&list)).unwrap_or_default(),
    );
    mark_stale(&mut resp, stale);
    Ok(resp)
}

/// `GET /simple/{project}/`: the project page, policy applied.
pub(crate) async fn project(ctx: &Cx, raw: &str, slash: bool) -> Result<Response<Body>> {
    let name = ProjectName::parse(raw)?;
    if name.as_str() != raw || !slash {
        return Ok(redirect(&format!("{}/simple/{name}/", ctx.base)));
    }
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, name.as_str())
        .await?;
    let shared = project::load_shared(ctx, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let decisions = project::decisions(ctx, &shared.listing).await?;
    let format = format(ctx);
    let shown = crate::denied::denied(ctx);
    // The page is rendered once per state, format and set of denials (whatever base URL it
    // is asked under), once for a burst of requests, off the async workers when it is big.
    let denied = shared
        .listing
        .releases
        .iter()
        .zip(&decisions)
        .filter_map(|(r, d)| match d {
            Decision::Deny(denial) => Some((r.version.as_str(), denial.reason.as_str())),
            Decision::Allow => None,
        });
    let key = format!(
        "{}:{format:?}:{shown:?}:{}",
        shared.id,
        batlehub_core::policy::denials_key(denied)
    );
    let listing = shared.listing.clone();
    let size = listing
        .releases
        .iter()
        .map(|r| r.files.len())
        .sum::<usize>()
        .saturating_mul(512);
    let page = ctx
        .registry
        .memo()
        .get_or_build(&key, size, move || {
            let page = listing.page(&decisions, shown, baseurl::placeholder());
            let rendered = rendered(
                format,
                || wire::render_html(&page),
                || wire::render_json(&page),
            );
            let weight = rendered.weight();
            Ok((rendered, weight))
        })
        .await?;
    let mut resp = respond(ctx, format, &page);
    mark_stale(&mut resp, shared.stale);
    Ok(resp)
}
