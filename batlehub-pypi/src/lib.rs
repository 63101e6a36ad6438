#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod archive;
mod denied;
#[cfg(test)]
mod fuzz;
mod handlers;
pub mod metadata;
mod multipart;
pub mod name;
mod protocol;
mod routes;
pub mod version;
mod wire;

pub use denied::DeniedVersions;

batlehub_core::protocol_service! {
    /// Serves one PyPI registry instance (local, proxy or hybrid) at whatever path it is
    /// mounted.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes a plain-text response whose HTTP/1 reason phrase carries the message (pip and
    /// twine print the reason phrase). Mount it with axum's `Router::nest_service`, or call
    /// it from hyper's `service_fn`. Authentication is read from the
    /// [`Identity`](batlehub_core::Identity) request extension that
    /// `batlehub_auth::AuthLayer` inserts; a request without one is anonymous. A proxy's
    /// upstream is a Simple API root (`http://host/simple/`).
    ///
    /// Endpoints, relative to the mount point:
    ///
    /// | Request | What |
    /// |---|---|
    /// | `GET /simple/` | project list (PEP 503 HTML / PEP 691 JSON by `Accept`) |
    /// | `GET /simple/{project}/` | project page; non-normalized names redirect |
    /// | `GET /packages/{project}/{file}` | a distribution file; `{file}.metadata` its core metadata (PEP 658) |
    /// | `GET /pypi/{project}/json`, `GET /pypi/{project}/{version}/json` | JSON API |
    /// | `POST /legacy/` | twine upload |
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// use batlehub_pypi::{DeniedVersions, PypiService};
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let pypi = PypiService::local(&hub, "pypi", "/pypi")?.denied_versions(DeniedVersions::Yanked);
    /// // axum::Router::new().nest_service("/pypi", pypi)
    /// # let _ = pypi; Ok(()) }
    /// ```
    pub struct PypiService(protocol::Pypi);
}

impl PypiService {
    /// Sets how versions refused by policy appear on project pages (default
    /// [`DeniedVersions::Hide`]).
    #[must_use]
    pub fn denied_versions(self, denied: DeniedVersions) -> Self {
        Self(self.0.map_protocol(|p| p.denied = denied))
    }
}
