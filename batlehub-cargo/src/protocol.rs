//! cargo on core's protocol abstraction: routing, dispatch, the
//! `{"errors":[{"detail":"..."}]}` envelope and the challenge.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::handlers;
use crate::routes::{self, Route};

/// The largest owners request body read.
const SMALL_BODY: usize = 64 * 1024;

/// The cargo registry protocol (sparse index and web API).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cargo;

impl Protocol for Cargo {
    type Route = Route;
    const NAME: &'static str = "cargo";

    fn route(&self, parts: &Parts) -> Result<Route> {
        routes::parse(parts.uri.path(), parts.uri.query())
    }

    async fn handle(&self, cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        let method = cx.method().clone();
        match (route, cx.is_read()) {
            (Route::Config, true) => handlers::index::config(&cx),
            (Route::IndexFile { name }, true) => handlers::index::index_file(&cx, &name).await,
            (Route::Download { name, version }, true) => {
                handlers::download::download(&cx, &name, &version).await
            }
            (Route::Publish, false) if method == Method::PUT => {
                handlers::publish::publish(&cx, body.into_stream()).await
            }
            (Route::Yank { name, version }, false) if method == Method::DELETE => {
                handlers::manage::set_yanked(&cx, &name, &version, true).await
            }
            (Route::Unyank { name, version }, false) if method == Method::PUT => {
                handlers::manage::set_yanked(&cx, &name, &version, false).await
            }
            (Route::Owners { name }, true) => handlers::manage::list_owners(&cx, &name).await,
            (Route::Owners { name }, false) if method == Method::PUT => {
                let body = body.read_to_bytes(&cx.parts, SMALL_BODY).await?;
                handlers::manage::add_owners(&cx, &name, &body).await
            }
            (Route::Owners { name }, false) if method == Method::DELETE => {
                let body = body.read_to_bytes(&cx.parts, SMALL_BODY).await?;
                handlers::manage::remove_owners(&cx, &name, &body).await
            }
            (Route::Search { q, per_page }, true) => {
                handlers::search::search(&cx, &q, per_page).await
            }
            (Route::Me, true) => Ok(protocol::text(
                StatusCode::OK,
                "batlehub: ask your registry administrator for a token, then run `cargo login --registry NAME`.\n",
            )),
            _ => Err(cx.method_not_allowed()),
        }
    }

    /// `{"errors":[{"detail":"..."}]}`: cargo prints each `detail`.
    fn error_response(&self, err: &Error) -> Response<Body> {
        protocol::json(
            err.status(),
            &serde_json::json!({ "errors": [{ "detail": err.client_message() }] }),
        )
    }

    /// A publish frames its JSON metadata (bounded apart) and the `.crate` with lengths.
    fn body_limit(&self, _: &Self::Route, config: &batlehub_core::RegistryConfig) -> u64 {
        config
            .max_upload_bytes
            .saturating_add(u64::from(crate::handlers::publish::MAX_METADATA) + 8)
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// cargo writes a sparse index URL with a `sparse+` prefix; the engine fetches plain HTTP(S).
    fn upstream_url(raw: &str) -> String {
        raw.strip_prefix("sparse+").unwrap_or(raw).to_owned()
    }

    /// The upstream index files of the name spelled with `-` and with `_` (a key stands for
    /// both, and cargo treats them as one crate).
    fn upstream_probes(key: &str) -> Vec<String> {
        let mut probes = Vec::new();
        for spelling in [key.to_owned(), key.replace('-', "_")] {
            let path = format!("{}/{spelling}", crate::name::prefix(&spelling));
            if !probes.contains(&path) {
                probes.push(path);
            }
        }
        probes
    }

    /// Crate names are stored lowercase with `-` for `_`: `Serde_JSON` and `serde-json`
    /// are one crate.
    fn package_key(raw: &str) -> Result<String> {
        Ok(crate::name::CrateName::parse(raw)?.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_ask_for_both_spellings() {
        // A key stands for `serde-json` and `serde_json`: the upstream may have either.
        assert_eq!(
            Cargo::upstream_probes("serde-json"),
            ["se/rd/serde-json", "se/rd/serde_json"]
        );
        assert_eq!(Cargo::upstream_probes("abc"), ["3/a/abc"]);
    }
}
