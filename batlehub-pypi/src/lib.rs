#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod archive;
mod error;
mod handlers;
pub mod metadata;
mod multipart;
pub mod name;
mod routes;
mod service;
pub mod version;
pub mod wire;

pub use service::{DeniedVersions, PypiService};
