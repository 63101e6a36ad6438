#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use batlehub_core as core;
pub use batlehub_core::body::Body;
pub use batlehub_core::protocol::RegistryService;
pub use batlehub_core::{
    BaseUrl, ClientAddr, ConfigError, Error, Hub, HubBuilder, Identity, Mode, Permission,
    Principal, Registry, RegistryConfig, Role,
};

/// Blob stores and metadata indexes (opendal; SQLite and PostgreSQL through sqlx).
pub use batlehub_storage as storage;

/// Credentials to principals, and the `AuthLayer`.
pub use batlehub_auth as auth;

/// Access and supply-chain policy.
pub use batlehub_rules as rules;

/// Mounting registries in an axum `Router`.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

/// The npm registry protocol.
#[cfg(feature = "npm")]
#[cfg_attr(docsrs, doc(cfg(feature = "npm")))]
pub use batlehub_npm as npm;

/// The Cargo sparse-index registry protocol.
#[cfg(feature = "cargo")]
#[cfg_attr(docsrs, doc(cfg(feature = "cargo")))]
pub use batlehub_cargo as cargo;

/// The PyPI Simple/JSON/upload protocol.
#[cfg(feature = "pypi")]
#[cfg_attr(docsrs, doc(cfg(feature = "pypi")))]
pub use batlehub_pypi as pypi;

/// The Maven repository protocol.
#[cfg(feature = "maven")]
#[cfg_attr(docsrs, doc(cfg(feature = "maven")))]
pub use batlehub_maven as maven;

/// The Go module proxy (GOPROXY) protocol.
#[cfg(feature = "go")]
#[cfg_attr(docsrs, doc(cfg(feature = "go")))]
pub use batlehub_go as go;

/// The RubyGems protocol (compact index, full index, `gem push`).
#[cfg(feature = "rubygems")]
#[cfg_attr(docsrs, doc(cfg(feature = "rubygems")))]
pub use batlehub_rubygems as rubygems;
