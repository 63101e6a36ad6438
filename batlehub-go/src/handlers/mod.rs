//! GOPROXY endpoints: reads (local and upstream), publishes, and the checksum database.

pub(crate) mod proxy;
pub(crate) mod publish;
pub(crate) mod read;
pub(crate) mod versions;

use batlehub_core::Error;

use crate::name::{ModulePath, Version};

/// `404` for a version this registry does not have, worded as the go command expects.
pub(crate) fn unknown_version(m: &ModulePath, v: &Version) -> Error {
    Error::NotFound(format!("{m}@{v}: unknown revision {v}"))
}

/// `404` for a module this registry does not have.
pub(crate) fn unknown_module(m: &ModulePath) -> Error {
    Error::NotFound(format!("module {m}: not found on this registry"))
}

/// Content types of the wire documents.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const JSON: &str = "application/json";
pub(crate) const ZIP: &str = "application/zip";
