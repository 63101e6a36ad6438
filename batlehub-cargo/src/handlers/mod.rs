//! One module per endpoint group.

pub(crate) mod download;
pub(crate) mod index;
pub(crate) mod manage;
pub(crate) mod publish;
pub(crate) mod search;
