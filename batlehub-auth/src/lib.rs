#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod actions;
mod credentials;
mod http;
mod jwt;
mod kubernetes;
mod layer;
mod oidc;
mod pat;
mod provider;
mod throttle;
mod tokens;

pub use actions::{ActionsOidcConfig, ActionsOidcProvider, ClaimRule, Matcher};
pub use credentials::{Credentials, extract_credentials};
/// The JWT signature algorithms, as pinned in [`OidcConfig::algorithms`].
pub use jsonwebtoken::Algorithm;
pub use kubernetes::{KubernetesConfig, KubernetesProvider, ReviewerToken};
pub use layer::{AuthFuture, AuthLayer, AuthService, Authenticator, IdentityFuture};
pub use oidc::{OidcConfig, OidcProvider};
pub use pat::{PAT_PREFIX, PatProvider, TokenFuture, TokenStore, new_personal_token};
pub use provider::{Provider, Providers, Verdict, VerdictFuture};
pub use throttle::FailedAuthLimit;
pub use tokens::{STATIC_PREFIX, StaticTokens, TokenConfig, TokenSecret, hash_token};

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
    /// A provider's configuration is invalid.
    #[error("auth provider `{provider}`: {reason}")]
    Config {
        /// The provider's name.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// A claim pattern (`re:...`) does not compile.
    #[error("invalid claim pattern `{pattern}`: {reason}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A provider could not fetch what it needs from its identity provider (OIDC
    /// discovery, JWKS).
    #[error("auth provider `{provider}`: {reason}")]
    Discovery {
        /// The provider's name.
        provider: String,
        /// What failed.
        reason: String,
    },
}
