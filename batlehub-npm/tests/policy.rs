//! Every access and supply-chain rule, driven through the npm service with a fake clock:
//! what is hidden from packuments, how pointers are repaired, and what a refused client is
//! told.

mod common;

use base64::Engine as _;
use batlehub_core::model::{AuditQuery, Block, Namespace, Owner, Visibility};
use common::{NpmApp, TestApp, get, get_corgi, publish_body, put_json, tgz};
use http::StatusCode;
use serde_json::{Value, json};

const DAY: i64 = 86_400;

fn block(id: &str, package: &str, versions: Option<&str>, reason: &str) -> Block {
    Block {
        id: id.into(),
        registry: "npm".into(),
        package: package.into(),
        versions: versions.map(str::to_owned),
        reason: reason.into(),
        created_by: "admin".into(),
        created_at: common::start_time(),
    }
}

#[tokio::test]
async fn release_age_gate_hides_repairs_and_refuses_with_retry_after() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    app.publish("gated", "1.0.0", "alice").await;
    app.clock.advance(chrono::Duration::seconds(2 * DAY));
    app.publish("gated", "1.1.0", "alice").await;
    app.clock.advance(chrono::Duration::minutes(1));

    let (s, doc) = app.json("/gated").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["versions"].get("1.1.0").is_none(),
        "young version hidden: {doc}"
    );
    assert!(doc["time"].get("1.1.0").is_none());
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0", "latest repaired");
    let msg = doc["policyRestrictions"]["message"]
        .as_str()
        .expect("message");
    assert!(
        msg.contains("1.1.0") && msg.contains("release-age gate"),
        "{msg}"
    );
    assert!(doc["policyRestrictions"]["versions"].get("1.1.0").is_some());

    let (_, _, b) = app.send(get_corgi("/gated")).await;
    let corgi: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(corgi["dist-tags"]["latest"], "1.0.0");
    assert!(corgi["versions"].get("1.1.0").is_none());
    assert!(corgi["policyRestrictions"]["versions"]["1.1.0"]["dist"].is_object());

    let (s, h, b) = app.get("/gated/-/gated-1.1.0.tgz").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let retry: i64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((DAY - 120..=DAY).contains(&retry), "retry-after {retry}");
    assert_eq!(h["x-batlehub-rule"], "release_age_gate");
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("age_gate_download_refused", err);
    let (s, _, _) = app.get("/gated/1.1.0").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "manifest of a hidden version explains itself"
    );

    // Admins bypass by default.
    assert_eq!(
        app.send(get("/gated/-/gated-1.1.0.tgz", Some("admin")))
            .await
            .0,
        StatusCode::OK
    );

    // A day later it is eligible.
    app.clock.advance(chrono::Duration::seconds(DAY));
    let (_, doc) = app.json("/gated").await;
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert!(doc.get("policyRestrictions").is_none());
    assert_eq!(app.get("/gated/-/gated-1.1.0.tgz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn blocks_take_effect_on_the_next_request() {
    let app = TestApp::local().build().await;
    app.publish("blk", "1.0.0", "alice").await;
    app.publish("blk", "1.2.0", "alice").await;
    let index = app.storage.index.clone();
    index
        .add_block(&block("b1", "blk", Some(">=1.1.0"), "CVE-2026-0001"))
        .await
        .expect("block");
    let (_, doc) = app.json("/blk").await;
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert!(
        doc["policyRestrictions"]["message"]
            .as_str()
            .expect("msg")
            .contains("CVE-2026-0001")
    );
    let (s, _, b) = app.get("/blk/-/blk-1.2.0.tgz").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&b).contains("blocked: CVE-2026-0001"));

    index
        .add_block(&block("b2", "blk", None, "malware"))
        .await
        .expect("block");
    let (s, _, b) = app.get("/blk").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&b).contains("malware"));
    assert_eq!(
        app.get("/blk/-/blk-1.0.0.tgz").await.0,
        StatusCode::FORBIDDEN
    );
    let (_, found) = app.json("/-/v1/search?text=blk").await;
    assert_eq!(
        found["objects"].as_array().expect("objects").len(),
        0,
        "blocked packages absent from search"
    );

    index.remove_block("b2").await.expect("unblock");
    index.remove_block("b1").await.expect("unblock");
    let (_, doc) = app.json("/blk").await;
    assert_eq!(doc["dist-tags"]["latest"], "1.2.0");
}

#[tokio::test]
async fn deny_latest_and_version_gate() {
    let app = TestApp::local()
        .rules(
            "[[rules]]\nkind = \"deny_latest\"\n\n[[rules]]\nkind = \"version_gate\"\npackage = \"gate-*\"\nblock = [\">=2.0.0\"]\n",
        )
        .build()
        .await;
    app.publish("gate-me", "1.0.0", "alice").await;
    app.publish("gate-me", "2.0.0", "alice").await;
    let (s, _, b) = app.get("/gate-me/latest").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&b).contains("name a tag"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert_eq!(
        app.send(get("/gate-me/latest", Some("admin"))).await.0,
        StatusCode::OK,
        "bypass role"
    );
    assert_eq!(app.get("/gate-me/1.0.0").await.0, StatusCode::OK);
    let (_, doc) = app.json("/gate-me").await;
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert_eq!(
        app.get("/gate-me/-/gate-me-2.0.0.tgz").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn publish_rules_versioning_signing_quota() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    let app = TestApp::local()
        .rules(&format!(
            "[versioning]\nallow_prerelease = false\n\n[signing]\nrequired = true\ntrusted_keys = [\"{public}\"]\n\n[quota]\nmax_packages_per_user = 1\n"
        ))
        .build()
        .await;
    let tarball = tgz(&json!({"name": "signed", "version": "1.0.0"}));
    let body = publish_body("signed", "1.0.0", &tarball);
    // Unsigned: refused with the reason.
    let (s, _, b) = app.send(put_json("/signed", &body, Some("alice"))).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&b)
    );
    // Signed with another key: refused.
    let digest = batlehub_core::digest::Digests::of(&tarball).sha256;
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let sign = |k: &ed25519_dalek::SigningKey| {
        use ed25519_dalek::Signer as _;
        base64::engine::general_purpose::STANDARD.encode(k.sign(&digest).to_bytes())
    };
    let signed = |sig: String| {
        let mut req = put_json("/signed", &body, Some("alice"));
        req.headers_mut()
            .insert("x-artifact-signature", sig.parse().expect("header"));
        req.headers_mut()
            .insert("x-signature-type", "ed25519".parse().expect("header"));
        req
    };
    assert_eq!(
        app.send(signed(sign(&other))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, h, _) = app.send(signed(sign(&key))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-quota-packages-used"], "1");
    let (s, h, _) = app.get("/signed/-/signed-1.0.0.tgz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["x-artifact-signature"].to_str().expect("ascii"),
        sign(&key)
    );
    assert_eq!(h["x-signature-type"], "ed25519");

    // Pre-release refused (422) before anything else.
    let pre = publish_body(
        "signed",
        "2.0.0-rc.1",
        &tgz(&json!({"name": "signed", "version": "2.0.0-rc.1"})),
    );
    let (s, _, b) = app.send(put_json("/signed", &pre, Some("alice"))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&b).contains("pre-release"));

    // A second package exceeds the package quota.
    let t2 = tgz(&json!({"name": "second", "version": "1.0.0"}));
    let d2 = batlehub_core::digest::Digests::of(&t2).sha256;
    let mut req = put_json(
        "/second",
        &publish_body("second", "1.0.0", &t2),
        Some("alice"),
    );
    use ed25519_dalek::Signer as _;
    req.headers_mut().insert(
        "x-artifact-signature",
        base64::engine::general_purpose::STANDARD
            .encode(key.sign(&d2).to_bytes())
            .parse()
            .expect("h"),
    );
    req.headers_mut()
        .insert("x-signature-type", "ed25519".parse().expect("h"));
    let (s, _, b) = app.send(req).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&b).contains("package quota"),
        "{}",
        String::from_utf8_lossy(&b)
    );
}

#[tokio::test]
async fn rate_limit_429_with_headers() {
    let app = TestApp::local()
        .rules("[rate_limit]\nrequests_per_window = 3\nwindow_secs = 60\n")
        .build()
        .await;
    for i in 0..3 {
        let (s, h, _) = app.get("/-/ping").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            h["x-ratelimit-remaining"].to_str().expect("ascii"),
            (2 - i).to_string()
        );
    }
    let (s, h, b) = app.get("/-/ping").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.contains_key("retry-after"));
    assert_eq!(h["x-ratelimit-limit"], "3");
    insta::assert_snapshot!("rate_limited", String::from_utf8_lossy(&b));
    // Another user has their own budget; the next window starts afresh.
    assert_eq!(
        app.send(get("/-/ping", Some("bob"))).await.0,
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(app.get("/-/ping").await.0, StatusCode::OK);
    // The first request of the new window swept every caller's earlier counters (bob's
    // too, though he never came back): only alice's current counter is left.
    let far = batlehub_core::Clock::now(&app.clock) + chrono::Duration::days(1);
    assert_eq!(
        app.storage
            .index
            .rate_sweep("rl:", far)
            .await
            .expect("sweep"),
        1
    );
}

#[tokio::test]
async fn ownership_and_namespaces() {
    let app = TestApp::local().build().await;
    assert_eq!(
        app.publish("owned", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    let (s, body) = app.publish("owned", "1.1.0", "bob").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("not an owner"),
        "{body}"
    );
    // bob can't deprecate or tag either.
    let tag = put_json(
        "/-/package/owned/dist-tags/beta",
        &json!("1.0.0"),
        Some("bob"),
    );
    assert_eq!(app.send(tag).await.0, StatusCode::FORBIDDEN);
    app.storage
        .index
        .add_owner("npm", "owned", &Owner::Group("team-b".into()))
        .await
        .expect("owner");
    assert_eq!(
        app.publish("owned", "1.1.0", "bob@team-b").await.0,
        StatusCode::OK,
        "group owner"
    );
    assert_eq!(
        app.publish("owned", "1.2.0", "admin").await.0,
        StatusCode::OK,
        "admins always"
    );

    app.storage
        .index
        .add_namespace(&Namespace {
            registry: "npm".into(),
            prefix: "@team-a/".into(),
            group: "team-a".into(),
        })
        .await
        .expect("ns");
    let (s, body) = app.publish("@team-a/lib", "1.0.0", "bob").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["error"].as_str().expect("e").contains("namespace"),
        "{body}"
    );
    assert_eq!(
        app.publish("@team-a/lib", "1.0.0", "carol@team-a").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn visibility_hides_everywhere() {
    let app = TestApp::local().build().await;
    app.publish("@team-a/secret", "1.0.0", "carol@team-a").await;
    app.publish("inside", "1.0.0", "carol").await;
    let index = app.storage.index.clone();
    index
        .add_namespace(&Namespace {
            registry: "npm".into(),
            prefix: "@team-a/".into(),
            group: "team-a".into(),
        })
        .await
        .expect("ns");
    index
        .set_visibility("npm", "@team-a/secret", Visibility::Team)
        .await
        .expect("vis");
    index
        .set_visibility("npm", "inside", Visibility::Internal)
        .await
        .expect("vis");

    assert_eq!(
        app.get("/inside").await.0,
        StatusCode::NOT_FOUND,
        "anonymous"
    );
    assert_eq!(
        app.get_as("/inside", "bob").await.0,
        StatusCode::OK,
        "any user"
    );
    assert_eq!(
        app.get("/inside/-/inside-1.0.0.tgz").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/@team-a%2fsecret", "bob").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/@team-a/secret/-/secret-1.0.0.tgz", "bob")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/@team-a%2fsecret", "dave@team-a").await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/@team-a%2fsecret", "admin").await.0,
        StatusCode::OK
    );
    let (_, _, found) = app.get_as("/-/v1/search?text=e", "bob").await;
    let names: Vec<&str> = found["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["package"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["inside"], "team package absent from search");
    let (_, found) = app.json("/-/v1/search?text=e").await;
    assert_eq!(found["objects"].as_array().expect("objects").len(), 0);
}

#[tokio::test]
async fn hybrid_local_name_never_falls_through_even_when_all_versions_hidden() {
    let up = wiremock::MockServer::start().await;
    let app = TestApp::hybrid(&format!("{}/", up.uri()))
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    app.publish("internal-lib", "1.0.0", "alice").await;
    // The first publish asked the upstream whether it has the name (it does not).
    let probes = up.received_requests().await.expect("recorded").len();
    assert_eq!(probes, 1);
    let (s, doc) = app.json("/internal-lib").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["versions"], json!({}));
    assert_eq!(
        app.get("/internal-lib/-/internal-lib-1.0.0.tgz").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        up.received_requests().await.expect("recorded").len(),
        probes,
        "upstream never asked for a local name"
    );
}

#[tokio::test]
async fn audit_answers_who_downloaded_a_version_in_a_window() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 3600\n")
        .build()
        .await;
    app.publish("audited", "1.0.0", "alice").await;
    app.clock.advance(chrono::Duration::hours(2));
    let t0 = app.registry.now();
    assert_eq!(
        app.get_as("/audited/-/audited-1.0.0.tgz", "bob").await.0,
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::minutes(10));
    assert_eq!(
        app.get_as("/audited/-/audited-1.0.0.tgz", "carol").await.0,
        StatusCode::OK
    );
    app.publish("audited", "1.1.0", "alice").await;
    assert_eq!(
        app.get_as("/audited/-/audited-1.1.0.tgz", "bob").await.0,
        StatusCode::FORBIDDEN
    );
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        app.get_as("/audited/-/audited-1.0.0.tgz", "dave").await.0,
        StatusCode::OK
    );
    app.hub.audit().flush().await;

    let q = AuditQuery {
        registry: Some("npm".into()),
        package: Some("audited".into()),
        version: Some("1.0.0".into()),
        action: Some("download".into()),
        since: Some(t0),
        until: Some(t0 + chrono::Duration::minutes(30)),
        ..Default::default()
    };
    let events = app.storage.index.query_audit(&q).await.expect("query");
    let who: Vec<&str> = events.iter().map(|e| e.principal.as_str()).collect();
    assert_eq!(who, vec!["bob", "carol"]);
    let denied = AuditQuery {
        outcome: Some("deny".into()),
        package: Some("audited".into()),
        ..Default::default()
    };
    let events = app.storage.index.query_audit(&denied).await.expect("query");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].rule.as_deref(), Some("release_age_gate"));
    assert_eq!(events[0].version.as_deref(), Some("1.1.0"));
    let publishes = AuditQuery {
        action: Some("publish".into()),
        ..Default::default()
    };
    assert_eq!(
        app.storage
            .index
            .query_audit(&publishes)
            .await
            .expect("q")
            .len(),
        2
    );
}

/// A proxied packument is parsed and rendered once and then served from memory; the
/// policy still decides on every request: a clock that moves past the age gate, a block
/// added or removed, and a caller who bypasses the gate each see the right document at once.
#[tokio::test]
async fn proxy_memory_cache_never_outlives_a_policy_change() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let up = MockServer::start().await;
    let old: &[u8] = b"old tarball bytes";
    let young: &[u8] = b"young tarball bytes";
    let mut doc =
        common::upstream_packument("memo", &up.uri(), &[("1.0.0", old), ("2.0.0", young)]);
    let published = common::start_time() - chrono::Duration::hours(1);
    doc["time"]["2.0.0"] = json!(published.to_rfc3339());
    Mock::given(method("GET"))
        .and(path("/memo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc))
        .expect(1)
        .mount(&up)
        .await;
    for (v, bytes) in [("1.0.0", old), ("2.0.0", young)] {
        Mock::given(method("GET"))
            .and(path(format!("/memo/-/memo-{v}.tgz")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .expect(1)
            .mount(&up)
            .await;
    }
    let app = TestApp::proxy(&format!("{}/", up.uri()))
        .ttl(7 * DAY as u64)
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;

    for _ in 0..2 {
        let (s, doc) = app.json("/memo").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(doc["dist-tags"]["latest"], "1.0.0", "{doc}");
        assert!(doc["versions"].get("2.0.0").is_none());
        let (_, _, b) = app.send(get_corgi("/memo")).await;
        let corgi: Value = serde_json::from_slice(&b).expect("json");
        assert!(corgi["versions"].get("2.0.0").is_none(), "{corgi}");
        assert!(corgi["versions"].get("1.0.0").is_some());
    }
    // The admin bypasses the gate; the anonymous rendering is not reused for them.
    let (_, _, admin) = app.get_as("/memo", "admin").await;
    assert_eq!(admin["dist-tags"]["latest"], "2.0.0");
    assert!(admin.get("policyRestrictions").is_none());
    assert_eq!(
        app.get("/memo/-/memo-2.0.0.tgz").await.0,
        StatusCode::FORBIDDEN
    );
    for _ in 0..2 {
        let (s, _, b) = app.get("/memo/-/memo-1.0.0.tgz").await;
        assert_eq!((s, b.as_ref()), (StatusCode::OK, old));
    }

    // A day later the young version is eligible, from the same cached document.
    app.clock.advance(chrono::Duration::seconds(DAY));
    let (_, doc) = app.json("/memo").await;
    assert_eq!(doc["dist-tags"]["latest"], "2.0.0", "{doc}");
    assert!(doc.get("policyRestrictions").is_none());
    let (s, _, b) = app.get("/memo/-/memo-2.0.0.tgz").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, young));

    // A block applies on the next request, and so does its removal.
    let index = app.storage.index.clone();
    index
        .add_block(&block("m1", "memo", Some("2.0.0"), "CVE-2026-0002"))
        .await
        .expect("block");
    let (_, doc) = app.json("/memo").await;
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0", "{doc}");
    assert!(
        doc["policyRestrictions"]["message"]
            .as_str()
            .expect("message")
            .contains("CVE-2026-0002")
    );
    let (s, _, b) = app.get("/memo/-/memo-2.0.0.tgz").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "cached bytes are not served past a block"
    );
    assert!(String::from_utf8_lossy(&b).contains("CVE-2026-0002"));
    index.remove_block("m1").await.expect("unblock");
    let (_, doc) = app.json("/memo").await;
    assert_eq!(doc["dist-tags"]["latest"], "2.0.0");
    assert_eq!(app.get("/memo/-/memo-2.0.0.tgz").await.0, StatusCode::OK);
    // `expect(1)` on every upstream path: one packument fetch, one download per tarball.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_holds_against_concurrent_publishes() {
    let app = TestApp::local()
        .rules("[quota]\nmax_packages_per_user = 3\n")
        .build()
        .await;
    // Eight first publishes (the per-caller upload limit) of distinct packages by one user
    // at once: each passes the early check alone, only three fit the quota together.
    let publishes = (0..8).map(|i| {
        let name = format!("burst-{i}");
        let body = publish_body(
            &name,
            "1.0.0",
            &tgz(&json!({"name": name, "version": "1.0.0"})),
        );
        let app = &app;
        async move {
            app.send(put_json(&format!("/{name}"), &body, Some("alice")))
                .await
        }
    });
    let results = futures::future::join_all(publishes).await;
    let statuses: Vec<StatusCode> = results.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| s.is_success()).count(),
        3,
        "{statuses:?}"
    );
    for (s, _, b) in &results {
        if !s.is_success() {
            assert_eq!(*s, StatusCode::FORBIDDEN);
            assert!(String::from_utf8_lossy(b).contains("package quota"));
        }
    }
    // Another user has a quota of their own.
    let body = publish_body(
        "bobs",
        "1.0.0",
        &tgz(&json!({"name": "bobs", "version": "1.0.0"})),
    );
    assert!(
        app.send(put_json("/bobs", &body, Some("bob")))
            .await
            .0
            .is_success()
    );
}
