//! One module per endpoint group.

pub(crate) mod files;
pub(crate) mod json_api;
pub(crate) mod project;
pub(crate) mod simple;
pub(crate) mod upload;
