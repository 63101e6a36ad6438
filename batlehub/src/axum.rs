//! Mounting registries in an axum [`Router`](::axum::Router), the mount path written once.

use std::convert::Infallible;

use axum::http::{Request, Response};

use crate::{BaseUrl, Body, ConfigError, Hub, RegistryConfig, RegistryService};

/// A registry service axum can nest: what every `*Service` of batlehub is.
pub trait NestableRegistry:
    RegistryService
    + tower_service::Service<
        Request<axum::body::Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    >
{
}

impl<S> NestableRegistry for S where
    S: RegistryService
        + tower_service::Service<
            Request<axum::body::Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        >
{
}

/// Adds registries to an axum `Router`.
///
/// # Examples
///
/// ```no_run
/// use batlehub::axum::RouterExt as _;
/// use batlehub::npm::NpmService;
/// use batlehub::{Mode, RegistryConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = batlehub::storage::embedded("./data").await?;
/// let hub = batlehub::Hub::builder().storage(storage).build()?;
/// let app: axum::Router = axum::Router::new().registry::<NpmService>(
///     "/npm",
///     &hub,
///     RegistryConfig::new("npm", Mode::Proxy).upstreams(["http://127.0.0.1:4873/"]),
/// )?;
/// # let _ = app; Ok(()) }
/// ```
pub trait RouterExt: Sized {
    /// Builds the registry `config` describes, serves it with `S` at `path`, and derives its
    /// base URL from `path` for every request (so the links it hands out are right).
    /// Upstream URLs are read the way `S`'s protocol writes them (cargo's `sparse+`).
    ///
    /// # Errors
    /// When the registry cannot be built (bad name, missing or bad upstream).
    fn registry<S>(
        self,
        path: &str,
        hub: &Hub,
        config: RegistryConfig,
    ) -> Result<Self, ConfigError>
    where
        S: RegistryService
            + tower_service::Service<
                Request<axum::body::Body>,
                Response = Response<Body>,
                Error = Infallible,
            >,
        S::Future: Send + 'static;
}

impl<St: Clone + Send + Sync + 'static> RouterExt for axum::Router<St> {
    fn registry<S: NestableRegistry>(
        self,
        path: &str,
        hub: &Hub,
        mut config: RegistryConfig,
    ) -> Result<Self, ConfigError> {
        config.upstream.urls = config
            .upstream
            .urls
            .iter()
            .map(|u| S::upstream_url(u))
            .collect();
        let registry = hub.registry(config)?;
        Ok(self.nest_service(path, S::from_registry(registry, BaseUrl::derived(path))))
    }
}
