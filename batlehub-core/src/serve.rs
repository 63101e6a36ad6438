//! The request scaffolding every protocol service shares: who is calling, where the
//! service is mounted, admission (rate limits), error rendering in the protocol's
//! envelope, and the headers every response carries.

use std::future::Future;

use chrono::{DateTime, Utc};
use http::request::Parts;
use http::{HeaderValue, Method, Response};

use crate::baseurl::BaseUrl;
use crate::body::{self, Body};
use crate::error::{Error, Result};
use crate::model::Identity;
use crate::policy::{Caller, Outcome};
use crate::registry::Registry;

/// What a protocol service learns about a request before dispatching it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The identity (taken out of the request extensions) and client address.
    pub caller: Caller,
    /// The absolute base URL of the service for this request, without a trailing slash.
    pub base: String,
    /// A `HEAD` request: the response body is dropped, its headers kept.
    pub head: bool,
}

impl Incoming {
    /// Takes the [`Identity`] the auth layer inserted (anonymous when absent), and resolves
    /// the client IP and base URL through `base`.
    pub fn take(parts: &mut Parts, base: &BaseUrl) -> Self {
        let identity = parts.extensions.remove::<Identity>().unwrap_or_default();
        Self {
            caller: Caller {
                identity,
                client_ip: base.client_ip(parts),
            },
            base: base.resolve(parts),
            head: parts.method == Method::HEAD,
        }
    }
}

/// Given the admission result (`registry.admit(&caller)`), runs `dispatch` when admitted,
/// renders any error with `render` (the protocol's envelope), adds the admission headers and
/// `X-Content-Type-Options: nosniff`, and drops the body of a `HEAD` response.
pub async fn respond<F, Fut, R>(
    registry: &Registry,
    admitted: Result<Outcome>,
    head: bool,
    dispatch: F,
    render: R,
) -> Response<Body>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>>>,
    R: Fn(&Error, DateTime<Utc>) -> Response<Body>,
{
    let mut resp = match admitted {
        Ok(outcome) => {
            let mut resp = match dispatch().await {
                Ok(r) => r,
                Err(e) => render(&e, registry.now()),
            };
            resp.headers_mut().extend(outcome.headers);
            resp
        }
        Err(e) => render(&e, registry.now()),
    };
    resp.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if head {
        *resp.body_mut() = body::empty();
    }
    resp
}
