#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
mod fuzz;
pub mod gemspec;
mod handlers;
pub mod index;
pub mod marshal;
pub mod name;
pub mod package;
mod protocol;
mod routes;
mod wire;
mod yaml;

batlehub_core::protocol_service! {
    /// Serves one RubyGems source, local, proxy or hybrid, at whatever path it is mounted:
    /// put the mount point in a Gemfile (`source "http://host/proxy/NAME"`), pass it to
    /// `gem install --source`, and push with `gem push --host`.
    ///
    /// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure
    /// becomes a plain-text response with the right status (`gem` prints it).
    /// Authentication is read from the [`Identity`](batlehub_core::Identity) request
    /// extension that `batlehub_auth::AuthLayer` inserts (`gem` sends its API key raw in
    /// `Authorization`, bundler sends `Basic`); a request without one is anonymous. A
    /// proxy's upstream is a RubyGems source root.
    ///
    /// Endpoints, relative to the mount point:
    ///
    /// | Request | What |
    /// |---|---|
    /// | `HEAD /` | `200`: `gem` checks a source with it |
    /// | `GET /versions`, `/info/{gem}`, `/names` | the compact index (MD5 `ETag`, `Repr-Digest`, `Range`) |
    /// | `GET /gems/{gem}-{version}[-{platform}].gem` | the gem |
    /// | `GET /quick/Marshal.4.8/{full_name}.gemspec.rz` | its quick gemspec |
    /// | `GET /specs.4.8.gz`, `/latest_specs.4.8.gz`, `/prerelease_specs.4.8.gz` | the full index |
    /// | `GET /api/v1/gems/{gem}.json`, `/api/v1/versions/{gem}.json`, `/api/v2/rubygems/{gem}/versions/{version}.json` | JSON descriptions |
    /// | `POST /api/v1/gems` | push a `.gem` |
    /// | `DELETE /api/v1/gems/yank` | yank (`gem_name`, `version`, `platform` form fields) |
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(storage: batlehub_core::Storage) -> Result<(), Box<dyn std::error::Error>> {
    /// let hub = batlehub_core::Hub::builder().storage(storage).build()?;
    /// let gems = batlehub_rubygems::RubyGemsService::local(&hub, "gems", "/gems")?;
    /// // axum::Router::new().nest_service("/gems", gems)
    /// # let _ = gems; Ok(()) }
    /// ```
    pub struct RubyGemsService(protocol::RubyGems);
}
