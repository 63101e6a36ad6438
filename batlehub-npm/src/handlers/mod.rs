//! One module per endpoint group.

pub(crate) mod misc;
pub(crate) mod publish;
pub(crate) mod read;
pub(crate) mod tags;
