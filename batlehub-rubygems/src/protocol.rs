//! RubyGems on core's protocol abstraction: routing, dispatch, the plain-text envelope
//! (`gem` prints the body of an error) and the `Basic` challenge (bundler sends the
//! credentials configured for a source only after one).

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
use batlehub_core::{Error, Result};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use crate::handlers;
use crate::routes::{self, Route};

/// The RubyGems source protocol.
#[derive(Debug, Clone, Default)]
pub(crate) struct RubyGems;

impl Protocol for RubyGems {
    type Route = Route;
    const NAME: &'static str = "rubygems";

    fn route(&self, parts: &Parts) -> Result<Route> {
        routes::parse(parts.uri.path())
    }

    async fn handle(&self, cx: Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
        let read = cx.is_read();
        match route {
            Route::Root if read => handlers::index::root(&cx),
            Route::Versions if read => handlers::index::versions(&cx).await,
            Route::Names if read => handlers::index::names(&cx).await,
            Route::Info(name) if read => handlers::index::info(&cx, &name).await,
            Route::Gem(file) if read => handlers::files::gem(&cx, &file).await,
            Route::Quick(file) if read => handlers::files::quick(&cx, &file).await,
            Route::Specs(which) if read => handlers::files::specs(&cx, which).await,
            Route::GemJson(name) if read => handlers::api::gem(&cx, &name).await,
            Route::VersionsJson(name) if read => handlers::api::versions(&cx, &name).await,
            Route::VersionJson { gem, version } if read => {
                handlers::api::version(&cx, &gem, &version).await
            }
            Route::Dependencies if read => Err(Error::NotFound(
                "the dependency API is not served here; use the compact index (/versions, /info)"
                    .into(),
            )),
            Route::Push if cx.method() == Method::POST => handlers::publish::push(&cx, body).await,
            Route::Yank if cx.method() == Method::DELETE => {
                handlers::publish::yank(&cx, body).await
            }
            _ => Err(cx.method_not_allowed()),
        }
    }

    /// Plain text: `gem push` and `gem yank` print the body whatever the status; the
    /// message is the reason phrase too, which is what `gem install` and bundler print
    /// when a download fails ("bad response <reason> 403").
    fn error_response(&self, err: &Error) -> Response<Body> {
        let message = err.client_message();
        let mut resp = protocol::text(err.status(), format!("{message}\n"));
        protocol::with_reason(&mut resp, &message);
        resp
    }

    /// The yank form is small; only a push carries a gem.
    fn body_limit(&self, route: &Route, config: &batlehub_core::RegistryConfig) -> u64 {
        match route {
            Route::Push => config.max_upload_bytes,
            _ => 64 * 1024,
        }
    }

    /// bundler sends a source's credentials (`bundle config set URL user:token`) on every
    /// request; `gem` sends its API key raw. `401` (never `403`) makes bundler say which
    /// credentials to set.
    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Basic realm=\"batlehub\""))
    }

    /// The upstream's `/info` of the gem.
    fn upstream_probes(key: &str) -> Vec<String> {
        vec![format!("info/{key}")]
    }

    /// Gem names are case-sensitive and stored as written, checked.
    fn package_key(raw: &str) -> Result<String> {
        crate::name::check_name(raw).map_err(|e| Error::BadRequest(e.0))?;
        Ok(raw.to_owned())
    }
}
