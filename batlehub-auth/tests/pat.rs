//! Personal access tokens against a small in-memory token store.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use batlehub_auth::{
    Authenticator as _, PatProvider, Provider as _, Providers, TokenFuture, TokenStore, Verdict,
    new_personal_token,
};
use batlehub_core::model::TokenRecord;
use batlehub_core::{Clock as _, FakeClock, Identity, Role};
use common::{clock, creds};
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct MemTokens {
    tokens: Mutex<HashMap<String, TokenRecord>>,
    lookups: AtomicUsize,
    /// Bumped by `announce`, as an index does when it hears of a revocation.
    generation: std::sync::atomic::AtomicU64,
}

impl MemTokens {
    fn put(&self, record: TokenRecord) {
        self.tokens.lock().insert(record.id.clone(), record);
    }

    fn revoke(&self, id: &str, clock: &FakeClock) {
        if let Some(r) = self.tokens.lock().get_mut(id) {
            r.revoked_at = Some(clock.now());
        }
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// What an index does when this or another replica revokes a token.
    fn announce(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl TokenStore for MemTokens {
    fn token_by_id<'a>(&'a self, id: &'a str) -> TokenFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let found = self.tokens.lock().get(id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

fn setup() -> (Arc<MemTokens>, FakeClock, PatProvider) {
    let store = Arc::new(MemTokens::default());
    let clock = clock();
    let pats = PatProvider::new(store.clone(), Arc::new(clock.clone()));
    (store, clock, pats)
}

fn mint(store: &MemTokens, clock: &FakeClock, expires_in: Option<i64>) -> (String, TokenRecord) {
    let now = clock.now();
    let (token, record) = PatProvider::mint(
        "alice",
        Role::User,
        vec!["release".into(), "pat:already".into()],
        Some("laptop".into()),
        expires_in.map(|s| now + chrono::Duration::seconds(s)),
        "admin",
        now,
    );
    store.put(record.clone());
    (token, record)
}

#[tokio::test]
async fn valid_token_is_mine() {
    let (store, clock, pats) = setup();
    let (token, record) = mint(&store, &clock, None);
    assert!(token.starts_with(&format!("bhp_{}_", record.id)));
    assert!(!format!("{record:?}").contains(&record.secret_sha256));
    assert_eq!(pats.identify_cached(&creds(&token)), None, "not cached yet");
    let Verdict::Mine(p) = pats.identify(creds(&token)).await else {
        panic!("mine")
    };
    assert_eq!(p.id, "alice");
    assert_eq!(p.role, Role::User);
    assert_eq!(p.provider, "pat");
    assert_eq!(p.groups, ["pat:release", "pat:already"]);
    assert_eq!(store.lookups(), 1);
    // Cached now: the fast path answers.
    assert!(matches!(
        pats.identify_cached(&creds(&token)),
        Some(Verdict::Mine(_))
    ));
    assert_eq!(store.lookups(), 1);
}

#[tokio::test]
async fn wrong_secret_unknown_id_and_foreign_tokens() {
    let (store, clock, pats) = setup();
    let (token, record) = mint(&store, &clock, None);
    let (other, _) = new_personal_token("bob", Role::User, vec![], None, None, "x", clock.now());
    // `bhp_` + 12-character id + `_`; the secret itself may contain `_`.
    let other_secret = &other["bhp_".len() + 13..];
    // The right id with someone else's secret.
    let forged = format!("bhp_{}_{other_secret}", record.id);
    let refused = Verdict::Invalid("invalid personal access token".into());
    assert_eq!(pats.identify(creds(&forged)).await, refused);
    // A well-formed token whose id is not stored: the same answer.
    assert_eq!(pats.identify(creds(&other)).await, refused);
    // Malformed, on the fast path, without a look-up.
    let before = store.lookups();
    assert_eq!(
        pats.identify_cached(&creds("bhp_tooshort")),
        Some(Verdict::Invalid("malformed personal access token".into()))
    );
    assert_eq!(
        pats.identify_cached(&creds("npm_somethingelse")),
        Some(Verdict::NotMine)
    );
    assert_eq!(store.lookups(), before);
    assert!(matches!(
        pats.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
}

#[tokio::test]
async fn revoked_token_is_invalid() {
    let (store, clock, pats) = setup();
    let (token, record) = mint(&store, &clock, None);
    store.revoke(&record.id, &clock);
    assert_eq!(
        pats.identify(creds(&token)).await,
        Verdict::Invalid("token revoked".into())
    );
}

#[tokio::test]
async fn expired_token_is_invalid() {
    let (store, clock, pats) = setup();
    let (token, _) = mint(&store, &clock, Some(3600));
    assert!(matches!(
        pats.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    clock.advance(chrono::Duration::seconds(3600));
    // The cached entry does not outlive the token.
    assert_eq!(pats.identify_cached(&creds(&token)), None);
    assert_eq!(
        pats.identify(creds(&token)).await,
        Verdict::Invalid("token expired".into())
    );
}

#[tokio::test]
async fn cache_is_bounded_and_forgettable() {
    let (store, clock, pats) = setup();
    let (token, record) = mint(&store, &clock, None);
    assert!(matches!(
        pats.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    store.revoke(&record.id, &clock);

    // Within the TTL the cached verdict stands ...
    clock.advance(chrono::Duration::seconds(29));
    assert!(matches!(
        pats.identify_cached(&creds(&token)),
        Some(Verdict::Mine(_))
    ));
    // ... until the admin API drops it at once.
    pats.forget(&record.id);
    assert_eq!(pats.identify_cached(&creds(&token)), None);
    assert_eq!(
        pats.identify(creds(&token)).await,
        Verdict::Invalid("token revoked".into())
    );

    // Without `forget`, the TTL bounds how long a revoked token keeps working.
    let (token2, record2) = mint(&store, &clock, None);
    assert!(matches!(
        pats.identify(creds(&token2)).await,
        Verdict::Mine(_)
    ));
    store.revoke(&record2.id, &clock);
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(pats.identify_cached(&creds(&token2)), None);
    assert_eq!(
        pats.identify(creds(&token2)).await,
        Verdict::Invalid("token revoked".into())
    );

    // invalidate_all empties the cache; clones share it.
    let (token3, _) = mint(&store, &clock, None);
    let shared = pats.clone();
    assert!(matches!(
        pats.identify(creds(&token3)).await,
        Verdict::Mine(_)
    ));
    assert!(shared.identify_cached(&creds(&token3)).is_some());
    shared.invalidate_all();
    assert_eq!(pats.identify_cached(&creds(&token3)), None);
}

#[tokio::test]
async fn an_announced_revocation_drops_cached_verifications_at_once() {
    let (store, clock, pats) = setup();
    let (token, record) = mint(&store, &clock, None);
    let (other, _) = mint(&store, &clock, None);
    for t in [&token, &other] {
        assert!(matches!(pats.identify(creds(t)).await, Verdict::Mine(_)));
    }
    // Another replica revokes the token: the store hears of it and its generation changes.
    store.revoke(&record.id, &clock);
    store.announce();
    assert_eq!(pats.identify_cached(&creds(&token)), None);
    assert_eq!(
        pats.identify(creds(&token)).await,
        Verdict::Invalid("token revoked".into())
    );
    // Other tokens are looked up once more, then cached again.
    assert_eq!(pats.identify_cached(&creds(&other)), None);
    assert!(matches!(
        pats.identify(creds(&other)).await,
        Verdict::Mine(_)
    ));
    assert!(pats.identify_cached(&creds(&other)).is_some());
}

#[tokio::test]
async fn cache_ttl_is_configurable() {
    let store = Arc::new(MemTokens::default());
    let clock = clock();
    let pats = PatProvider::new(store.clone(), Arc::new(clock.clone())).cache_ttl(Duration::ZERO);
    let (token, _) = mint(&store, &clock, None);
    for _ in 0..3 {
        assert!(matches!(
            pats.identify(creds(&token)).await,
            Verdict::Mine(_)
        ));
    }
    assert_eq!(store.lookups(), 3, "no caching with a zero TTL");
}

#[tokio::test]
async fn in_a_chain() {
    let (store, clock, pats) = setup();
    let (token, _) = mint(&store, &clock, None);
    let chain = Providers::new().with(pats);
    let Identity::User(p) = chain.authenticate(creds(&token)).await else {
        panic!("user")
    };
    assert_eq!(p.id, "alice");
    assert_eq!(
        chain.authenticate(creds("no-such-token")).await,
        Identity::Invalid("unknown token".into())
    );
}

/// An `Arc<dyn Index>` is accepted as it is.
#[expect(dead_code, reason = "compile-time check only")]
fn accepts_an_index(index: Arc<dyn batlehub_core::Index>) -> PatProvider {
    PatProvider::new(index, Arc::new(batlehub_core::SystemClock))
}
