#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod handlers;
mod name;
mod protocol;
mod render;
mod routes;
mod tarball;
mod wire;

#[cfg(test)]
mod fuzz;

batlehub_core::protocol_service! {
    /// Serves one npm registry instance (local, proxy or hybrid) at whatever path it is
    /// mounted.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes an npm-style `{"error": "..."}` response. Mount it with axum's
    /// `Router::nest_service`, or call it from hyper's `service_fn`. Authentication is read
    /// from the [`Identity`](batlehub_core::Identity) request extension that
    /// `batlehub_auth::AuthLayer` inserts; a request without one is anonymous.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let npm = batlehub_npm::NpmService::local(&hub, "npm", "/npm")?;
    /// // axum::Router::new().nest_service("/npm", npm)
    /// # let _ = npm; Ok(()) }
    /// ```
    pub struct NpmService(protocol::Npm);
}
