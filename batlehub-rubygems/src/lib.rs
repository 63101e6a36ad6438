#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
mod fuzz;
pub mod gemspec;
pub mod index;
pub mod marshal;
pub mod name;
pub mod package;
mod yaml;
