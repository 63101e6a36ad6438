//! The protocol abstraction: what a registry format supplies, and the one request path
//! around it.
//!
//! A protocol (npm, cargo, PyPI, Maven, ...) implements [`Protocol`]: its route type and
//! parser, its handlers, its error envelope, its authentication challenge and its
//! package-name normalization. [`ProtocolService`] owns everything else, once for every
//! format: it takes the caller's identity and the base URL, admits the request (rate
//! limits), routes it, calls the handler, renders errors in the protocol's envelope with the
//! headers every error carries (challenge, `Retry-After`, rate-limit state), adds
//! `X-Content-Type-Options: nosniff`, and drops the body of `HEAD` responses.
//!
//! # Adding a protocol
//!
//! A protocol crate holds only its protocol. Its files, each small:
//!
//! - `protocol.rs`: a unit struct (or one holding the protocol's own settings) implementing
//!   [`Protocol`]; `handle` matches the route and the method and calls a handler.
//! - `routes.rs`: `enum Route` and its parser, built on [`segments`], [`decode_segment`]
//!   and [`query_param`].
//! - `name.rs`: name and version rules; [`Protocol::package_key`] returns the key names are
//!   stored under (cargo lowercases and maps `_` to `-`, PyPI applies PEP 503).
//! - `wire.rs`: the protocol's documents (crate-private).
//! - `handlers/`: one file per endpoint group. Handlers take a [`Cx`] and answer with the
//!   helpers of this module ([`json`], [`text`], [`artifact`], [`conditional`], ...); they
//!   read bodies with [`RequestBody::read_to_bytes`] or stream them with
//!   [`RequestBody::into_stream`]. They never import from `lib.rs` or `protocol.rs`.
//! - `lib.rs`: docs, and the exported service, declared with [`protocol_service!`](crate::protocol_service):
//!
//! ```
//! use batlehub_core::protocol::{self, Cx, Protocol, RequestBody};
//! use batlehub_core::body::Body;
//! use batlehub_core::{Error, Result};
//! use http::{Response, StatusCode, request::Parts};
//!
//! /// The "hello" protocol: `GET /hello/{name}`.
//! #[derive(Debug, Default)]
//! pub struct Hello;
//!
//! /// A parsed request.
//! pub enum Route {
//!     /// `GET /hello/{name}`.
//!     Hello(String),
//! }
//!
//! impl Protocol for Hello {
//!     type Route = Route;
//!     const NAME: &'static str = "hello";
//!
//!     fn route(&self, parts: &Parts) -> Result<Route> {
//!         match protocol::segments(parts.uri.path()).as_slice() {
//!             ["hello", name] => Ok(Route::Hello(protocol::decode_segment("name", name)?)),
//!             _ => Err(Error::NotFound("no such endpoint".into())),
//!         }
//!     }
//!
//!     async fn handle(&self, cx: Cx, route: Route, _body: RequestBody) -> Result<Response<Body>> {
//!         match route {
//!             Route::Hello(name) if cx.is_read() => {
//!                 Ok(protocol::text(StatusCode::OK, format!("hello {name}\n")))
//!             }
//!             Route::Hello(_) => Err(cx.method_not_allowed()),
//!         }
//!     }
//!
//!     fn error_response(&self, err: &Error) -> Response<Body> {
//!         protocol::text(err.status(), format!("{}\n", err.client_message()))
//!     }
//!
//!     fn challenge(&self) -> Option<http::HeaderValue> {
//!         Some(http::HeaderValue::from_static("Basic realm=\"batlehub\""))
//!     }
//! }
//!
//! batlehub_core::protocol_service! {
//!     /// Serves one "hello" registry.
//!     pub struct HelloService(Hello);
//! }
//! ```
//!
//! Then run the shared conformance suite from `batlehub-test` in the crate's `tests/`.

mod request;
mod response;
mod service;

use std::future::Future;

use http::request::Parts;
use http::{HeaderValue, Method, Response};

pub use request::{
    BodyStream, RequestBody, blocking, content_length, decode_path, decode_segment, query_param,
    segments,
};
pub use response::{
    Audience, JSON, MAX_REASON, OCTET_STREAM, TEXT, artifact, conditional, etag_of, if_none_match,
    json, json_typed, mark_stale, redirect, text, typed, with_reason,
};
pub use service::ProtocolService;

use crate::body::Body;
use crate::error::{Error, Result};
use crate::model::{Identity, Permission};
use crate::policy::Caller;
use crate::registry::Registry;

/// A registry format: what it parses, how it answers, how it fails.
///
/// [`ProtocolService`] calls [`route`](Protocol::route) with the request head, then
/// [`handle`](Protocol::handle) with the route and the body; an error from either is
/// rendered by [`error_response`](Protocol::error_response).
pub trait Protocol: std::fmt::Debug + Send + Sync + 'static {
    /// One parsed request.
    type Route: Send + 'static;

    /// The protocol's name, for logs (`"npm"`, `"cargo"`, ...).
    const NAME: &'static str;

    /// Parses the request head (path relative to the mount point, query, method) into a
    /// route.
    ///
    /// # Errors
    /// [`Error::NotFound`] for paths the protocol does not have, [`Error::BadRequest`] for
    /// malformed names or versions.
    fn route(&self, parts: &Parts) -> Result<Self::Route>;

    /// Answers one request.
    fn handle(
        &self,
        cx: Cx,
        route: Self::Route,
        body: RequestBody,
    ) -> impl Future<Output = Result<Response<Body>>> + Send;

    /// The error in the protocol's native envelope: status, `Content-Type` and body. The
    /// service adds the headers every error carries ([`Error::headers`], the
    /// [`challenge`](Protocol::challenge) on `401`). Use [`Error::client_message`]: it never
    /// carries internal detail.
    fn error_response(&self, err: &Error) -> Response<Body>;

    /// The permission a request needs, checked from its head before the handler runs and so
    /// before any byte of its body is read: an upload from a caller who may not write is
    /// refused with `401` and the challenge (or `403`) at once, and a proxy refuses it with
    /// `405`. The default asks [`Permission::Publish`] for every method but `GET` and `HEAD`
    /// (fail closed); a protocol with anonymous writes of its own (a search or audit `POST`)
    /// returns `None` for those routes. Handlers still make the finer checks (ownership,
    /// namespaces, the package named in the body).
    fn head_permission(&self, route: &Self::Route, parts: &Parts) -> Option<Permission> {
        let _ = route;
        (!matches!(parts.method, Method::GET | Method::HEAD)).then_some(Permission::Publish)
    }

    /// The largest request body a write to `route` may declare: the upload limit plus the
    /// protocol's envelope around the artifact (base64 and JSON, multipart fields, length
    /// frames). A write whose `Content-Length` is larger is refused with `413` from its
    /// head, before any of the body is read; handlers still bound what they read. The
    /// default is [`RegistryConfig::max_upload_bytes`](crate::RegistryConfig::max_upload_bytes).
    fn body_limit(&self, route: &Self::Route, config: &crate::RegistryConfig) -> u64 {
        let _ = route;
        config.max_upload_bytes
    }

    /// The `WWW-Authenticate` value sent with `401` (Maven sends credentials only after a
    /// `Basic` challenge), or `None` for none.
    fn challenge(&self) -> Option<HeaderValue>;

    /// The upstream URL as configured (cargo users write a `sparse+` prefix) turned into
    /// the plain `http(s)` URL the engine fetches from. The default keeps it as it is.
    fn upstream_url(raw: &str) -> String
    where
        Self: Sized,
    {
        raw.to_owned()
    }

    /// The upstream paths (relative to an upstream's root) that answer `2xx` when the
    /// upstream has the package stored under `key`, and `404`/`410` when it does not: the
    /// hybrid shadowing guard asks them before the first local publish of a name (see
    /// [`Registry::check_publish`]). The default has none, so a hybrid registry of such a
    /// protocol publishes only [claimed](Registry::is_claimed) names.
    fn upstream_probes(key: &str) -> Vec<String>
    where
        Self: Sized,
    {
        let _ = key;
        Vec::new()
    }

    /// The key a raw package name is stored under (policy, owners, blocks and the index use
    /// it): the protocol's normalization. The default keeps the name as it is.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when `raw` is not a valid name for this protocol.
    fn package_key(raw: &str) -> Result<String>
    where
        Self: Sized,
    {
        Ok(raw.to_owned())
    }
}

/// Everything a handler knows about one request.
#[derive(Debug)]
#[non_exhaustive]
pub struct Cx {
    /// The registry instance served.
    pub registry: Registry,
    /// Who is calling, from where.
    pub caller: Caller,
    /// The absolute base URL of the service for this request, without a trailing slash.
    pub base: String,
    /// The request head; the path is relative to the mount point.
    pub parts: Parts,
    /// The protocol's [`Protocol::upstream_probes`].
    probes: fn(&str) -> Vec<String>,
}

impl Cx {
    /// A context for `parts` (tests and embedders calling handlers directly).
    #[must_use]
    pub fn new(registry: Registry, caller: Caller, base: String, parts: Parts) -> Self {
        Self {
            registry,
            caller,
            base,
            parts,
            probes: |_| Vec::new(),
        }
    }

    /// The same context, with `P`'s upstream probes for the hybrid shadowing guard.
    pub(crate) fn for_protocol<P: Protocol>(mut self) -> Self {
        self.probes = P::upstream_probes;
        self
    }

    /// Whether a publish may go ahead, [`Registry::check_publish`] with this protocol's
    /// upstream probes: every protocol's publish goes through here.
    ///
    /// # Errors
    /// As [`Registry::check_publish`].
    pub async fn check_publish(
        &self,
        facts: &crate::policy::PublishFacts,
    ) -> Result<crate::policy::Outcome> {
        let probes = (self.probes)(&facts.package);
        self.registry
            .check_publish(&self.caller, facts, &probes)
            .await
    }

    /// The caller's identity.
    #[must_use]
    pub fn identity(&self) -> &Identity {
        &self.caller.identity
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// A `GET` or `HEAD`.
    #[must_use]
    pub fn is_read(&self) -> bool {
        matches!(self.parts.method, Method::GET | Method::HEAD)
    }

    /// The value of request header `name`, when it is text.
    #[must_use]
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error for a method this route does not take.
    #[must_use]
    pub fn method_not_allowed(&self) -> Error {
        Error::MethodNotAllowed(format!("{} is not supported here", self.parts.method))
    }

    /// Who may keep a copy of an artifact served to this caller ([`Audience`]).
    #[must_use]
    pub fn audience(&self) -> Audience {
        match self.caller.identity {
            Identity::Anonymous => Audience::Public,
            _ => Audience::Private,
        }
    }

    /// Whether the package stored under `key` is served from the local index: always in
    /// `local` mode, never in `proxy` mode, and in `hybrid` mode when a local package of that
    /// name exists or the name is claimed (the dependency-confusion guard: such a name never
    /// falls through to an upstream, even when policy hides every local version). See
    /// [`Registry::is_local`].
    ///
    /// # Errors
    /// When the index cannot be read.
    pub async fn is_local(&self, key: &str) -> Result<bool> {
        self.registry.is_local(key).await
    }
}

/// A service serving one registry instance in one protocol: what every type declared with
/// [`protocol_service!`](crate::protocol_service) is. Lets generic code (a server's table of registry kinds, a test
/// harness) build and inspect services without knowing the protocol.
pub trait RegistryService: Clone + Send + Sync + 'static {
    /// The protocol's name (`"npm"`, `"cargo"`, ...).
    const PROTOCOL: &'static str;

    /// Serves `registry`, building absolute URLs with `base`.
    fn from_registry(registry: Registry, base: crate::BaseUrl) -> Self;

    /// The registry instance served.
    fn registry(&self) -> &Registry;

    /// The key a raw package name is stored under ([`Protocol::package_key`]).
    ///
    /// # Errors
    /// [`Error::BadRequest`] when `raw` is not a valid name for this protocol.
    fn package_key(raw: &str) -> Result<String>;

    /// A configured upstream URL in the form the engine fetches from
    /// ([`Protocol::upstream_url`]).
    fn upstream_url(raw: &str) -> String;
}

/// Declares a protocol crate's exported service: a documented newtype over
/// [`ProtocolService`] with the usual constructors (`new`, `local`, `proxy`, `registry`)
/// and its `tower::Service` implementation, written once here.
///
/// The protocol type must implement [`Protocol`] and `Default`.
#[macro_export]
macro_rules! protocol_service {
    ($(#[$meta:meta])* $vis:vis struct $name:ident($proto:ty);) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name($crate::protocol::ProtocolService<$proto>);

        impl $name {
            /// Serves `registry`, building absolute URLs with `base`.
            #[must_use]
            pub fn new(registry: $crate::Registry, base: $crate::BaseUrl) -> Self {
                Self($crate::protocol::ProtocolService::new(
                    <$proto as ::core::default::Default>::default(),
                    registry,
                    base,
                ))
            }

            /// A local registry named `name`, mounted at `mount_path` (base URL derived per
            /// request).
            ///
            /// # Errors
            /// When the registry cannot be built (bad name).
            pub fn local(
                hub: &$crate::Hub,
                name: &str,
                mount_path: &str,
            ) -> ::core::result::Result<Self, $crate::ConfigError> {
                let registry =
                    hub.registry($crate::RegistryConfig::new(name, $crate::Mode::Local))?;
                Ok(Self::new(registry, $crate::BaseUrl::derived(mount_path)))
            }

            /// A proxy of `upstream` named `name`, mounted at `mount_path` (base URL derived
            /// per request).
            ///
            /// # Errors
            /// When the registry cannot be built (bad name or upstream URL).
            pub fn proxy(
                hub: &$crate::Hub,
                name: &str,
                upstream: &str,
                mount_path: &str,
            ) -> ::core::result::Result<Self, $crate::ConfigError> {
                let upstream = <$proto as $crate::protocol::Protocol>::upstream_url(upstream);
                let registry = hub.registry(
                    $crate::RegistryConfig::new(name, $crate::Mode::Proxy).upstreams([upstream]),
                )?;
                Ok(Self::new(registry, $crate::BaseUrl::derived(mount_path)))
            }

            /// The registry instance served.
            #[must_use]
            pub fn registry(&self) -> &$crate::Registry {
                self.0.registry()
            }
        }

        impl $crate::protocol::RegistryService for $name {
            const PROTOCOL: &'static str = <$proto as $crate::protocol::Protocol>::NAME;

            fn from_registry(registry: $crate::Registry, base: $crate::BaseUrl) -> Self {
                Self::new(registry, base)
            }

            fn registry(&self) -> &$crate::Registry {
                self.0.registry()
            }

            fn package_key(raw: &str) -> $crate::Result<::std::string::String> {
                <$proto as $crate::protocol::Protocol>::package_key(raw)
            }

            fn upstream_url(raw: &str) -> ::std::string::String {
                <$proto as $crate::protocol::Protocol>::upstream_url(raw)
            }
        }

        impl<B> $crate::__private::Service<$crate::__private::http::Request<B>> for $name
        where
            B: $crate::__private::http_body::Body<Data = $crate::__private::Bytes>
                + Send
                + 'static,
            B::Error: Into<$crate::body::BoxError>,
        {
            type Response = $crate::__private::http::Response<$crate::body::Body>;
            type Error = ::core::convert::Infallible;
            type Future = $crate::protocol::ResponseFuture;

            fn poll_ready(
                &mut self,
                cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::core::result::Result<(), Self::Error>> {
                $crate::__private::Service::<$crate::__private::http::Request<B>>::poll_ready(
                    &mut self.0,
                    cx,
                )
            }

            fn call(&mut self, req: $crate::__private::http::Request<B>) -> Self::Future {
                $crate::__private::Service::call(&mut self.0, req)
            }
        }
    };
}

pub use service::ResponseFuture;
