//! PyPI on core's protocol abstraction: routing, dispatch, the plain-text envelope with the
//! message as reason phrase, and the challenge.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Permission, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use crate::denied::DeniedVersions;
use crate::handlers;
use crate::routes::{self, Route};

/// The PyPI protocol (Simple API, JSON API, uploads).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pypi {
    pub(crate) denied: DeniedVersions,
}

impl Protocol for Pypi {
    type Route = Route;
    const NAME: &'static str = "pypi";

    fn route(&self, parts: &Parts) -> Result<Route> {
        routes::parse(parts.uri.path())
    }

    async fn handle(&self, mut cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        cx.parts.extensions.insert(self.denied);
        let ctx = &cx;
        let read = ctx.is_read();
        match route {
            Route::Index { slash } if read => handlers::simple::index(ctx, slash).await,
            Route::Project { name, slash } if read => {
                handlers::simple::project(ctx, &name, slash).await
            }
            Route::File { project, filename } if read => {
                handlers::files::download(ctx, &project, &filename).await
            }
            Route::JsonProject { name } if read => handlers::json_api::project(ctx, &name).await,
            Route::JsonVersion { name, version } if read => {
                handlers::json_api::version(ctx, &name, &version).await
            }
            Route::Upload if ctx.method() == Method::POST => {
                handlers::upload::upload(ctx, body).await
            }
            Route::Upload if read && ctx.parts.uri.path().trim_matches('/').is_empty() => {
                Ok(protocol::redirect(&format!("{}/simple/", ctx.base)))
            }
            _ => Err(ctx.method_not_allowed()),
        }
    }

    /// Only uploads write; any other method on a read endpoint is answered `405`.
    fn head_permission(&self, route: &Route, parts: &Parts) -> Option<Permission> {
        (matches!(route, Route::Upload) && parts.method == Method::POST)
            .then_some(Permission::Publish)
    }

    /// Plain text, and the message as the HTTP/1 reason phrase: pip (`403 Client Error:
    /// <reason> for url`) and twine (`HTTPError: 400 Bad Request ... <reason>`) print the
    /// reason phrase, not the body.
    fn error_response(&self, err: &Error) -> Response<Body> {
        let message = err.client_message();
        let mut resp = protocol::text(err.status(), format!("{message}\n"));
        protocol::with_reason(&mut resp, &message);
        resp
    }

    /// pip and twine send credentials from the URL or keyring, and retry after a `Basic`
    /// challenge.
    /// An upload carries the file among multipart form fields.
    fn body_limit(&self, _: &Self::Route, config: &batlehub_core::RegistryConfig) -> u64 {
        crate::handlers::upload::body_limit(config.max_upload_bytes)
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// PEP 503 normalization: lowercase, runs of `-_.` become `-`.
    /// The upstream simple page of the (normalized) project name.
    fn upstream_probes(key: &str) -> Vec<String> {
        vec![format!("{key}/")]
    }

    fn package_key(raw: &str) -> Result<String> {
        Ok(crate::name::ProjectName::parse(raw)?.as_str().to_owned())
    }
}
