//! Maven on core's protocol abstraction: routing, dispatch, the plain-text envelope and
//! the `Basic` challenge.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use crate::handlers;
use crate::routes::{self, Route};

/// The Maven repository layout (`maven2/` below the mount point).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Maven;

impl Protocol for Maven {
    type Route = Route;
    const NAME: &'static str = "maven";

    fn route(&self, parts: &Parts) -> Result<Route> {
        routes::parse(parts.uri.path())
    }

    async fn handle(&self, cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        if cx.is_read() {
            return match route {
                Route::Metadata {
                    coords,
                    version,
                    checksum,
                } => handlers::read::metadata(&cx, &coords, version.as_deref(), checksum).await,
                Route::File {
                    coords,
                    version,
                    file,
                    checksum,
                } => handlers::read::file(&cx, &coords, &version, &file, checksum).await,
            };
        }
        if cx.method() == Method::PUT {
            return handlers::deploy::put(&cx, route, body).await;
        }
        Err(Error::MethodNotAllowed(format!(
            "{} is not supported here; Maven repositories take GET, HEAD and PUT",
            cx.method()
        )))
    }

    /// Plain text with the status: Maven prints the status line and, for some transports,
    /// the body.
    fn error_response(&self, err: &Error) -> Response<Body> {
        protocol::text(err.status(), format!("{}\n", err.client_message()))
    }

    /// Maven sends credentials only after a `Basic` challenge.
    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// The upstream `maven-metadata.xml` of the artifact (`groupId:artifactId`).
    fn upstream_probes(key: &str) -> Vec<String> {
        key.split_once(':')
            .map(|(group, artifact)| {
                vec![format!(
                    "{}/{artifact}/maven-metadata.xml",
                    group.replace('.', "/")
                )]
            })
            .unwrap_or_default()
    }
}
