//! RubyGems endpoints: the compact index, downloads and the full index, the JSON APIs,
//! push and yank.

pub(crate) mod api;
pub(crate) mod compact;
pub(crate) mod files;
pub(crate) mod index;
pub(crate) mod local;
pub(crate) mod prepared;
pub(crate) mod proxy;
pub(crate) mod publish;
pub(crate) mod view;

use batlehub_core::Error;

/// `404` for a gem this source does not have.
pub(crate) fn unknown_gem(name: &str) -> Error {
    Error::NotFound(format!("This gem could not be found: {name}"))
}

/// `404` for a file this source does not have.
pub(crate) fn unknown_file(file: &str) -> Error {
    Error::NotFound(format!("{file} could not be found on this source"))
}

/// Content type of `.gem`, `.gz` and `.rz` files (never a `Content-Encoding`: clients
/// unpack them themselves).
pub(crate) const OCTET: &str = "application/octet-stream";
