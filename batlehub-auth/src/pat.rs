//! Personal access tokens: `bhp_<id>_<secret>`, stored hashed in the index.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use batlehub_core::model::TokenRecord;
use batlehub_core::{Clock, Index, Principal, Role};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::credentials::Credentials;
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced_configured};

/// The prefix of every personal access token.
pub const PAT_PREFIX: &str = "bhp_";
/// The length of a token id (lowercase letters and digits).
const ID_LEN: usize = 12;
/// The shortest secret: 32 random bytes in unpadded base64url.
const MIN_SECRET_LEN: usize = 43;
/// The longest secret accepted, so a huge header is refused before hashing.
const MAX_SECRET_LEN: usize = 256;
/// The provider name of personal access tokens, and their group namespace.
const NAME: &str = "pat";
/// The most verified tokens remembered; the cache is cleared when full.
const CACHE_CAPACITY: usize = 10_000;
/// The default bound on how long a verified token is trusted without a look-up.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// The future returned by [`TokenStore::token_by_id`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = batlehub_core::Result<Option<TokenRecord>>> + Send + 'a>>;

/// Where personal access tokens are looked up: the one [`Index`] method the
/// [`PatProvider`] needs.
///
/// Every [`Index`] (including `dyn Index`) is a `TokenStore`; tests implement it over a
/// `HashMap`.
pub trait TokenStore: Send + Sync + fmt::Debug + 'static {
    /// The token with this id (revoked and expired ones included).
    fn token_by_id<'a>(&'a self, id: &'a str) -> TokenFuture<'a>;

    /// A counter that changes whenever a token may have been revoked
    /// ([`Index::tokens_generation`]); a verification cached under another value is looked
    /// up again. The default never changes.
    fn generation(&self) -> u64 {
        0
    }
}

impl<T: Index + ?Sized> TokenStore for T {
    fn token_by_id<'a>(&'a self, id: &'a str) -> TokenFuture<'a> {
        Index::token(self, id)
    }

    fn generation(&self) -> u64 {
        Index::tokens_generation(self)
    }
}

/// An `Arc<S>` seen as a `TokenStore`, so `Arc<dyn Index>` can be handed over as it is.
struct Shared<S: ?Sized>(Arc<S>);

impl<S: ?Sized + fmt::Debug> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: TokenStore + ?Sized> TokenStore for Shared<S> {
    fn token_by_id<'a>(&'a self, id: &'a str) -> TokenFuture<'a> {
        self.0.token_by_id(id)
    }

    fn generation(&self) -> u64 {
        self.0.generation()
    }
}

#[derive(Clone)]
struct Cached {
    id: String,
    principal: Principal,
    cached_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// The store's [`TokenStore::generation`] before the look-up.
    generation: u64,
}

/// Personal access tokens, a [`Provider`] named `pat`.
///
/// A token reads `bhp_<id>_<secret>`: `id` is 12 lowercase letters and digits, `secret`
/// 32 random bytes in unpadded base64url (43 characters). The index stores a
/// [`TokenRecord`] with the lowercase hex sha256 of the secret's text, never the secret.
///
/// - a token without the `bhp_` prefix is [`Verdict::NotMine`]; a malformed one, an
///   unknown id or a wrong secret is invalid, as are revoked and expired tokens (checked
///   against the injected [`Clock`]);
/// - the principal is the record's `principal` with its role, `provider = "pat"` and
///   groups namespaced `pat:<group>`;
/// - verified tokens are cached (keyed by the sha256 of the whole token) for at most
///   [`PatProvider::cache_ttl`] (30 s by default) and while the store's
///   [`TokenStore::generation`] is unchanged (a revocation through the index, or announced by
///   another replica, changes it), so a revocation takes effect at once, at worst within that
///   bound on every replica; [`PatProvider::forget`] and [`PatProvider::invalidate_all`]
///   drop cache entries at once (the admin API calls them on revoke).
///
/// Clones share the cache.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use batlehub_auth::{PatProvider, new_personal_token};
/// use batlehub_core::{Role, SystemClock};
///
/// # fn index() -> Arc<dyn batlehub_core::Index> { unimplemented!() }
/// # fn demo() {
/// let now = chrono::Utc::now();
/// let (token, record) =
///     new_personal_token("alice", Role::User, vec![], None, None, "admin", now);
/// assert!(token.starts_with("bhp_"));
/// // index().create_token(&record).await?;
/// let pats = PatProvider::new(index(), Arc::new(SystemClock));
/// # }
/// ```
#[derive(Clone)]
pub struct PatProvider {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    cache_ttl: chrono::TimeDelta,
    cache: Arc<Mutex<HashMap<[u8; 32], Cached>>>,
}

impl fmt::Debug for PatProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatProvider")
            .field("store", &self.store)
            .field("cache_ttl", &self.cache_ttl)
            .field("cached", &self.cache.lock().len())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Splits a token into id and secret: `Ok(None)` when it is not a personal access token.
fn parse(token: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(rest) = token.strip_prefix(PAT_PREFIX) else {
        return Ok(None);
    };
    let malformed = || "malformed personal access token".to_owned();
    let id = rest.get(..ID_LEN).ok_or_else(malformed)?;
    let secret = rest
        .get(ID_LEN..)
        .and_then(|s| s.strip_prefix('_'))
        .ok_or_else(malformed)?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let secret_ok = (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id_ok && secret_ok {
        Ok(Some((id, secret)))
    } else {
        Err(malformed())
    }
}

fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl PatProvider {
    /// A provider reading tokens from `store` (an `Arc<dyn Index>`, or any
    /// [`TokenStore`]), judging expiry with `clock`.
    pub fn new<S: TokenStore + ?Sized>(store: Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(Shared(store)),
            clock,
            cache_ttl: chrono::TimeDelta::from_std(DEFAULT_CACHE_TTL)
                .unwrap_or(chrono::TimeDelta::zero()),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Sets how long a verified token is trusted without a look-up (30 s by default; zero
    /// disables the cache). This bounds how long a revoked token keeps working on a replica
    /// that did not see the revocation.
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::MAX);
        self
    }

    /// Mints a token; see [`new_personal_token`].
    #[must_use]
    pub fn mint(
        principal: &str,
        role: Role,
        groups: Vec<String>,
        description: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> (String, TokenRecord) {
        new_personal_token(
            principal,
            role,
            groups,
            description,
            expires_at,
            created_by,
            now,
        )
    }

    /// Drops the cached verifications of token `id` (call it when revoking).
    pub fn forget(&self, id: &str) {
        self.cache.lock().retain(|_, c| c.id != id);
    }

    /// Drops every cached verification.
    pub fn invalidate_all(&self) {
        self.cache.lock().clear();
    }

    fn cached(&self, d: &[u8; 32]) -> Option<Verdict> {
        let now = self.clock.now();
        let mut cache = self.cache.lock();
        let hit = cache.get(d)?;
        let fresh = now - hit.cached_at < self.cache_ttl
            && now >= hit.cached_at
            && hit.generation == self.store.generation();
        let live = hit.expires_at.is_none_or(|e| now < e);
        if fresh && live {
            Some(Verdict::Mine(hit.principal.clone()))
        } else {
            cache.remove(d);
            None
        }
    }

    fn remember(&self, d: [u8; 32], entry: Cached) {
        if self.cache_ttl <= chrono::TimeDelta::zero() {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(d, entry);
    }

    /// Checks a looked-up record against the presented secret and the clock.
    fn judge(&self, id: &str, secret: &str, record: Option<TokenRecord>) -> Result<Cached, String> {
        let invalid = || "invalid personal access token".to_owned();
        let record = record.ok_or_else(invalid)?;
        let presented = secret_sha256(secret);
        let stored = record.secret_sha256.to_ascii_lowercase();
        let same = presented.as_bytes().ct_eq(stored.as_bytes());
        if !bool::from(same) || record.id != id {
            return Err(invalid());
        }
        if record.revoked_at.is_some() {
            return Err("token revoked".to_owned());
        }
        let now = self.clock.now();
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err("token expired".to_owned());
        }
        Ok(Cached {
            id: record.id,
            principal: Principal {
                id: record.principal,
                role: record.role,
                groups: record
                    .groups
                    .iter()
                    .map(|g| namespaced_configured(NAME, g))
                    .collect(),
                provider: NAME.to_owned(),
            },
            cached_at: now,
            expires_at: record.expires_at,
            generation: 0,
        })
    }
}

impl Provider for PatProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        match parse(&credentials.token) {
            Ok(None) => Some(Verdict::NotMine),
            Err(reason) => Some(Verdict::Invalid(reason)),
            Ok(Some(_)) => self.cached(&digest(&credentials.token)),
        }
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        if let Some(verdict) = self.identify_cached(&credentials) {
            return Box::pin(async move { verdict });
        }
        let this = self.clone();
        Box::pin(async move {
            let Ok(Some((id, secret))) = parse(&credentials.token) else {
                return Verdict::Invalid("malformed personal access token".to_owned());
            };
            // Read before the look-up: a revocation racing it changes the generation after,
            // so the verification cached here is not trusted past it.
            let generation = this.store.generation();
            let record = match this.store.token_by_id(id).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "personal access token look-up failed");
                    return Verdict::Invalid("token store unavailable".to_owned());
                }
            };
            match this.judge(id, secret, record) {
                Ok(mut entry) => {
                    entry.generation = generation;
                    let principal = entry.principal.clone();
                    this.remember(digest(&credentials.token), entry);
                    Verdict::Mine(principal)
                }
                Err(reason) => Verdict::Invalid(reason),
            }
        })
    }
}

/// Mints a personal access token: returns the token string (shown once, never stored) and
/// the [`TokenRecord`] to store with [`Index::create_token`].
///
/// The id is 12 random lowercase letters and digits, the secret 32 random bytes in
/// unpadded base64url; the record keeps the lowercase hex sha256 of the secret's text.
/// `groups` are stored as given and presented namespaced as `pat:<group>`.
#[must_use]
pub fn new_personal_token(
    principal: &str,
    role: Role,
    groups: Vec<String>,
    description: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_by: &str,
    now: DateTime<Utc>,
) -> (String, TokenRecord) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let token = format!("{PAT_PREFIX}{id}_{secret}");
    let record = TokenRecord {
        id,
        principal: principal.to_owned(),
        secret_sha256: secret_sha256(&secret),
        role,
        groups,
        description,
        created_at: now,
        expires_at,
        revoked_at: None,
        created_by: created_by.to_owned(),
    };
    (token, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse() {
        let now = Utc::now();
        let (token, record) =
            new_personal_token("alice", Role::User, vec![], None, None, "root", now);
        let (id, secret) = parse(&token).expect("ok").expect("mine");
        assert_eq!(id, record.id);
        assert_eq!(id.len(), 12);
        assert_eq!(secret.len(), 43);
        assert_eq!(secret_sha256(secret), record.secret_sha256);
        assert_eq!(parse("npm_abc"), Ok(None));
        assert!(parse("bhp_short").is_err());
        assert!(parse(&format!("bhp_ABCDEFGHIJKL_{secret}")).is_err());
        assert!(parse(&format!("bhp_{id}_short")).is_err());
        assert!(parse(&format!("bhp_{id}-{secret}")).is_err());
    }
}
