#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod crate_file;
mod handlers;
mod name;
mod protocol;
mod routes;
mod wire;

#[cfg(test)]
mod fuzz;

batlehub_core::protocol_service! {
    /// Serves one cargo registry instance (local, proxy or hybrid) at whatever path it is
    /// mounted: the sparse index under `registry/`, the web API under `api/v1/`.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes a cargo-style `{"errors":[{"detail":"..."}]}` response. Mount it with axum's
    /// `Router::nest_service`, or call it from hyper's `service_fn`. Authentication is read
    /// from the [`Identity`](batlehub_core::Identity) request extension that
    /// `batlehub_auth::AuthLayer` inserts (cargo sends the raw token in `Authorization`); a
    /// request without one is anonymous. A proxy's upstream is the folder holding the
    /// sparse index's `config.json`, with or without `sparse+`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let crates = batlehub_cargo::CargoService::local(&hub, "crates", "/crates")?;
    /// // axum::Router::new().nest_service("/crates", crates)
    /// # let _ = crates; Ok(()) }
    /// ```
    pub struct CargoService(protocol::Cargo);
}
