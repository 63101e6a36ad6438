#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checksum;
mod error;
mod handlers;
mod name;
mod routes;
mod service;
mod version;
mod wire;

pub use service::MavenService;
