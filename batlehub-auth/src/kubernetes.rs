//! Kubernetes service-account tokens, verified by the API server's TokenReview.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use batlehub_core::{Clock, Principal, Role};
use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::Error;
use crate::credentials::Credentials;
use crate::jwt::{UnverifiedJwt, numeric_date};
use crate::oidc::check_name;
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced};

/// Where the provider finds the token it presents to the API server.
#[derive(Clone, PartialEq, Eq)]
pub enum ReviewerToken {
    /// A file read on every review, so a rotated projected token is picked up
    /// (`/var/run/secrets/kubernetes.io/serviceaccount/token` in a pod).
    File(PathBuf),
    /// The token itself.
    Value(String),
}

impl fmt::Debug for ReviewerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewerToken::File(path) => f.debug_tuple("File").field(path).finish(),
            ReviewerToken::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

/// Configuration of a [`KubernetesProvider`].
///
/// ```
/// use batlehub_auth::KubernetesConfig;
///
/// let config = KubernetesConfig {
///     issuer: "https://kubernetes.default.svc.cluster.local".into(),
///     audiences: vec!["batlehub".into()],
///     ..KubernetesConfig::default()
/// };
/// assert_eq!(config.api_url, "https://kubernetes.default.svc");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The provider's name: [`Principal::provider`] and the group namespace
    /// (`kubernetes`).
    pub name: String,
    /// The cluster's service-account issuer (`--service-account-issuer`); a JWT whose
    /// unverified `iss` equals it is this provider's. Required.
    pub issuer: String,
    /// The API server (`https://kubernetes.default.svc`).
    pub api_url: String,
    /// The token batlehub authenticates to the API server with; it needs permission to
    /// create `tokenreviews` (the `system:auth-delegator` cluster role).
    pub reviewer_token: ReviewerToken,
    /// Audiences the presented token must be valid for (sent as `spec.audiences` and
    /// checked in `status.audiences`); empty means the API server's own.
    pub audiences: Vec<String>,
    /// The role of authenticated callers (`User`).
    pub role: Role,
    /// Groups (as Kubernetes names them, e.g. `system:serviceaccounts:ci`) whose members
    /// get [`Role::Admin`].
    pub admin_groups: Vec<String>,
    /// The longest a review result is cached, in seconds (300); never past the token's
    /// own `exp`.
    pub max_cache_secs: u64,
    /// The most review results cached (10 000).
    pub max_cache_entries: usize,
    /// The cluster CA bundle (`/var/run/secrets/kubernetes.io/serviceaccount/ca.crt` in a
    /// pod), trusted besides the built-in roots.
    pub ca_cert_path: Option<PathBuf>,
}

impl fmt::Debug for KubernetesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("api_url", &self.api_url)
            .field("reviewer_token", &self.reviewer_token)
            .field("audiences", &self.audiences)
            .field("role", &self.role)
            .field("admin_groups", &self.admin_groups)
            .field("max_cache_secs", &self.max_cache_secs)
            .field("max_cache_entries", &self.max_cache_entries)
            .field("ca_cert_path", &self.ca_cert_path)
            .finish()
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            name: "kubernetes".into(),
            issuer: String::new(),
            api_url: "https://kubernetes.default.svc".into(),
            reviewer_token: ReviewerToken::File(
                "/var/run/secrets/kubernetes.io/serviceaccount/token".into(),
            ),
            audiences: Vec::new(),
            role: Role::User,
            admin_groups: Vec::new(),
            max_cache_secs: 300,
            max_cache_entries: 10_000,
            ca_cert_path: None,
        }
    }
}

#[derive(Clone)]
struct Cached {
    verdict: Verdict,
    until: DateTime<Utc>,
}

/// Kubernetes service-account tokens, a [`Provider`] asking the API server
/// (`POST /apis/authentication.k8s.io/v1/tokenreviews`).
///
/// - **Mine?** A JWT whose unverified `iss` equals [`KubernetesConfig::issuer`]; any other
///   token is [`Verdict::NotMine`]. An unverified `exp` already past is refused without a
///   review.
/// - **Review.** `status.authenticated: true` gives a principal named
///   `status.user.username` (`system:serviceaccount:<ns>:<name>`) with groups namespaced
///   `<name>:<group>` (`kubernetes:system:serviceaccounts:ci`); membership of an
///   [`KubernetesConfig::admin_groups`] entry grants [`Role::Admin`]. Otherwise the token
///   is refused with `status.error`.
/// - **Cache.** Answers (positive and negative) are cached by the token's sha256 until the
///   token's `exp`, at most [`KubernetesConfig::max_cache_secs`], for at most
///   [`KubernetesConfig::max_cache_entries`] tokens. Failed reviews (API unreachable) are
///   not cached.
#[derive(Clone)]
pub struct KubernetesProvider {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    issuer: String,
    review_url: Url,
    reviewer_token: ReviewerToken,
    audiences: Vec<String>,
    role: Role,
    admin_groups: Vec<String>,
    max_cache: TimeDelta,
    max_entries: usize,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl fmt::Debug for KubernetesProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubernetesProvider")
            .field("name", &self.inner.name)
            .field("issuer", &self.inner.issuer)
            .field("review_url", &self.inner.review_url.as_str())
            .field("reviewer_token", &self.inner.reviewer_token)
            .field("cached", &self.inner.cache.lock().len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Review {
    #[serde(default)]
    status: ReviewStatus,
}

#[derive(Deserialize, Default)]
struct ReviewStatus {
    #[serde(default)]
    authenticated: bool,
    #[serde(default)]
    user: ReviewUser,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct ReviewUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

impl KubernetesProvider {
    /// Checks `config` and builds the provider.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad name, an empty issuer, an API URL that is not http(s),
    /// an anonymous role, an empty reviewer token value, or an unreadable CA bundle.
    pub fn new(config: KubernetesConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        check_name(&config.name)?;
        let bad = |reason: String| Error::Config {
            provider: config.name.clone(),
            reason,
        };
        if config.issuer.is_empty() {
            return Err(bad("issuer is required".into()));
        }
        if config.role == Role::Anonymous {
            return Err(bad("role must be user or admin".into()));
        }
        if matches!(&config.reviewer_token, ReviewerToken::Value(v) if v.trim().is_empty()) {
            return Err(bad("reviewer token must not be empty".into()));
        }
        let api = Url::parse(&config.api_url)
            .map_err(|e| bad(format!("api_url `{}`: {e}", config.api_url)))?;
        if !matches!(api.scheme(), "http" | "https") || api.host().is_none() {
            return Err(bad(format!(
                "api_url `{}` must be an http(s) URL with a host",
                config.api_url
            )));
        }
        let review_url = Url::parse(&format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            config.api_url.trim_end_matches('/')
        ))
        .map_err(|e| bad(format!("api_url: {e}")))?;
        let client = crate::http::client(config.ca_cert_path.as_deref()).map_err(&bad)?;
        let max_cache = i64::try_from(config.max_cache_secs)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .unwrap_or(TimeDelta::MAX);
        Ok(Self {
            inner: Arc::new(Inner {
                name: config.name,
                issuer: config.issuer,
                review_url,
                reviewer_token: config.reviewer_token,
                audiences: config.audiences,
                role: config.role,
                admin_groups: config.admin_groups,
                max_cache,
                max_entries: config.max_cache_entries,
                client,
                clock,
                cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Drops every cached review.
    pub fn invalidate_all(&self) {
        self.inner.cache.lock().clear();
    }
}

/// Whether the token is this cluster's: `Some(exp)` (the unverified expiry, if any).
fn ours(inner: &Inner, token: &str) -> Option<Option<i64>> {
    let jwt = UnverifiedJwt::parse(token)?;
    if jwt.issuer() != Some(inner.issuer.as_str()) {
        return None;
    }
    Some(numeric_date(&jwt.claims, "exp").ok().flatten())
}

impl Inner {
    fn cached(&self, d: &[u8; 32]) -> Option<Verdict> {
        let now = self.clock.now();
        let mut cache = self.cache.lock();
        let hit = cache.get(d)?;
        if now < hit.until {
            Some(hit.verdict.clone())
        } else {
            cache.remove(d);
            None
        }
    }

    fn remember(&self, d: [u8; 32], verdict: Verdict, exp: Option<i64>) {
        let now = self.clock.now();
        let cap = now
            .checked_add_signed(self.max_cache)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let until = exp
            .and_then(|e| DateTime::<Utc>::from_timestamp(e, 0))
            .map_or(cap, |e| e.min(cap));
        if until <= now || self.max_entries == 0 {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= self.max_entries {
            cache.retain(|_, c| now < c.until);
            if cache.len() >= self.max_entries {
                cache.clear();
            }
        }
        cache.insert(d, Cached { verdict, until });
    }

    async fn reviewer_token(&self) -> Result<String, String> {
        let token = match &self.reviewer_token {
            ReviewerToken::Value(v) => v.clone(),
            ReviewerToken::File(path) => {
                let path = path.clone();
                crate::tokens::tokio_blocking(move || {
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("reviewer token file `{}`: {e}", path.display()))
                })
                .await?
            }
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err("reviewer token is empty".into());
        }
        Ok(token)
    }

    async fn review(&self, token: &str) -> Result<Review, String> {
        let reviewer = self.reviewer_token().await?;
        let mut spec = serde_json::json!({ "token": token });
        if !self.audiences.is_empty() {
            spec["audiences"] = serde_json::json!(self.audiences);
        }
        let body = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": spec,
        });
        let body = serde_json::to_vec(&body).map_err(|e| format!("encoding review: {e}"))?;
        let mut auth = http::HeaderValue::from_str(&format!("Bearer {reviewer}"))
            .map_err(|_| "reviewer token is not valid in a header".to_owned())?;
        auth.set_sensitive(true);
        let resp = self
            .client
            .post(self.review_url.clone())
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("TokenReview request: {e}"))?;
        crate::http::read_json(resp)
            .await
            .map_err(|e| format!("TokenReview: {e}"))
    }

    fn verdict(&self, review: Review) -> Verdict {
        let status = review.status;
        if !status.authenticated {
            return Verdict::Invalid(
                status
                    .error
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "token not authenticated".into()),
            );
        }
        if !self.audiences.is_empty()
            && !status.audiences.iter().any(|a| self.audiences.contains(a))
        {
            return Verdict::Invalid("token audience is not accepted".into());
        }
        if status.user.username.is_empty() {
            return Verdict::Invalid("token review named no user".into());
        }
        let role = if status
            .user
            .groups
            .iter()
            .any(|g| self.admin_groups.contains(g))
        {
            Role::Admin
        } else {
            self.role
        };
        Verdict::Mine(Principal {
            id: status.user.username,
            role,
            groups: status
                .user
                .groups
                .iter()
                .map(|g| namespaced(&self.name, g))
                .collect(),
            provider: self.name.clone(),
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Provider for KubernetesProvider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        let Some(exp) = ours(&self.inner, &credentials.token) else {
            return Some(Verdict::NotMine);
        };
        if exp.is_some_and(|e| e <= self.inner.clock.now().timestamp()) {
            return Some(Verdict::Invalid("token expired".into()));
        }
        self.inner.cached(&digest(&credentials.token))
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        if let Some(verdict) = self.identify_cached(&credentials) {
            return Box::pin(async move { verdict });
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let token = credentials.token;
            let exp = ours(&inner, &token).flatten();
            match inner.review(&token).await {
                Ok(review) => {
                    let verdict = inner.verdict(review);
                    inner.remember(digest(&token), verdict.clone(), exp);
                    verdict
                }
                Err(e) => {
                    tracing::warn!(provider = %inner.name, error = %e, "token review failed");
                    Verdict::Invalid("token review unavailable".into())
                }
            }
        })
    }
}
