#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod crate_file;
mod error;
mod handlers;
pub mod name;
mod routes;
mod service;
pub mod wire;

pub use service::CargoService;
