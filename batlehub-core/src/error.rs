//! The one error type of the core engine, mapped to HTTP by each protocol crate.

use http::StatusCode;

/// What went wrong while serving a registry request.
///
/// Every variant carries a message that is safe to show to a client; internal details
/// (paths, SQL, upstream bodies) go to `tracing` where the error is raised. The type is
/// `Clone` so that one upstream failure can be handed to every request waiting on it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The package, version or file does not exist (or is hidden from this caller).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed: bad name, bad version, bad body.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its content is refused (publish validation).
    #[error("{0}")]
    Unprocessable(String),
    /// Credentials are needed and were absent, or were present and wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but lacks a permission, or a policy rule refused the request.
    #[error("{0}")]
    Forbidden(String),
    /// A policy rule refused the request; the denial says which rule and why.
    #[error("{}", .0.reason)]
    Denied(Denial),
    /// Too many requests in the current rate-limit window.
    #[error("{reason}")]
    TooManyRequests {
        /// Which limit, in words.
        reason: String,
        /// Seconds until the window resets.
        retry_after: u64,
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The version or file exists already (versions are immutable).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The registry does not support this operation in its mode (publish to a proxy).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Every upstream failed and nothing usable was cached.
    #[error("{0}")]
    Upstream(String),
    /// An upstream artifact did not match the digest its metadata published.
    #[error("integrity check failed for {key}: upstream bytes do not match the published digest")]
    Integrity {
        /// The artifact that failed.
        key: String,
    },
    /// The storage backend failed; the detail was logged.
    #[error("storage error")]
    Storage(String),
    /// An unexpected internal failure; the detail was logged.
    #[error("internal error")]
    Internal(String),
    /// The storage backend is unreachable or overloaded (an object-store outage, a
    /// throttling answer): nothing was changed, and the client should retry after
    /// [`Error::UNAVAILABLE_RETRY_AFTER`] seconds. The detail was logged.
    #[error("storage unavailable")]
    Unavailable(String),
}

/// A refusal by a policy rule, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The rule's identifier, stable across releases (`rbac`, `release_age_gate`, ...).
    pub rule: String,
    /// A sentence for the human reading the client's output.
    pub reason: String,
    /// When the request would become acceptable, if ever (age gate).
    pub eligible_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Error {
    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::Denied(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Upstream(_) | Error::Integrity { .. } => StatusCode::BAD_GATEWAY,
            Error::Storage(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message for the client: never internal details for 5xx errors.
    #[must_use]
    pub fn client_message(&self) -> String {
        match self {
            Error::Storage(_) | Error::Internal(_) => {
                "the registry failed to handle this request; the error was logged".to_owned()
            }
            Error::Unavailable(_) => {
                "the registry's storage is unavailable for the moment; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// Builds a storage error, logging the detail.
    pub fn storage(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "storage failure");
        Error::Storage(detail.to_string())
    }

    /// Seconds a client is asked to wait (`Retry-After`) after [`Error::Unavailable`].
    pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

    /// Builds an unavailable-storage error, logging the detail.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "storage unavailable");
        Error::Unavailable(detail.to_string())
    }

    /// Builds an internal error, logging the detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal failure");
        Error::Internal(detail.to_string())
    }
}

/// A configuration that cannot be served: a bad registry name, a proxy without upstreams, a
/// bad upstream URL or CA file, a hub without storage. Constructors return it, so nothing
/// is discovered at the first request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// An error saying `message`.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What is wrong, naming the offending setting.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Shorthand for results of the core engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Headers every protocol adds to this error's response: `Retry-After` for age-gated
    /// denials and rate limits, `X-RateLimit-*` for 429, the rule of a denial. The
    /// authentication challenge is the protocol's
    /// ([`Protocol::challenge`](crate::protocol::Protocol::challenge)).
    #[must_use]
    pub fn headers(&self, now: chrono::DateTime<chrono::Utc>) -> http::HeaderMap {
        use http::HeaderValue;
        let mut h = http::HeaderMap::new();
        match self {
            Error::Denied(Denial {
                eligible_at: Some(at),
                ..
            }) => {
                let secs = (*at - now).num_seconds().max(1);
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
                if let Ok(v) =
                    HeaderValue::from_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                {
                    h.insert("x-batlehub-eligible-at", v);
                }
            }
            Error::TooManyRequests {
                retry_after, limit, ..
            } => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
                h.insert("x-ratelimit-limit", HeaderValue::from(*limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("x-ratelimit-reset", HeaderValue::from(*retry_after));
            }
            Error::Unavailable(_) => {
                h.insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(Self::UNAVAILABLE_RETRY_AFTER),
                );
            }
            _ => {}
        }
        if let Error::Denied(d) = self
            && let Ok(v) = HeaderValue::from_str(&d.rule)
        {
            h.insert("x-batlehub-rule", v);
        }
        h
    }
}
