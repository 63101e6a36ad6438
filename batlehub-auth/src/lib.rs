#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod credentials;
mod layer;
mod tokens;

pub use credentials::{Credentials, extract_credentials};
pub use layer::{AuthFuture, AuthLayer, AuthService, Authenticator, IdentityFuture};
pub use tokens::{StaticTokens, TokenConfig, TokenSecret, hash_token};

/// Errors building an authenticator from configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A token entry is invalid (bad hash, empty value, duplicate name).
    #[error("auth.tokens[{index}] ({name}): {reason}")]
    InvalidToken {
        /// Position in the configuration list.
        index: usize,
        /// The token's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Hashing a token failed.
    #[error("could not hash token: {0}")]
    Hash(String),
}
