//! Kubernetes service-account tokens reviewed by a wiremock API server.

mod common;

use std::sync::Arc;

use batlehub_auth::{KubernetesConfig, KubernetesProvider, Provider as _, ReviewerToken, Verdict};
use batlehub_core::{FakeClock, Role};
use std::sync::LazyLock;

use common::{EcKey, clock, creds, hand_token, now};
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const REVIEW: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

const JWKS: &str = "/openid/v1/jwks";

/// The cluster's service-account signing key.
static CLUSTER_KEY: LazyLock<EcKey> = LazyLock::new(|| EcKey::generate("cluster-key"));

fn claims(clock: &FakeClock, name: &str, lifetime: i64) -> serde_json::Value {
    json!({
        "iss": ISSUER,
        "aud": ["batlehub"],
        "sub": format!("system:serviceaccount:ci:{name}"),
        "exp": now(clock) + lifetime,
        "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": name}},
    })
}

/// A token the cluster signed.
fn sa_token(clock: &FakeClock, name: &str, lifetime: i64) -> String {
    CLUSTER_KEY.sign(&claims(clock, name, lifetime))
}

/// Serves the cluster's JWKS (to the reviewer only) and builds the provider.
async fn provider(
    server: &MockServer,
    clock: &FakeClock,
    reviewer: ReviewerToken,
) -> KubernetesProvider {
    Mock::given(method("GET"))
        .and(path(JWKS))
        .and(header("authorization", "Bearer reviewer-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "keys": [CLUSTER_KEY.jwk],
        })))
        .mount(server)
        .await;
    KubernetesProvider::new(
        KubernetesConfig {
            issuer: ISSUER.into(),
            api_url: server.uri(),
            reviewer_token: reviewer,
            audiences: vec!["batlehub".into()],
            admin_groups: vec!["system:serviceaccounts:platform".into()],
            ..KubernetesConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .expect("provider")
}

async fn reviews(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter(|r| r.url.path() == REVIEW)
        .count()
}

async fn jwks_hits(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .filter(|r| r.url.path() == JWKS)
        .count()
}

async fn answer(server: &MockServer, token: &str, status: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path(REVIEW))
        .and(header("authorization", "Bearer reviewer-token"))
        .and(body_partial_json(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": ["batlehub"]},
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "status": status,
        })))
        .mount(server)
        .await;
}

fn value() -> ReviewerToken {
    ReviewerToken::Value("reviewer-token".into())
}

#[tokio::test]
async fn authenticated_then_cached() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let token = sa_token(&clock, "builder", 3600);
    answer(
        &server,
        &token,
        json!({
            "authenticated": true,
            "user": {
                "username": "system:serviceaccount:ci:builder",
                "uid": "1",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]
            },
            "audiences": ["batlehub"]
        }),
    )
    .await;

    assert_eq!(k8s.identify_cached(&creds(&token)), None);
    let Verdict::Mine(p) = k8s.identify(creds(&token)).await else {
        panic!("mine")
    };
    assert_eq!(p.id, "system:serviceaccount:ci:builder");
    assert_eq!(p.role, Role::User);
    assert_eq!(p.provider, "kubernetes");
    assert_eq!(
        p.groups,
        [
            "kubernetes:system:serviceaccounts",
            "kubernetes:system:serviceaccounts:ci",
            "kubernetes:system:authenticated"
        ]
    );
    assert_eq!(reviews(&server).await, 1);

    // Cached: no second review, on the fast path or the slow one.
    assert!(matches!(
        k8s.identify_cached(&creds(&token)),
        Some(Verdict::Mine(_))
    ));
    assert!(matches!(
        k8s.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    assert_eq!(reviews(&server).await, 1);

    // The cache holds at most max_cache_secs (300): then the API is asked again.
    clock.advance(chrono::Duration::seconds(301));
    assert_eq!(k8s.identify_cached(&creds(&token)), None);
    assert!(matches!(
        k8s.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    assert_eq!(reviews(&server).await, 2);
}

#[tokio::test]
async fn cache_ends_with_the_token() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let token = sa_token(&clock, "short", 60);
    answer(
        &server,
        &token,
        json!({
            "authenticated": true,
            "user": {"username": "system:serviceaccount:ci:short", "groups": ["system:serviceaccounts:platform"]},
            "audiences": ["batlehub"]
        }),
    )
    .await;
    let Verdict::Mine(p) = k8s.identify(creds(&token)).await else {
        panic!("mine")
    };
    assert_eq!(p.role, Role::Admin, "admin via admin_groups");
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        k8s.identify_cached(&creds(&token)),
        Some(Verdict::Invalid("token expired".into()))
    );
    assert_eq!(reviews(&server).await, 1);
}

#[tokio::test]
async fn unauthenticated_is_invalid_and_cached() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let token = sa_token(&clock, "deleted", 3600);
    answer(
        &server,
        &token,
        json!({"authenticated": false, "error": "service account ci/deleted has been deleted"}),
    )
    .await;
    let expected = Verdict::Invalid("service account ci/deleted has been deleted".into());
    assert_eq!(k8s.identify(creds(&token)).await, expected);
    assert_eq!(k8s.identify_cached(&creds(&token)), Some(expected.clone()));
    assert_eq!(k8s.identify(creds(&token)).await, expected);
    assert_eq!(reviews(&server).await, 1, "negative answers are cached too");
}

#[tokio::test]
async fn wrong_audience_in_status_is_invalid() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let token = sa_token(&clock, "x", 3600);
    answer(
        &server,
        &token,
        json!({
            "authenticated": true,
            "user": {"username": "system:serviceaccount:ci:x"},
            "audiences": ["https://kubernetes.default.svc"]
        }),
    )
    .await;
    assert_eq!(
        k8s.identify(creds(&token)).await,
        Verdict::Invalid("token audience is not accepted".into())
    );
}

#[tokio::test]
async fn api_errors_are_invalid_and_not_cached() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    Mock::given(method("POST"))
        .and(path(REVIEW))
        .respond_with(ResponseTemplate::new(500).set_body_string("etcd is sad"))
        .mount(&server)
        .await;
    let token = sa_token(&clock, "builder", 3600);
    for _ in 0..2 {
        assert_eq!(
            k8s.identify(creds(&token)).await,
            Verdict::Invalid("token review unavailable".into())
        );
    }
    assert_eq!(reviews(&server).await, 2);
}

#[tokio::test]
async fn other_tokens_are_not_mine() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let foreign = hand_token(
        &json!({"alg": "RS256"}),
        &json!({"iss": "https://other-cluster", "exp": now(&clock) + 60}),
        b"sig",
    );
    for t in [foreign.as_str(), "bhp_notajwt", "plain-token-123"] {
        assert_eq!(k8s.identify_cached(&creds(t)), Some(Verdict::NotMine));
        assert_eq!(k8s.identify(creds(t)).await, Verdict::NotMine);
    }
    assert_eq!(reviews(&server).await, 0);
}

#[tokio::test]
async fn reviewer_token_is_reread_from_its_file() {
    let server = MockServer::start().await;
    let clock = clock();
    let dir = std::env::temp_dir().join(format!(
        "batlehub-auth-k8s-{}-{}",
        std::process::id(),
        now(&clock)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("token");
    std::fs::write(&file, "rotated-old\n").expect("write");
    let k8s = provider(&server, &clock, ReviewerToken::File(file.clone())).await;
    let token = sa_token(&clock, "builder", 3600);
    answer(
        &server,
        &token,
        json!({"authenticated": true, "user": {"username": "u"}, "audiences": ["batlehub"]}),
    )
    .await;
    // The mock only answers the current reviewer token; the old one gets wiremock's 404.
    assert_eq!(
        k8s.identify(creds(&token)).await,
        Verdict::Invalid("token review unavailable".into())
    );
    std::fs::write(&file, "reviewer-token\n").expect("write");
    assert!(matches!(
        k8s.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(
        !format!("{:?}", ReviewerToken::Value("secret".into())).contains("secret"),
        "Debug redacts the token"
    );
}

#[test]
fn configuration_is_checked() {
    let clock: Arc<dyn batlehub_core::Clock> = Arc::new(clock());
    assert!(KubernetesProvider::new(KubernetesConfig::default(), clock.clone()).is_err());
    let ok = KubernetesConfig {
        issuer: ISSUER.into(),
        reviewer_token: value(),
        audiences: vec!["batlehub".into()],
        ..KubernetesConfig::default()
    };
    assert!(KubernetesProvider::new(ok.clone(), clock.clone()).is_ok());
    // Any audience is never the default: one must be named.
    let any_audience = KubernetesConfig {
        audiences: Vec::new(),
        ..ok.clone()
    };
    let e = KubernetesProvider::new(any_audience, clock.clone()).expect_err("no audiences");
    assert!(e.to_string().contains("audiences"), "{e}");
    assert!(!format!("{ok:?}").contains("reviewer-token"));
    let bad_url = KubernetesConfig {
        api_url: "unix:///var/run/k8s".into(),
        ..ok
    };
    assert!(KubernetesProvider::new(bad_url, clock).is_err());
}

/// Forged tokens (another key, a made-up signature, `none`/`HS256`, a foreign audience, no
/// expiry) are refused without a TokenReview; a token naming an unknown key refetches the
/// JWKS at most once a minute.
#[tokio::test]
async fn forged_tokens_never_reach_the_api_server() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = provider(&server, &clock, value()).await;
    let attacker = EcKey::generate("cluster-key");
    let mut no_exp = claims(&clock, "x", 60);
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut other_aud = claims(&clock, "x", 60);
    other_aud["aud"] = json!(["https://kubernetes.default.svc"]);
    let forged = [
        attacker.sign(&claims(&clock, "builder", 3600)),
        hand_token(
            &json!({"alg": "ES256", "kid": "cluster-key"}),
            &claims(&clock, "builder", 3600),
            b"made-up",
        ),
        hand_token(
            &json!({"alg": "none"}),
            &claims(&clock, "builder", 3600),
            b"",
        ),
        common::hs256(
            &json!({"alg": "HS256", "kid": "cluster-key"}),
            &claims(&clock, "builder", 3600),
            b"guess",
        ),
        CLUSTER_KEY.sign(&no_exp),
        CLUSTER_KEY.sign(&other_aud),
    ];
    for (i, token) in forged.iter().enumerate() {
        let verdict = k8s.identify(creds(token)).await;
        assert!(matches!(verdict, Verdict::Invalid(_)), "{i}: {verdict:?}");
    }
    assert_eq!(reviews(&server).await, 0, "no forged token was reviewed");

    // Unknown key ids: one refetch, then refused from the keys in hand for a minute.
    let before = jwks_hits(&server).await;
    for i in 0..20 {
        let stranger = EcKey::generate(&format!("rotated-{i}"));
        let verdict = k8s
            .identify(creds(&stranger.sign(&claims(&clock, "x", 60))))
            .await;
        assert!(matches!(verdict, Verdict::Invalid(_)), "{verdict:?}");
    }
    assert!(
        jwks_hits(&server).await - before <= 1,
        "JWKS refetches are rate-limited"
    );
    assert_eq!(reviews(&server).await, 0);

    // A genuine token is still reviewed.
    genuine_token_is_reviewed(&server, &clock, &k8s).await;
}

/// Without access to the cluster's JWKS, tokens are still reviewed (the API server checks
/// the signature), after the cheap checks.
#[tokio::test]
async fn without_the_jwks_the_review_decides() {
    let server = MockServer::start().await;
    let clock = clock();
    let k8s = KubernetesProvider::new(
        KubernetesConfig {
            issuer: ISSUER.into(),
            api_url: server.uri(),
            reviewer_token: value(),
            audiences: vec!["batlehub".into()],
            ..KubernetesConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .expect("provider");
    genuine_token_is_reviewed(&server, &clock, &k8s).await;
}

/// A token the cluster signed and the API server authenticates: accepted after one review.
async fn genuine_token_is_reviewed(
    server: &MockServer,
    clock: &FakeClock,
    k8s: &KubernetesProvider,
) {
    let token = sa_token(clock, "builder", 3600);
    answer(
        server,
        &token,
        json!({"authenticated": true, "audiences": ["batlehub"],
               "user": {"username": "system:serviceaccount:ci:builder", "groups": []}}),
    )
    .await;
    assert!(matches!(
        k8s.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    assert_eq!(reviews(server).await, 1);
}
