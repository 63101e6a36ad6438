#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod handlers;
pub mod name;
mod routes;
mod service;
mod tarball;
pub mod wire;

pub use service::NpmService;
