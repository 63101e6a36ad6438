//! Static tokens from configuration: plain values or argon2id hashes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use batlehub_core::{Principal, Role};
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::Error;
use crate::credentials::Credentials;
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced_configured};

/// The secret of a configured token.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSecret {
    /// The token itself (`value = "..."`).
    Plain(String),
    /// An argon2id PHC string (`hash = "$argon2id$..."`).
    Argon2(String),
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSecret::Plain(_) => f.write_str("Plain(<redacted>)"),
            TokenSecret::Argon2(_) => f.write_str("Argon2(<redacted>)"),
        }
    }
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// The principal id.
    pub name: String,
    /// The token or its hash.
    pub secret: TokenSecret,
    /// The role it grants.
    pub role: Role,
    /// Its groups, as written in the configuration; principals carry them namespaced as
    /// `static:<group>` (a group already written `static:<group>` is kept as it is).
    pub groups: Vec<String>,
    /// The token's public id (4 to 32 lowercase letters and digits) for tokens written
    /// `bhs_<id>_<secret>`: such a token is checked against this one entry only, so a wrong
    /// token costs at most one hash verification. `None` for tokens of any other form.
    pub id: Option<String>,
}

/// The prefix of static tokens that carry their entry's id (`bhs_<id>_<secret>`).
pub const STATIC_PREFIX: &str = "bhs_";

/// The most unknown tokens remembered; that cache is cleared when full (verified tokens
/// are kept apart and never evicted: there are at most as many as hashed entries).
const NEGATIVE_CAPACITY: usize = 10_000;

/// Hash verifications running at once: each argon2id run holds ~19 MiB and a core, so a
/// flood of unknown tokens waits here instead of exhausting memory and the blocking pool.
fn verify_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

struct Hashed {
    hash: String,
    id: Option<String>,
    principal: Principal,
}

struct Inner {
    plain: Vec<([u8; 32], Principal)>,
    hashed: Vec<Hashed>,
    /// sha256(token) -> verified principal.
    verified: Mutex<HashMap<[u8; 32], Principal>>,
    /// sha256(token) of tokens no hashed entry accepts.
    unknown: Mutex<std::collections::HashSet<[u8; 32]>>,
    permits: tokio::sync::Semaphore,
}

/// Static tokens, a [`Provider`] named `static`: plain values compared in constant time,
/// argon2id hashes verified once per distinct token and then cached (keyed by the token's
/// sha256, never the token itself).
///
/// A wrong token is kept cheap: a token written `bhs_<id>_<secret>` is checked against the
/// entry with that `id` only (an unknown id costs nothing); tokens shaped like another
/// provider's (`bhp_` personal access tokens, JWTs) are never checked against hashes;
/// other tokens are checked against the hashed entries without an `id`. At most a few
/// verifications run at once (the rest wait), and unknown tokens are remembered in a
/// bounded negative cache. Pair it with [`AuthLayer`](crate::AuthLayer)'s failed-authentication
/// limit, which stops a client that keeps failing before it reaches this path.
///
/// Used alone (`AuthLayer::new(tokens)`) it is a chain of one: an unknown token is
/// refused as `Identity::Invalid("unknown token")`.
#[derive(Clone)]
pub struct StaticTokens {
    inner: Arc<Inner>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field("plain", &self.inner.plain.len())
            .field("hashed", &self.inner.hashed.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl StaticTokens {
    /// Validates the entries: names unique and non-empty, hashes parse as argon2 PHC strings.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] naming the entry.
    pub fn new(tokens: Vec<TokenConfig>) -> Result<Self, Error> {
        let mut plain = Vec::new();
        let mut hashed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for (index, t) in tokens.into_iter().enumerate() {
            let bad = |reason: &str| Error::InvalidToken {
                index,
                name: t.name.clone(),
                reason: reason.to_owned(),
            };
            if t.name.trim().is_empty() {
                return Err(bad("name must not be empty"));
            }
            if !seen.insert(t.name.clone()) {
                return Err(bad("duplicate token name"));
            }
            if let Some(id) = &t.id {
                if !(4..=32).contains(&id.len())
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                {
                    return Err(bad("id must be 4 to 32 lowercase letters and digits"));
                }
                if !ids.insert(id.clone()) {
                    return Err(bad("duplicate token id"));
                }
            }
            let principal = Principal {
                id: t.name.clone(),
                role: t.role,
                groups: t
                    .groups
                    .iter()
                    .map(|g| namespaced_configured(NAME, g))
                    .collect(),
                provider: NAME.into(),
            };
            match &t.secret {
                TokenSecret::Plain(v) => {
                    if v.len() < 8 {
                        return Err(bad("value must be at least 8 characters"));
                    }
                    if let Some(id) = &t.id
                        && !v.starts_with(&format!("{STATIC_PREFIX}{id}_"))
                    {
                        return Err(bad(&format!(
                            "a token with id `{id}` must be written `{STATIC_PREFIX}{id}_<secret>`"
                        )));
                    }
                    plain.push((digest(v), principal));
                }
                TokenSecret::Argon2(h) => {
                    argon2::PasswordHash::new(h)
                        .map_err(|e| bad(&format!("hash is not a PHC string: {e}")))?;
                    if !h.starts_with("$argon2") {
                        return Err(bad("hash must be an argon2 PHC string ($argon2id$...)"));
                    }
                    hashed.push(Hashed {
                        hash: h.clone(),
                        id: t.id.clone(),
                        principal,
                    });
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                plain,
                hashed,
                verified: Mutex::new(HashMap::new()),
                unknown: Mutex::new(std::collections::HashSet::new()),
                permits: tokio::sync::Semaphore::new(verify_permits()),
            }),
        })
    }

    fn lookup_plain(&self, d: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        // Compare against every entry so timing does not depend on position.
        for (candidate, principal) in &self.inner.plain {
            if bool::from(candidate.ct_eq(d)) && found.is_none() {
                found = Some(principal.clone());
            }
        }
        found
    }

    /// The hashed entries a token may match: by its `bhs_<id>_` prefix, none for other
    /// providers' shapes, else the entries without an id.
    fn candidates<'a>(inner: &'a Inner, token: &'a str) -> impl Iterator<Item = &'a Hashed> {
        let wanted: Option<Option<&str>> = if let Some(rest) = token.strip_prefix(STATIC_PREFIX) {
            rest.split_once('_').map(|(id, _)| Some(id))
        } else if token.starts_with(crate::PAT_PREFIX) || looks_like_jwt(token) {
            None
        } else {
            Some(None)
        };
        inner
            .hashed
            .iter()
            .filter(move |h| wanted.is_some_and(|id| h.id.as_deref() == id))
    }

    fn verify_hashed(inner: &Inner, token: &str) -> Option<Principal> {
        let argon = Argon2::default();
        Self::candidates(inner, token)
            .find(|h| {
                argon
                    .verify_password(token.as_bytes(), h.hash.as_str())
                    .is_ok()
            })
            .map(|h| h.principal.clone())
    }

    fn remember(inner: &Inner, d: [u8; 32], p: Option<Principal>) {
        match p {
            Some(p) => {
                inner.verified.lock().insert(d, p);
            }
            None => {
                let mut unknown = inner.unknown.lock();
                if unknown.len() >= NEGATIVE_CAPACITY {
                    unknown.clear();
                }
                unknown.insert(d);
            }
        }
    }
}

/// Three dot-separated segments starting with a base64url JSON object: a JWT.
fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The provider name of static tokens, and their group namespace.
const NAME: &str = "static";

fn outcome(p: Option<Principal>) -> Verdict {
    match p {
        Some(p) => Verdict::Mine(p),
        None => Verdict::NotMine,
    }
}

/// Static tokens answer [`Verdict::Mine`] for a configured token and
/// [`Verdict::NotMine`] for any other (so the next provider is asked). Their principals
/// carry `provider = "static"` and groups namespaced `static:<group>`.
impl Provider for StaticTokens {
    fn name(&self) -> &str {
        NAME
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        let d = digest(&credentials.token);
        if let Some(p) = self.lookup_plain(&d) {
            return Some(Verdict::Mine(p));
        }
        if let Some(p) = self.inner.verified.lock().get(&d) {
            return Some(Verdict::Mine(p.clone()));
        }
        if Self::candidates(&self.inner, &credentials.token)
            .next()
            .is_none()
            || self.inner.unknown.lock().contains(&d)
        {
            return Some(Verdict::NotMine);
        }
        None
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        if let Some(verdict) = self.identify_cached(&credentials) {
            return Box::pin(async move { verdict });
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            let d = digest(&credentials.token);
            let token = credentials.token;
            let verified = {
                let _permit = inner.permits.acquire().await;
                let inner = inner.clone();
                tokio_blocking(move || Self::verify_hashed(&inner, &token)).await
            };
            Self::remember(&inner, d, verified.clone());
            outcome(verified)
        })
    }
}

/// Runs blocking work off the async worker threads when a tokio runtime is present.
pub(crate) async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        },
        Err(_) => f(),
    }
}

/// Hashes a token with argon2id (default parameters), for `[[auth.tokens]] hash = ...`.
///
/// # Errors
/// [`Error::Hash`] when the hasher fails.
pub fn hash_token(token: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(token.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Authenticator as _;
    use batlehub_core::Identity;

    fn cfg(name: &str, secret: TokenSecret) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            secret,
            role: Role::User,
            groups: vec![],
            id: None,
        }
    }

    #[tokio::test]
    async fn plain_and_hashed_resolve_and_cache() {
        let hash = hash_token("hashed-token-1").expect("hash");
        let tokens = StaticTokens::new(vec![
            cfg("alice", TokenSecret::Plain("plain-token-1".into())),
            cfg("bob", TokenSecret::Argon2(hash)),
        ])
        .expect("tokens");
        let c = |t: &str| Credentials {
            token: t.into(),
            username: None,
        };
        assert_eq!(
            tokens
                .authenticate_cached(&c("plain-token-1"))
                .expect("fast")
                .name(),
            "alice"
        );
        assert!(
            tokens.authenticate_cached(&c("hashed-token-1")).is_none(),
            "first use verifies"
        );
        assert_eq!(tokens.authenticate(c("hashed-token-1")).await.name(), "bob");
        assert_eq!(
            tokens
                .authenticate_cached(&c("hashed-token-1"))
                .expect("cached")
                .name(),
            "bob"
        );
        assert!(matches!(
            tokens.authenticate(c("wrong-token")).await,
            Identity::Invalid(_)
        ));
        assert!(matches!(
            tokens.authenticate_cached(&c("wrong-token")),
            Some(Identity::Invalid(_))
        ));
        // As a provider, a token it does not know is someone else's (negative-cached).
        assert_eq!(
            tokens.identify_cached(&c("wrong-token")),
            Some(Verdict::NotMine)
        );
        assert_eq!(tokens.identify(c("other-token")).await, Verdict::NotMine);
    }

    #[tokio::test]
    async fn wrong_tokens_are_cheap() {
        let hash = hash_token("bhs_ci01_0123456789abcdef").expect("hash");
        let legacy = hash_token("legacy-token-1").expect("hash");
        let tokens = StaticTokens::new(vec![
            TokenConfig {
                id: Some("ci01".into()),
                ..cfg("ci", TokenSecret::Argon2(hash))
            },
            cfg("old", TokenSecret::Argon2(legacy)),
        ])
        .expect("tokens");
        let c = |t: &str| Credentials {
            token: t.into(),
            username: None,
        };
        // Decided without any hash verification: an unknown id, another provider's shapes.
        for t in [
            "bhs_nope_0123456789abcdef",
            "bhs_",
            "bhp_abcdefghijkl_0123456789012345678901234567890123456789012",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        ] {
            assert_eq!(tokens.identify_cached(&c(t)), Some(Verdict::NotMine), "{t}");
        }
        // Only the entry with the token's id is a candidate: the right token verifies, and a
        // wrong secret for that id is checked against that one hash.
        assert_eq!(
            StaticTokens::candidates(&tokens.inner, "bhs_ci01_wrong").count(),
            1
        );
        assert_eq!(
            StaticTokens::candidates(&tokens.inner, "some-other-token").count(),
            1,
            "unprefixed tokens are checked against entries without an id"
        );
        let Verdict::Mine(p) = tokens.identify(c("bhs_ci01_0123456789abcdef")).await else {
            panic!("mine")
        };
        assert_eq!(p.id, "ci");
        assert_eq!(tokens.identify(c("bhs_ci01_wrong")).await, Verdict::NotMine);
        // Both outcomes are cached.
        assert!(matches!(
            tokens.identify_cached(&c("bhs_ci01_0123456789abcdef")),
            Some(Verdict::Mine(_))
        ));
        assert_eq!(
            tokens.identify_cached(&c("bhs_ci01_wrong")),
            Some(Verdict::NotMine)
        );
    }

    #[test]
    fn ids_are_validated() {
        let with = |id: &str, secret: TokenSecret| {
            StaticTokens::new(vec![TokenConfig {
                id: Some(id.into()),
                ..cfg("x", secret)
            }])
        };
        assert!(with("AB", TokenSecret::Plain("bhs_AB_secret".into())).is_err());
        let e = with("abcd", TokenSecret::Plain("plain-secret-x".into())).expect_err("shape");
        assert!(e.to_string().contains("bhs_abcd_<secret>"), "{e}");
        assert!(with("abcd", TokenSecret::Plain("bhs_abcd_secret".into())).is_ok());
    }

    #[test]
    fn groups_are_namespaced() {
        let tokens = StaticTokens::new(vec![TokenConfig {
            groups: vec!["team-a".into(), "static:ops".into()],
            ..cfg("alice", TokenSecret::Plain("plain-token-1".into()))
        }])
        .expect("tokens");
        let c = Credentials {
            token: "plain-token-1".into(),
            username: None,
        };
        let Some(Verdict::Mine(p)) = tokens.identify_cached(&c) else {
            panic!("mine")
        };
        assert_eq!(p.groups, ["static:team-a", "static:ops"]);
        assert_eq!(p.provider, "static");
    }

    #[test]
    fn bad_config_names_the_entry() {
        let e = StaticTokens::new(vec![cfg("x", TokenSecret::Argon2("nope".into()))])
            .expect_err("bad hash");
        assert!(e.to_string().contains("auth.tokens[0] (x)"), "{e}");
        let dup = StaticTokens::new(vec![
            cfg("x", TokenSecret::Plain("aaaaaaaaaa".into())),
            cfg("x", TokenSecret::Plain("bbbbbbbbbb".into())),
        ]);
        assert!(dup.is_err());
    }
}
