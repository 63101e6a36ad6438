//! OIDC bearer JWTs: discovery, a rate-limited JWKS cache, and verification with pinned
//! algorithms, checked against the injected clock.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use batlehub_core::{Clock, Principal, Role};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::RwLock;
use serde_json::Value;
use url::Url;

use crate::Error;
use crate::credentials::Credentials;
use crate::jwt::{Object, UnverifiedJwt, claim_list, claim_text, numeric_date};
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced};

/// Configuration of an [`OidcProvider`].
///
/// Build it with struct update syntax over [`Default`]; `issuer`, `audiences` and
/// `algorithms` have no usable default and are checked by [`OidcProvider::new`].
///
/// ```
/// use batlehub_auth::{Algorithm, OidcConfig};
///
/// let config = OidcConfig {
///     issuer: "https://login.example.com/realms/dev".into(),
///     audiences: vec!["batlehub".into()],
///     algorithms: vec![Algorithm::RS256],
///     admin_groups: vec!["platform-admins".into()],
///     ..OidcConfig::default()
/// };
/// assert_eq!(config.name, "oidc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The provider's name: [`Principal::provider`] and the group namespace (`oidc`).
    pub name: String,
    /// The issuer, compared exactly with the `iss` claim; discovery reads
    /// `{issuer}/.well-known/openid-configuration`. A JWT whose `iss` differs is left to the
    /// next provider, so several issuers can coexist.
    pub issuer: String,
    /// Accepted audiences: the token's `aud` must contain at least one. Required.
    pub audiences: Vec<String>,
    /// Accepted signature algorithms, pinned here and never taken from the token: a token
    /// whose header names another algorithm is refused before any key is looked up.
    /// Required. `HS*` are only usable with symmetric (`oct`) keys published in the JWKS,
    /// never with a public key.
    pub algorithms: Vec<Algorithm>,
    /// The claim holding the caller's groups (`groups`); a dotted name such as
    /// `realm_access.roles` walks nested objects when no claim has that exact name.
    pub groups_claim: String,
    /// The claim naming the principal (`sub`).
    pub principal_claim: String,
    /// The role of authenticated callers (`User`).
    pub role: Role,
    /// Groups (as the IdP names them, not namespaced) whose members get [`Role::Admin`].
    pub admin_groups: Vec<String>,
    /// The least time between two JWKS fetches triggered by unknown key ids (60 s).
    pub jwks_refresh_min_interval: Duration,
    /// A PEM CA bundle trusted besides the built-in roots, for a private IdP.
    pub ca_cert_path: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (30).
    pub leeway_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            name: "oidc".into(),
            issuer: String::new(),
            audiences: Vec::new(),
            algorithms: Vec::new(),
            groups_claim: "groups".into(),
            principal_claim: "sub".into(),
            role: Role::User,
            admin_groups: Vec::new(),
            jwks_refresh_min_interval: Duration::from_secs(60),
            ca_cert_path: None,
            leeway_secs: 30,
        }
    }
}

/// What every JWT provider needs to verify a token.
#[derive(Debug, Clone)]
pub(crate) struct JwtSettings {
    pub(crate) name: String,
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) jwks_refresh_min_interval: Duration,
    pub(crate) ca_cert_path: Option<PathBuf>,
    pub(crate) leeway_secs: u64,
}

/// Checks a provider name: it becomes the group namespace, so no `:` or blanks.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(Error::Config {
            provider: name.to_owned(),
            reason: "name must be non-empty, without `:` or spaces".into(),
        });
    }
    Ok(())
}

/// A verification outcome before the provider maps claims to a principal.
#[derive(Debug)]
pub(crate) enum Check {
    NotMine,
    Invalid(String),
    Verified(Object),
}

/// A signing key from a JWKS document.
#[derive(Clone)]
pub(crate) struct CachedKey {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct KeyState {
    jwks_uri: Option<Url>,
    keys: Arc<[CachedKey]>,
    loaded: bool,
    last_attempt: Option<DateTime<Utc>>,
}

/// The keys that may have signed a token.
pub(crate) enum Lookup {
    Found(Vec<CachedKey>),
    Missing,
    Invalid(String),
}

/// The keys of `keys` that may have signed `jwt` with `alg`: those named by its `kid`
/// (or, without a `kid`, every key) whose type fits the algorithm.
pub(crate) fn select_keys(keys: &[CachedKey], jwt: &UnverifiedJwt<'_>, alg: Algorithm) -> Lookup {
    let kid = jwt.header.get("kid").and_then(Value::as_str);
    let usable = |k: &CachedKey| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
    match kid {
        Some(kid) => {
            let named: Vec<&CachedKey> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if named.is_empty() {
                return Lookup::Missing;
            }
            let found: Vec<CachedKey> = named.into_iter().filter(|k| usable(k)).cloned().collect();
            if found.is_empty() {
                Lookup::Invalid("signing key does not match the token algorithm".into())
            } else {
                Lookup::Found(found)
            }
        }
        None => {
            let found: Vec<CachedKey> = keys.iter().filter(|k| usable(k)).cloned().collect();
            if found.is_empty() {
                Lookup::Missing
            } else {
                Lookup::Found(found)
            }
        }
    }
}

/// Whether one of `keys` verifies `jwt`'s signature with `alg`.
pub(crate) fn signature_ok(jwt: &UnverifiedJwt<'_>, alg: Algorithm, keys: &[CachedKey]) -> bool {
    let Some(signature) = jwt.signature_bytes() else {
        return false;
    };
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    keys.iter().any(|k| {
        (provider.verifier_factory)(&alg, &k.key)
            .is_ok_and(|v| v.verify(jwt.message.as_bytes(), &signature).is_ok())
    })
}

/// The verifier shared by [`OidcProvider`] and the CI workload provider.
pub(crate) struct JwtCore {
    settings: JwtSettings,
    discovery_url: Url,
    https_only: bool,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    min_refresh: TimeDelta,
    leeway: i64,
    state: RwLock<KeyState>,
    refresh: tokio::sync::Mutex<()>,
}

impl fmt::Debug for JwtCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.read();
        f.debug_struct("JwtCore")
            .field("name", &self.settings.name)
            .field("issuer", &self.settings.issuer)
            .field("keys", &state.keys.len())
            .finish_non_exhaustive()
    }
}

impl JwtCore {
    pub(crate) fn new(settings: JwtSettings, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let name = settings.name.clone();
        let bad = |reason: String| Error::Config {
            provider: name.clone(),
            reason,
        };
        check_name(&settings.name)?;
        let issuer = Url::parse(&settings.issuer)
            .map_err(|e| bad(format!("issuer `{}`: {e}", settings.issuer)))?;
        if !matches!(issuer.scheme(), "http" | "https") || issuer.host().is_none() {
            return Err(bad(format!(
                "issuer `{}` must be an http(s) URL with a host",
                settings.issuer
            )));
        }
        if settings.audiences.is_empty() || settings.audiences.iter().any(String::is_empty) {
            return Err(bad(
                "audiences must list at least one non-empty audience".into()
            ));
        }
        if settings.algorithms.is_empty() {
            return Err(bad("algorithms must list the accepted algorithms".into()));
        }
        let discovery_url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            settings.issuer.trim_end_matches('/')
        ))
        .map_err(|e| bad(format!("discovery URL: {e}")))?;
        let client = crate::http::client(settings.ca_cert_path.as_deref()).map_err(bad)?;
        let min_refresh =
            TimeDelta::from_std(settings.jwks_refresh_min_interval).unwrap_or(TimeDelta::MAX);
        let leeway = i64::try_from(settings.leeway_secs).unwrap_or(i64::MAX / 2);
        Ok(Self {
            https_only: issuer.scheme() == "https",
            settings,
            discovery_url,
            client,
            clock,
            min_refresh,
            leeway,
            state: RwLock::new(KeyState::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The token, when it is a JWT of this issuer whose header is acceptable.
    fn claim<'a>(&self, token: &'a str) -> Result<(UnverifiedJwt<'a>, Algorithm), Check> {
        let Some(jwt) = UnverifiedJwt::parse(token) else {
            return Err(Check::NotMine);
        };
        if jwt.issuer() != Some(self.settings.issuer.as_str()) {
            return Err(Check::NotMine);
        }
        if jwt.header.contains_key("crit") {
            return Err(Check::Invalid(
                "token has critical header parameters".into(),
            ));
        }
        let Some(name) = jwt.header.get("alg").and_then(Value::as_str) else {
            return Err(Check::Invalid("token header names no algorithm".into()));
        };
        let alg = jsonwebtoken::Algorithm::from_str(name)
            .ok()
            .filter(|a| self.settings.algorithms.contains(a))
            .ok_or_else(|| Check::Invalid(format!("token algorithm `{name}` is not accepted")))?;
        Ok((jwt, alg))
    }

    fn refresh_allowed(&self, now: DateTime<Utc>) -> bool {
        self.state
            .read()
            .last_attempt
            .is_none_or(|t| now < t || now - t >= self.min_refresh)
    }

    fn lookup(&self, jwt: &UnverifiedJwt<'_>, alg: Algorithm) -> Lookup {
        let state = self.state.read();
        if !state.loaded {
            return Lookup::Missing;
        }
        select_keys(&state.keys, jwt, alg)
    }

    /// Verifies with the cached keys; `None` when the key is unknown and a JWKS fetch is
    /// allowed or already under way.
    pub(crate) fn check_cached(&self, token: &str) -> Option<Check> {
        self.check_with_keys(token, true)
    }

    fn check_with_keys(&self, token: &str, may_wait: bool) -> Option<Check> {
        let (jwt, alg) = match self.claim(token) {
            Ok(v) => v,
            Err(check) => return Some(check),
        };
        match self.lookup(&jwt, alg) {
            Lookup::Found(keys) => Some(self.verify(&jwt, alg, &keys)),
            Lookup::Invalid(reason) => Some(Check::Invalid(reason)),
            Lookup::Missing
                if may_wait
                    && (self.refresh.try_lock().is_err()
                        || self.refresh_allowed(self.clock.now())) =>
            {
                None
            }
            Lookup::Missing => Some(Check::Invalid("unknown signing key".into())),
        }
    }

    /// Verifies, fetching the JWKS first when the key is unknown (rate-limited; a caller
    /// arriving during a fetch waits for it).
    pub(crate) async fn check(&self, token: &str) -> Check {
        if let Some(check) = self.check_with_keys(token, true) {
            return check;
        }
        self.refresh_limited().await;
        self.check_with_keys(token, false)
            .unwrap_or_else(|| Check::Invalid("unknown signing key".into()))
    }

    fn verify(&self, jwt: &UnverifiedJwt<'_>, alg: Algorithm, keys: &[CachedKey]) -> Check {
        if jwt.signature_bytes().is_none() {
            return Check::Invalid("token signature is not base64url".into());
        }
        if !signature_ok(jwt, alg, keys) {
            return Check::Invalid("invalid token signature".into());
        }
        match self.validate_claims(&jwt.claims) {
            Ok(()) => Check::Verified(jwt.claims.clone()),
            Err(reason) => Check::Invalid(reason),
        }
    }

    fn validate_claims(&self, claims: &Object) -> Result<(), String> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err("token issuer is not accepted".into());
        }
        let aud = claim_list(claims, "aud");
        if !aud.iter().any(|a| self.settings.audiences.contains(a)) {
            return Err("token audience is not accepted".into());
        }
        let now = self.clock.now().timestamp();
        let exp = numeric_date(claims, "exp")?.ok_or("token has no expiry (`exp`)")?;
        if now > exp.saturating_add(self.leeway) {
            return Err("token expired".into());
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && now.saturating_add(self.leeway) < nbf
        {
            return Err("token not yet valid".into());
        }
        Ok(())
    }

    /// Fetches the keys unless a fetch happened within the minimum interval; concurrent
    /// callers wait for one fetch.
    async fn refresh_limited(&self) {
        let _one = self.refresh.lock().await;
        if !self.refresh_allowed(self.clock.now()) {
            return;
        }
        if let Err(e) = self.fetch_keys().await {
            tracing::warn!(provider = %self.settings.name, error = %e, "JWKS refresh failed");
        }
    }

    /// Fetches discovery (once) and the JWKS now, regardless of the rate limit.
    pub(crate) async fn refresh_now(&self) -> Result<(), Error> {
        let _one = self.refresh.lock().await;
        self.fetch_keys().await.map_err(|reason| Error::Discovery {
            provider: self.settings.name.clone(),
            reason,
        })
    }

    async fn fetch_keys(&self) -> Result<(), String> {
        self.state.write().last_attempt = Some(self.clock.now());
        let cached_uri = self.state.read().jwks_uri.clone();
        let jwks_uri = match cached_uri {
            Some(uri) => uri,
            None => self.discover().await?,
        };
        let resp = self
            .client
            .get(jwks_uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching JWKS {jwks_uri}: {e}"))?;
        let doc: Value = crate::http::read_json(resp)
            .await
            .map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
        let keys = parse_jwks(&doc).map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
        tracing::debug!(provider = %self.settings.name, keys = keys.len(), "JWKS loaded");
        let mut state = self.state.write();
        state.jwks_uri = Some(jwks_uri);
        state.keys = keys.into();
        state.loaded = true;
        Ok(())
    }

    async fn discover(&self) -> Result<Url, String> {
        let url = self.discovery_url.clone();
        let resp = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {e}"))?;
        let doc: Value = crate::http::read_json(resp)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if let Some(issuer) = doc.get("issuer").and_then(Value::as_str)
            && issuer != self.settings.issuer
        {
            return Err(format!(
                "{url}: discovery names issuer `{issuer}`, expected `{}`",
                self.settings.issuer
            ));
        }
        let raw = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{url}: no `jwks_uri`"))?;
        let jwks_uri = Url::parse(raw).map_err(|e| format!("{url}: jwks_uri `{raw}`: {e}"))?;
        let scheme_ok = match jwks_uri.scheme() {
            "https" => true,
            "http" => !self.https_only,
            _ => false,
        };
        if !scheme_ok || jwks_uri.host().is_none() {
            return Err(format!(
                "{url}: jwks_uri `{raw}` must be an {} URL with a host",
                if self.https_only { "https" } else { "http(s)" }
            ));
        }
        Ok(jwks_uri)
    }
}

/// The signing keys of a JWKS document; keys this crate cannot use are skipped.
pub(crate) fn parse_jwks(doc: &Value) -> Result<Vec<CachedKey>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no `keys` array")?;
    let mut out = Vec::new();
    for raw in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            tracing::debug!("skipping unreadable JWK");
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => match Algorithm::try_from(ka) {
                Ok(a) => Some(a),
                // An encryption or unknown algorithm: not a signing key for us.
                Err(_) => continue,
            },
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if alg.is_some_and(|a| a.family() != key.family()) {
            continue;
        }
        out.push(CachedKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(out)
}

/// OIDC bearer tokens (JWTs) from one issuer, a [`Provider`].
///
/// - **Mine?** A JWT whose unverified `iss` equals [`OidcConfig::issuer`] is this
///   provider's; any other token (another issuer, not a JWT) is [`Verdict::NotMine`].
/// - **Keys.** `{issuer}/.well-known/openid-configuration` names the `jwks_uri` (http(s);
///   https when the issuer is), whose keys are cached. A token naming an unknown `kid`
///   triggers one refetch, at most once per [`OidcConfig::jwks_refresh_min_interval`]
///   (concurrent refetches are coalesced); then it is refused as "unknown signing key".
/// - **Checks.** The header's `alg` must be one of [`OidcConfig::algorithms`] (checked
///   before any key is looked up; `none` never is), the key's type must match the
///   algorithm (so an `HS256` token "signed" with a public key fails), the signature must
///   verify, `iss` must equal the issuer, `aud` must contain a configured audience, and
///   `exp` (required) and `nbf` are checked with [`OidcConfig::leeway_secs`] against the
///   injected [`Clock`].
/// - **Principal.** The [`OidcConfig::principal_claim`] (`sub`) is the id; the
///   [`OidcConfig::groups_claim`] becomes groups namespaced `<name>:<group>`
///   (`oidc:team-a`); membership of an [`OidcConfig::admin_groups`] entry grants
///   [`Role::Admin`], otherwise [`OidcConfig::role`].
///
/// Verification with cached keys happens on the layer's fast path, without I/O.
#[derive(Clone)]
pub struct OidcProvider {
    core: Arc<JwtCore>,
    mapping: Arc<OidcMapping>,
}

#[derive(Debug)]
struct OidcMapping {
    groups_claim: String,
    principal_claim: String,
    role: Role,
    admin_groups: Vec<String>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("core", &self.core)
            .field("mapping", &self.mapping)
            .finish()
    }
}

impl OidcProvider {
    /// Checks `config` and builds the provider; keys are fetched at the first token (call
    /// [`OidcProvider::refresh_keys`] at start-up to fail early instead, or use
    /// [`OidcProvider::connect`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad name, issuer, empty audiences or algorithms, an
    /// anonymous role, empty claim names, or an unreadable CA bundle.
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        if config.role == Role::Anonymous {
            return Err(Error::Config {
                provider: config.name,
                reason: "role must be user or admin".into(),
            });
        }
        if config.groups_claim.is_empty() || config.principal_claim.is_empty() {
            return Err(Error::Config {
                provider: config.name,
                reason: "groups_claim and principal_claim must not be empty".into(),
            });
        }
        let core = JwtCore::new(
            JwtSettings {
                name: config.name,
                issuer: config.issuer,
                audiences: config.audiences,
                algorithms: config.algorithms,
                jwks_refresh_min_interval: config.jwks_refresh_min_interval,
                ca_cert_path: config.ca_cert_path,
                leeway_secs: config.leeway_secs,
            },
            clock,
        )?;
        Ok(Self {
            core: Arc::new(core),
            mapping: Arc::new(OidcMapping {
                groups_claim: config.groups_claim,
                principal_claim: config.principal_claim,
                role: config.role,
                admin_groups: config.admin_groups,
            }),
        })
    }

    /// Builds the provider and fetches discovery and keys now.
    ///
    /// # Errors
    /// As [`OidcProvider::new`], and [`Error::Discovery`] when discovery or the JWKS
    /// cannot be fetched or read.
    pub async fn connect(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let provider = Self::new(config, clock)?;
        provider.refresh_keys().await?;
        Ok(provider)
    }

    /// Fetches discovery (the first time) and the JWKS now, ignoring the rate limit.
    ///
    /// # Errors
    /// [`Error::Discovery`] naming what failed; cached keys are kept.
    pub async fn refresh_keys(&self) -> Result<(), Error> {
        self.core.refresh_now().await
    }

    /// The configured issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.core.settings().issuer
    }

    fn verdict(&self, check: Check) -> Verdict {
        let claims = match check {
            Check::NotMine => return Verdict::NotMine,
            Check::Invalid(reason) => return Verdict::Invalid(reason),
            Check::Verified(claims) => claims,
        };
        let m = &self.mapping;
        let Some(id) = claim_text(&claims, &m.principal_claim).filter(|s| !s.is_empty()) else {
            return Verdict::Invalid(format!("token lacks the `{}` claim", m.principal_claim));
        };
        let raw = claim_list(&claims, &m.groups_claim);
        let role = if raw.iter().any(|g| m.admin_groups.contains(g)) {
            Role::Admin
        } else {
            m.role
        };
        let name = &self.core.settings().name;
        Verdict::Mine(Principal {
            id,
            role,
            groups: raw.iter().map(|g| namespaced(name, g)).collect(),
            provider: name.clone(),
        })
    }
}

impl Provider for OidcProvider {
    fn name(&self) -> &str {
        &self.core.settings().name
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        self.core
            .check_cached(&credentials.token)
            .map(|c| self.verdict(c))
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        let this = self.clone();
        Box::pin(async move {
            let check = this.core.check(&credentials.token).await;
            this.verdict(check)
        })
    }
}
