//! OIDC bearer tokens against a wiremock identity provider, with keys generated here.

mod common;

use std::sync::Arc;

use batlehub_auth::{
    Algorithm, Authenticator as _, OidcConfig, OidcProvider, Provider as _, Providers,
    StaticTokens, TokenConfig, TokenSecret, Verdict,
};
use batlehub_core::{Identity, Role};
use common::{AUD, EcKey, Idp, clock, creds, hand_token, hs256, now};
use serde_json::json;

fn config(idp: &Idp) -> OidcConfig {
    OidcConfig {
        issuer: idp.issuer(),
        audiences: vec![AUD.into(), "other".into()],
        algorithms: vec![Algorithm::ES256],
        admin_groups: vec!["platform-admins".into()],
        ..OidcConfig::default()
    }
}

fn provider(idp: &Idp, clock: &batlehub_core::FakeClock) -> OidcProvider {
    OidcProvider::new(config(idp), Arc::new(clock.clone())).expect("provider")
}

fn invalid(v: &Verdict) -> &str {
    match v {
        Verdict::Invalid(reason) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_token_is_mine_with_namespaced_groups() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let token = idp
        .key
        .sign(&idp.claims(&clock, json!({"groups": ["team-a", "team-b"]})));
    assert_eq!(
        oidc.identify_cached(&creds(&token)),
        None,
        "keys not fetched yet"
    );
    let Verdict::Mine(p) = oidc.identify(creds(&token)).await else {
        panic!("mine")
    };
    assert_eq!(p.id, "user-123");
    assert_eq!(p.role, Role::User);
    assert_eq!(p.groups, ["oidc:team-a", "oidc:team-b"]);
    assert_eq!(p.provider, "oidc");

    // Keys are cached now: the fast path verifies without I/O.
    let admin = idp.key.sign(&idp.claims(
        &clock,
        json!({"groups": ["platform-admins"], "sub": "root"}),
    ));
    let Some(Verdict::Mine(p)) = oidc.identify_cached(&creds(&admin)) else {
        panic!("fast path")
    };
    assert_eq!((p.id.as_str(), p.role), ("root", Role::Admin));
    assert_eq!(p.groups, ["oidc:platform-admins"]);
    assert_eq!(idp.hits("/.well-known/openid-configuration").await, 1);
    assert_eq!(idp.hits("/jwks").await, 1);

    // An audience list that contains one accepted audience passes.
    let multi = idp
        .key
        .sign(&idp.claims(&clock, json!({"aud": ["x", "other"]})));
    assert!(matches!(
        oidc.identify(creds(&multi)).await,
        Verdict::Mine(_)
    ));
}

#[tokio::test]
async fn wrong_audience_is_invalid() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    for aud in [json!("someone-else"), json!(["a", "b"]), json!(null)] {
        let token = idp.key.sign(&idp.claims(&clock, json!({"aud": aud})));
        assert_eq!(
            invalid(&oidc.identify(creds(&token)).await),
            "token audience is not accepted"
        );
    }
}

#[tokio::test]
async fn other_issuer_and_non_jwt_are_not_mine() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let token = idp
        .key
        .sign(&idp.claims(&clock, json!({"iss": "https://elsewhere.example.com"})));
    assert_eq!(oidc.identify_cached(&creds(&token)), Some(Verdict::NotMine));
    assert_eq!(oidc.identify(creds(&token)).await, Verdict::NotMine);
    assert_eq!(
        oidc.identify_cached(&creds("plain-static-token")),
        Some(Verdict::NotMine)
    );
    // Claimed by nobody: the chain refuses it, never anonymous.
    let chain = Providers::new().with(oidc);
    assert_eq!(
        chain.authenticate(creds(&token)).await,
        Identity::Invalid("unknown token".into())
    );
    assert_eq!(idp.hits("/jwks").await, 0, "no provider fetched keys");
}

#[tokio::test]
async fn expiry_follows_the_injected_clock() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let token = idp.key.sign(&idp.claims(&clock, json!({})));
    assert!(matches!(
        oidc.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
    // exp is now + 600; the leeway is 30 s.
    clock.advance(chrono::Duration::seconds(620));
    assert!(matches!(
        oidc.identify_cached(&creds(&token)),
        Some(Verdict::Mine(_))
    ));
    clock.advance(chrono::Duration::seconds(20));
    assert_eq!(
        invalid(&oidc.identify_cached(&creds(&token)).expect("fast")),
        "token expired"
    );

    // Not yet valid.
    let early = idp
        .key
        .sign(&idp.claims(&clock, json!({"nbf": now(&clock) + 300})));
    assert_eq!(
        invalid(&oidc.identify(creds(&early)).await),
        "token not yet valid"
    );
    // No expiry at all.
    let mut forever = idp.claims(&clock, json!({}));
    forever.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        invalid(&oidc.identify(creds(&idp.key.sign(&forever))).await),
        "token has no expiry (`exp`)"
    );
}

#[tokio::test]
async fn alg_none_is_refused_before_any_key_lookup() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let claims = idp.claims(&clock, json!({}));
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None", "kid": "key-1"}),
        json!({"typ": "JWT"}),
    ] {
        let token = hand_token(&header, &claims, b"");
        let v = oidc.identify(creds(&token)).await;
        assert!(matches!(v, Verdict::Invalid(_)), "{header}: {v:?}");
        // Also with a trailing signature-less form `h.p.`.
        assert!(matches!(
            oidc.identify_cached(&creds(&token)),
            Some(Verdict::Invalid(_))
        ));
    }
    assert_eq!(
        invalid(
            &oidc
                .identify(creds(&hand_token(&json!({"alg": "none"}), &claims, b"")))
                .await
        ),
        "token algorithm `none` is not accepted"
    );
    assert_eq!(
        idp.hits("/jwks").await,
        0,
        "refused before keys were needed"
    );
}

#[tokio::test]
async fn unknown_kid_refetches_once_per_interval() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let good = idp.key.sign(&idp.claims(&clock, json!({})));
    assert!(matches!(
        oidc.identify(creds(&good)).await,
        Verdict::Mine(_)
    ));
    assert_eq!(idp.hits("/jwks").await, 1);

    // A key the IdP does not publish, signed properly by a stranger.
    let stranger = EcKey::generate("rotated-key");
    clock.advance(chrono::Duration::seconds(61));
    let unknown = stranger.sign(&idp.claims(&clock, json!({})));
    assert_eq!(
        oidc.identify_cached(&creds(&unknown)),
        None,
        "refresh allowed"
    );
    assert_eq!(
        invalid(&oidc.identify(creds(&unknown)).await),
        "unknown signing key"
    );
    assert_eq!(idp.hits("/jwks").await, 2, "one refetch");

    // A second unknown kid within the interval: no refetch, refused at once.
    let other = EcKey::generate("another-key").sign(&idp.claims(&clock, json!({})));
    assert_eq!(
        invalid(&oidc.identify_cached(&creds(&other)).expect("fast")),
        "unknown signing key"
    );
    assert_eq!(
        invalid(&oidc.identify(creds(&other)).await),
        "unknown signing key"
    );
    assert_eq!(idp.hits("/jwks").await, 2, "rate-limited");
    assert_eq!(idp.hits("/.well-known/openid-configuration").await, 1);

    // A token signed by a stranger but naming the IdP's kid fails on the signature.
    let forged = stranger.sign_with_kid(&idp.claims(&clock, json!({})), Some("key-1"));
    assert_eq!(
        invalid(&oidc.identify(creds(&forged)).await),
        "invalid token signature"
    );

    // Past the interval a new unknown kid may refetch again.
    clock.advance(chrono::Duration::seconds(61));
    let later = EcKey::generate("third-key").sign(&idp.claims(&clock, json!({})));
    assert!(matches!(
        oidc.identify(creds(&later)).await,
        Verdict::Invalid(_)
    ));
    assert_eq!(idp.hits("/jwks").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_are_coalesced() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let token = idp.key.sign(&idp.claims(&clock, json!({})));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let oidc = oidc.clone();
            let token = token.clone();
            tokio::spawn(async move { oidc.identify(creds(&token)).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.expect("join"), Verdict::Mine(_)));
    }
    assert_eq!(idp.hits("/jwks").await, 1);
}

#[tokio::test]
async fn hs256_with_the_public_key_as_secret_is_refused() {
    let idp = Idp::start().await;
    let clock = clock();
    let claims = idp.claims(&clock, json!({}));
    let pem = idp.key.public_pem();
    let jwk_json = serde_json::to_vec(&idp.key.jwk).expect("json");
    let point = idp.key.public_point();
    let secrets: [&[u8]; 3] = [pem.as_bytes(), &jwk_json, &point];

    // Only ES256 pinned: refused on the algorithm, before any key lookup.
    let oidc = provider(&idp, &clock);
    for secret in secrets {
        for header in [
            json!({"alg": "HS256", "kid": "key-1"}),
            json!({"alg": "HS256"}),
        ] {
            let token = hs256(&header, &claims, secret);
            assert_eq!(
                invalid(&oidc.identify(creds(&token)).await),
                "token algorithm `HS256` is not accepted"
            );
        }
    }
    assert_eq!(idp.hits("/jwks").await, 0);

    // Even with HS256 configured, an EC key never verifies an HMAC.
    let lax = OidcProvider::new(
        OidcConfig {
            algorithms: vec![Algorithm::ES256, Algorithm::HS256],
            ..config(&idp)
        },
        Arc::new(clock.clone()),
    )
    .expect("provider");
    for secret in secrets {
        let named = hs256(&json!({"alg": "HS256", "kid": "key-1"}), &claims, secret);
        assert_eq!(
            invalid(&lax.identify(creds(&named)).await),
            "signing key does not match the token algorithm"
        );
        let unnamed = hs256(&json!({"alg": "HS256"}), &claims, secret);
        assert!(matches!(
            lax.identify(creds(&unnamed)).await,
            Verdict::Invalid(_)
        ));
    }
    // The genuine ES256 token still works with that provider.
    assert!(matches!(
        lax.identify(creds(&idp.key.sign(&claims))).await,
        Verdict::Mine(_)
    ));
}

#[tokio::test]
async fn token_without_kid_uses_matching_keys() {
    let idp = Idp::start().await;
    let clock = clock();
    let oidc = provider(&idp, &clock);
    let token = idp.key.sign_with_kid(&idp.claims(&clock, json!({})), None);
    assert!(matches!(
        oidc.identify(creds(&token)).await,
        Verdict::Mine(_)
    ));
}

#[tokio::test]
async fn static_tokens_first_then_oidc() {
    let idp = Idp::start().await;
    let clock = clock();
    let tokens = StaticTokens::new(vec![TokenConfig {
        name: "deploy-bot".into(),
        secret: TokenSecret::Plain("plain-static-token".into()),
        role: Role::Admin,
        groups: vec!["ops".into()],
        id: None,
    }])
    .expect("tokens");
    let chain = Providers::new().with(tokens).with(provider(&idp, &clock));
    assert_eq!(chain.names(), ["static", "oidc"]);

    let Some(Identity::User(p)) = chain.authenticate_cached(&creds("plain-static-token")) else {
        panic!("static token on the fast path")
    };
    assert_eq!(
        (p.provider.as_str(), p.groups.as_slice()),
        ("static", &["static:ops".to_owned()][..])
    );

    let jwt = idp
        .key
        .sign(&idp.claims(&clock, json!({"groups": ["team-a"]})));
    assert_eq!(chain.authenticate_cached(&creds(&jwt)), None, "keys needed");
    let Identity::User(p) = chain.authenticate(creds(&jwt)).await else {
        panic!("oidc user")
    };
    assert_eq!((p.provider.as_str(), p.id.as_str()), ("oidc", "user-123"));
    assert_eq!(p.groups, ["oidc:team-a"]);

    // An invalid OIDC token is a 401, not a fall-through to anonymous.
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        chain.authenticate(creds(&jwt)).await,
        Identity::Invalid("token expired".into())
    );
    assert_eq!(
        chain.authenticate(creds("not-a-known-token")).await,
        Identity::Invalid("unknown token".into())
    );
}

#[tokio::test]
async fn bad_configuration_is_refused() {
    let clock: Arc<dyn batlehub_core::Clock> = Arc::new(clock());
    let base = OidcConfig {
        issuer: "https://idp.example.com".into(),
        audiences: vec![AUD.into()],
        algorithms: vec![Algorithm::RS256],
        ..OidcConfig::default()
    };
    assert!(OidcProvider::new(base.clone(), clock.clone()).is_ok());
    for bad in [
        OidcConfig {
            algorithms: vec![],
            ..base.clone()
        },
        OidcConfig {
            audiences: vec![],
            ..base.clone()
        },
        OidcConfig {
            issuer: "idp.example.com".into(),
            ..base.clone()
        },
        OidcConfig {
            name: "a:b".into(),
            ..base.clone()
        },
        OidcConfig {
            role: Role::Anonymous,
            ..base.clone()
        },
        OidcConfig {
            ca_cert_path: Some("/nonexistent/ca.pem".into()),
            ..base.clone()
        },
    ] {
        let e = OidcProvider::new(bad, clock.clone()).expect_err("refused");
        assert!(e.to_string().starts_with("auth provider `"), "{e}");
    }
}

#[tokio::test]
async fn discovery_must_name_an_http_jwks_uri() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/.well-known/openid-configuration",
    ))
    .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
        "issuer": server.uri(),
        "jwks_uri": "file:///etc/passwd",
    })))
    .mount(&server)
    .await;
    let e = OidcProvider::connect(
        OidcConfig {
            issuer: server.uri(),
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::ES256],
            ..OidcConfig::default()
        },
        Arc::new(clock()),
    )
    .await
    .expect_err("refused");
    assert!(e.to_string().contains("jwks_uri"), "{e}");
}
