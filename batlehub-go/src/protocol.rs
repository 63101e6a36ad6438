//! Go modules on core's protocol abstraction: routing, dispatch, the plain-text envelope
//! (the go command prints a `text/plain` error body) and the `Basic` challenge.

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Permission, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use crate::handlers;
use crate::name::ModulePath;
use crate::routes::{self, Route};
use crate::sumdb::ChecksumDb;

/// The GOPROXY protocol, with the checksum database a proxy checks zips against.
#[derive(Debug, Clone, Default)]
pub(crate) struct Go {
    pub(crate) sumdb: Option<ChecksumDb>,
}

impl Protocol for Go {
    type Route = Route;
    const NAME: &'static str = "go";

    fn route(&self, parts: &Parts) -> Result<Route> {
        let write = !matches!(parts.method, Method::GET | Method::HEAD);
        routes::parse(parts.uri.path(), write)
    }

    async fn handle(&self, mut cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        if let Some(db) = &self.sumdb {
            cx.parts.extensions.insert(db.clone());
        }
        let read = cx.is_read();
        match route {
            Route::List(m) if read => handlers::read::list(&cx, &m).await,
            Route::Latest(m) if read => handlers::read::latest(&cx, &m).await,
            Route::File {
                module,
                version,
                ext,
            } if read => handlers::read::file(&cx, &module, &version, ext).await,
            Route::File {
                module,
                version,
                ext,
            } if cx.method() == Method::PUT => {
                handlers::publish::put(&cx, &module, &version, ext, body).await
            }
            Route::Sumdb { name, rest } if read => handlers::proxy::sumdb(&cx, &name, &rest).await,
            _ => Err(cx.method_not_allowed()),
        }
    }

    /// Plain text: the go command shows a `text/plain` error body as "server response".
    fn error_response(&self, err: &Error) -> Response<Body> {
        protocol::text(err.status(), format!("{}\n", err.client_message()))
    }

    /// Only `PUT` of a version file writes; other methods are `405`.
    fn head_permission(&self, route: &Route, parts: &Parts) -> Option<Permission> {
        (matches!(route, Route::File { .. }) && parts.method == Method::PUT)
            .then_some(Permission::Publish)
    }

    /// The go command sends credentials (from `.netrc`) with every request over https; the
    /// challenge serves other clients.
    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// The upstream's version list of the module (the key is the module path; URLs carry
    /// it case-escaped).
    fn upstream_probes(key: &str) -> Vec<String> {
        ModulePath::parse(key)
            .map(|m| vec![format!("{}/@v/list", m.escaped())])
            .unwrap_or_default()
    }

    /// Module paths are case-sensitive: the key is the path as written in `go.mod`,
    /// checked (an escaped path, `!x` for `X`, is decoded first).
    fn package_key(raw: &str) -> Result<String> {
        let m = if raw.contains('!') {
            ModulePath::unescape(raw)?
        } else {
            ModulePath::parse(raw)?
        };
        Ok(m.as_str().to_owned())
    }
}
