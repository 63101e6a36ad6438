#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checksum;
#[cfg(test)]
mod fuzz;
mod handlers;
mod name;
mod protocol;
mod routes;
mod version;
mod wire;

batlehub_core::protocol_service! {
    /// Serves one Maven repository instance (local, proxy or hybrid) at whatever path it is
    /// mounted; the repository root (what `settings.xml` and `distributionManagement` name)
    /// is `maven2/` below the mount point.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes a plain-text response with the right status. Authentication is read from the
    /// [`Identity`](batlehub_core::Identity) request extension that
    /// `batlehub_auth::AuthLayer` inserts (Maven sends HTTP Basic with the token as
    /// password, and only after a `401` challenge, which this service sends whenever
    /// credentials are needed); a request without one is anonymous. A proxy's upstream is
    /// the root of a Maven repository (the folder holding the group paths).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let maven = batlehub_maven::MavenService::local(&hub, "maven", "/maven")?;
    /// // axum::Router::new().nest_service("/maven", maven)
    /// # let _ = maven; Ok(()) }
    /// ```
    pub struct MavenService(protocol::Maven);
}
