//! npm on core's protocol abstraction: routing, dispatch, the `{"error": "..."}` envelope
//! and the challenge.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Registry, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::handlers;
use crate::routes::{self, Route};

/// The largest body of a dist-tag request.
const TAG_BODY: usize = 64 * 1024;

/// The npm registry protocol.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Npm;

impl Protocol for Npm {
    type Route = Route;
    const NAME: &'static str = "npm";

    fn route(&self, parts: &Parts) -> Result<Route> {
        routes::parse(&parts.method, parts.uri.path(), parts.uri.query())
    }

    async fn handle(&self, cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        let method = cx.method().clone();
        let read = cx.is_read();
        match (route, read) {
            (Route::Ping, true) => Ok(protocol::json(StatusCode::OK, &serde_json::json!({}))),
            (Route::Whoami, true) => handlers::misc::whoami(&cx),
            (Route::Search { text, size, from }, true) => {
                handlers::misc::search(&cx, &text, size, from).await
            }
            (Route::DistTags { name }, true) => handlers::tags::list(&cx, &name).await,
            (Route::DistTag { name, tag }, false)
                if method == Method::PUT || method == Method::POST =>
            {
                let body = body.read_to_bytes(&cx.parts, TAG_BODY).await?;
                handlers::tags::add(&cx, &name, &tag, &body).await
            }
            (Route::DistTag { name, tag }, false) if method == Method::DELETE => {
                handlers::tags::remove(&cx, &name, &tag).await
            }
            (Route::Package { name }, true) => handlers::read::packument(&cx, &name).await,
            (Route::Package { name }, false) if method == Method::PUT => {
                let limit = publish_body_limit(&cx.registry);
                let body = body.read_to_bytes(&cx.parts, limit).await?;
                handlers::publish::put_package(&cx, &name, &body).await
            }
            (Route::Revision { name }, false) if method == Method::PUT => {
                let limit = publish_body_limit(&cx.registry);
                let body = body.read_to_bytes(&cx.parts, limit).await?;
                handlers::publish::put_revision(&cx, &name, &body).await
            }
            (Route::Revision { name }, false) if method == Method::DELETE => {
                handlers::publish::unpublish_package(&cx, &name).await
            }
            (Route::TarballRevision { name, file }, false) if method == Method::DELETE => {
                handlers::publish::delete_tarball(&cx, &name, &file).await
            }
            (Route::Version { name, version }, true) => {
                handlers::read::version(&cx, &name, &version).await
            }
            (Route::Tarball { name, file }, true) => {
                handlers::read::tarball(&cx, &name, &file).await
            }
            _ => Err(cx.method_not_allowed()),
        }
    }

    /// `{"error": "..."}`, which the npm CLI prints.
    fn error_response(&self, err: &Error) -> Response<Body> {
        protocol::json(
            err.status(),
            &serde_json::json!({ "error": err.client_message() }),
        )
    }

    /// npm sends its token with every request; the `Basic` challenge matches its legacy
    /// `_auth` form and never triggers its one-time-password prompt.
    /// A publish carries the tarball in base64 inside JSON.
    fn body_limit(&self, _: &Self::Route, config: &batlehub_core::RegistryConfig) -> u64 {
        envelope_limit(config.max_upload_bytes)
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// The upstream packument of the name.
    fn upstream_probes(key: &str) -> Vec<String> {
        crate::name::PackageName::parse(key)
            .map(|n| vec![n.escaped()])
            .unwrap_or_default()
    }

    fn package_key(raw: &str) -> Result<String> {
        Ok(crate::name::PackageName::parse(raw)?.as_str().to_owned())
    }
}

/// Base64 inflates a tarball by 4/3; leave room for the JSON around it.
fn envelope_limit(max_upload: u64) -> u64 {
    max_upload.saturating_mul(4) / 3 + 1024 * 1024
}

fn publish_body_limit(registry: &Registry) -> usize {
    usize::try_from(envelope_limit(registry.config().max_upload_bytes)).unwrap_or(usize::MAX)
}
