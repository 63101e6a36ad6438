#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod rbac;

pub use rbac::{Rbac, RbacConfig};

/// Errors in policy configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A permission string is unknown.
    #[error("{path}: {reason}")]
    InvalidPermission {
        /// Where in the configuration (`rbac.user[1]`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}
