//! Kubernetes service-account tokens: signature checked against the cluster's JWKS, then
//! verified by the API server's TokenReview.

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
use crate::jwt::{UnverifiedJwt, claim_list, numeric_date};
use crate::oidc::{CachedKey, Lookup, check_name, parse_jwks, select_keys, signature_ok};
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced};
use jsonwebtoken::Algorithm;

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
    /// Audiences the presented token must be valid for (its `aud` must name one; sent as
    /// `spec.audiences` and checked in `status.audiences`). Required: a token minted for
    /// the API server or another service must not be accepted here.
    pub audiences: Vec<String>,
    /// Check each token's signature against the cluster's signing keys
    /// (`{api_url}/openid/v1/jwks`, fetched with the reviewer token) before asking for a
    /// TokenReview, so a forged token costs a signature check, not an API call (`true`).
    /// When the keys cannot be fetched, tokens are reviewed without the check (logged).
    pub verify_signatures: bool,
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
            .field("verify_signatures", &self.verify_signatures)
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
            verify_signatures: true,
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
///   token is [`Verdict::NotMine`].
/// - **Cheap checks first.** Without `exp`, with `exp` past, with an `aud` that names none
///   of [`KubernetesConfig::audiences`], or with a symmetric or unknown algorithm, a token
///   is refused without any request. Then its signature is checked against the cluster's
///   keys ([`KubernetesConfig::verify_signatures`]; the JWKS is fetched once and again at
///   most once a minute when a token names an unknown key): a forged token never reaches
///   the API server. At most 8 reviews run at once.
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
    /// The cluster's JWKS (`None` before it could be fetched, or with checks off).
    jwks_url: Option<Url>,
    keys: Mutex<Option<Arc<[CachedKey]>>>,
    keys_fetched: Mutex<Option<DateTime<Utc>>>,
    refresh: tokio::sync::Mutex<()>,
    reviews: tokio::sync::Semaphore,
}

/// The most TokenReviews in flight at once.
const MAX_REVIEWS: usize = 8;
/// The shortest interval between two JWKS fetches.
const JWKS_REFRESH_SECS: i64 = 60;
/// Algorithms a service-account token may be signed with (never symmetric, never `none`).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What the signature check found.
enum Signature {
    Valid,
    Invalid(String),
    /// The keys could not be fetched: only the review can tell.
    Unknown,
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
        if config.audiences.is_empty() || config.audiences.iter().any(String::is_empty) {
            return Err(bad(
                "audiences must list at least one audience (the one your pods request their projected tokens for): a token minted for the API server or another service must not be accepted".into(),
            ));
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
        let jwks_url = config
            .verify_signatures
            .then(|| {
                Url::parse(&format!(
                    "{}/openid/v1/jwks",
                    config.api_url.trim_end_matches('/')
                ))
            })
            .transpose()
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
                jwks_url,
                keys: Mutex::new(None),
                keys_fetched: Mutex::new(None),
                refresh: tokio::sync::Mutex::new(()),
                reviews: tokio::sync::Semaphore::new(MAX_REVIEWS),
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

/// The checks that need no key and no request: expiry present, an accepted audience, an
/// asymmetric algorithm. `Ok` with the algorithm.
fn precheck(inner: &Inner, jwt: &UnverifiedJwt<'_>) -> Result<Algorithm, String> {
    let exp = numeric_date(&jwt.claims, "exp")?.ok_or("token has no expiry (`exp`)")?;
    if exp <= inner.clock.now().timestamp() {
        return Err("token expired".into());
    }
    let aud = claim_list(&jwt.claims, "aud");
    if !aud.iter().any(|a| inner.audiences.contains(a)) {
        return Err("token audience is not accepted".into());
    }
    jwt.header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .and_then(|a| a.parse::<Algorithm>().ok())
        .filter(|a| ASYMMETRIC.contains(a))
        .ok_or_else(|| "token algorithm is not accepted".to_owned())
}

impl Inner {
    /// Checks the signature with the cluster's keys, fetching them when none are known or
    /// the token names an unknown key (at most once a minute).
    async fn signature(&self, jwt: &UnverifiedJwt<'_>, alg: Algorithm) -> Signature {
        let Some(url) = &self.jwks_url else {
            return Signature::Unknown;
        };
        for attempt in 0..2 {
            let keys = self.keys.lock().clone();
            if let Some(keys) = &keys {
                match select_keys(keys, jwt, alg) {
                    Lookup::Found(found) => {
                        return if signature_ok(jwt, alg, &found) {
                            Signature::Valid
                        } else {
                            Signature::Invalid("invalid token signature".into())
                        };
                    }
                    Lookup::Invalid(reason) => return Signature::Invalid(reason),
                    Lookup::Missing if attempt == 1 => {
                        return Signature::Invalid("unknown signing key".into());
                    }
                    Lookup::Missing => {}
                }
            }
            if attempt == 0 {
                self.refresh_keys(url).await;
            }
        }
        if self.keys.lock().is_some() {
            Signature::Invalid("unknown signing key".into())
        } else {
            Signature::Unknown
        }
    }

    async fn refresh_keys(&self, url: &Url) {
        let _one = self.refresh.lock().await;
        let now = self.clock.now();
        let recent = self
            .keys_fetched
            .lock()
            .is_some_and(|t| now >= t && (now - t).num_seconds() < JWKS_REFRESH_SECS);
        if recent {
            return;
        }
        *self.keys_fetched.lock() = Some(now);
        match self.fetch_keys(url).await {
            Ok(keys) => *self.keys.lock() = Some(keys.into()),
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "cluster JWKS unavailable; tokens are reviewed without a signature check")
            }
        }
    }

    async fn fetch_keys(&self, url: &Url) -> Result<Vec<CachedKey>, String> {
        let reviewer = self.reviewer_token().await?;
        let mut auth = http::HeaderValue::from_str(&format!("Bearer {reviewer}"))
            .map_err(|_| "reviewer token is not valid in a header".to_owned())?;
        auth.set_sensitive(true);
        let resp = self
            .client
            .get(url.clone())
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("JWKS request: {e}"))?;
        let doc: serde_json::Value = crate::http::read_json(resp)
            .await
            .map_err(|e| format!("JWKS {url}: {e}"))?;
        parse_jwks(&doc).map_err(|e| format!("JWKS {url}: {e}"))
    }

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
            let Some(jwt) = UnverifiedJwt::parse(&token) else {
                return Verdict::NotMine;
            };
            let refused = match precheck(&inner, &jwt) {
                Err(reason) => Some(reason),
                Ok(alg) => match inner.signature(&jwt, alg).await {
                    Signature::Invalid(reason) => Some(reason),
                    Signature::Valid | Signature::Unknown => None,
                },
            };
            if let Some(reason) = refused {
                let verdict = Verdict::Invalid(reason);
                inner.remember(digest(&token), verdict.clone(), exp);
                return verdict;
            }
            let _permit = inner.reviews.acquire().await;
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
