#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
mod fuzz;
mod handlers;
mod modzip;
mod name;
mod protocol;
mod routes;
mod sumdb;
mod tlog;
mod wire;

pub use sumdb::ChecksumDb;

batlehub_core::protocol_service! {
    /// Serves one Go module registry (the GOPROXY protocol) instance, local, proxy or
    /// hybrid, at whatever path it is mounted: point `GOPROXY` at the mount point.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes a plain-text response with the right status (the go command prints it).
    /// Authentication is read from the [`Identity`](batlehub_core::Identity) request
    /// extension that `batlehub_auth::AuthLayer` inserts; a request without one is
    /// anonymous. A proxy's upstream is a GOPROXY root (the URL `GOPROXY` would name).
    ///
    /// Endpoints, relative to the mount point:
    ///
    /// | Request | What |
    /// |---|---|
    /// | `GET /{module}/@v/list` | versions policy lets through, one per line |
    /// | `GET /{module}/@v/{version}.info` | `{"Version","Time"}` |
    /// | `GET /{module}/@v/{version}.mod` | the version's `go.mod` |
    /// | `GET /{module}/@v/{version}.zip` | the module zip |
    /// | `GET /{module}/@latest` | `.info` of the newest version policy lets through |
    /// | `PUT /{module}/@v/{version}.zip` | publish a module zip (`.mod`, `.info` optional, checked) |
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let go = batlehub_go::GoService::local(&hub, "go", "/go")?;
    /// // axum::Router::new().nest_service("/go", go)
    /// # let _ = go; Ok(()) }
    /// ```
    pub struct GoService(protocol::Go);
}

impl GoService {
    /// Passes the checksum database `db` through at `/sumdb/{name}/...` and checks every
    /// upstream zip and `go.mod` against the `h1:` lines it publishes (modules it skips are
    /// checked against the upstream's `.mod` only).
    #[must_use]
    pub fn checksum_db(self, db: ChecksumDb) -> Self {
        Self(self.0.map_protocol(|p| p.sumdb = Some(db)))
    }
}
