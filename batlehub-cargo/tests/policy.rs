//! Supply-chain and access rules through the cargo service with a fake clock: denied
//! versions appear as yanked in the index, their downloads are refused with the reason, and
//! whole-crate blocks, ownership, namespaces and rate limits speak cargo's envelope.

mod common;

use batlehub_core::model::{Block, Namespace};
use common::{CargoApp, TestApp, crate_file, get, index_path, sha256_hex};
use http::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: i64 = 86_400;

fn block(id: &str, package: &str, versions: Option<&str>, reason: &str) -> Block {
    Block {
        id: id.into(),
        registry: "cargo".into(),
        package: package.into(),
        versions: versions.map(str::to_owned),
        reason: reason.into(),
        created_by: "admin".into(),
        created_at: common::start_time(),
    }
}

fn yanked(lines: &[Value]) -> Vec<(String, bool)> {
    lines
        .iter()
        .map(|l| {
            (
                l["vers"].as_str().expect("vers").to_owned(),
                l["yanked"].as_bool().expect("yanked"),
            )
        })
        .collect()
}

#[tokio::test]
async fn release_age_gate_shows_young_versions_as_yanked_and_refuses_them() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    app.publish("gated", "1.0.0", "alice").await;
    app.clock.advance(chrono::Duration::seconds(2 * DAY));
    app.publish("gated", "1.1.0", "alice").await;
    app.clock.advance(chrono::Duration::minutes(1));

    let (s, lines) = app.lines("gated").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        yanked(&lines),
        [("1.0.0".into(), false), ("1.1.0".into(), true)],
        "young version shown as yanked"
    );
    let (s, h, b) = app.get("/api/v1/crates/gated/1.1.0/download").await;
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
    assert_eq!(
        app.get("/api/v1/crates/gated/1.0.0/download").await.0,
        StatusCode::OK
    );

    // Admins bypass by default; a day later everyone may.
    let (_, _, b) = app.get_as(&index_path("gated"), "admin").await;
    assert_eq!(
        yanked(&common::parse_lines(&b)),
        [("1.0.0".into(), false), ("1.1.0".into(), false)]
    );
    app.clock.advance(chrono::Duration::seconds(DAY));
    assert_eq!(
        yanked(&app.lines("gated").await.1),
        [("1.0.0".into(), false), ("1.1.0".into(), false)]
    );
    assert_eq!(
        app.get("/api/v1/crates/gated/1.1.0/download").await.0,
        StatusCode::OK
    );
}

/// An upstream index whose versions carry (or lack) `pubtime`.
async fn timed_upstream(versions: &[(&str, Option<String>)]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "dl": format!("{}/dl/{{crate}}/{{version}}", server.uri()) }),
            ),
        )
        .mount(&server)
        .await;
    let mut text = String::new();
    for (v, t) in versions {
        let bytes = crate_file("timed", v);
        let mut line = json!({
            "name": "timed", "vers": v, "deps": [], "cksum": sha256_hex(&bytes),
            "features": {}, "yanked": false,
        });
        if let Some(t) = t {
            line["pubtime"] = json!(t);
        }
        text.push_str(&line.to_string());
        text.push('\n');
        Mock::given(method("GET"))
            .and(path(format!("/dl/timed/{v}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/ti/me/timed"))
        .respond_with(ResponseTemplate::new(200).set_body_string(text))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn proxy_age_gate_uses_upstream_pubtime() {
    let fresh = (common::start_time() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let up = timed_upstream(&[
        ("1.0.0", Some("2020-01-01T00:00:00Z".into())),
        ("1.1.0", Some(fresh.clone())),
        ("1.2.0", None),
    ])
    .await;
    let app = TestApp::proxy(&up.uri())
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    let (s, lines) = app.lines("timed").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        yanked(&lines),
        [
            ("1.0.0".into(), false),
            ("1.1.0".into(), true),
            ("1.2.0".into(), false)
        ],
        "unknown publish times pass unless the gate says otherwise"
    );
    assert_eq!(
        lines[1]["pubtime"], fresh,
        "the rest of the line is untouched"
    );
    let (s, _, b) = app.get("/api/v1/crates/timed/1.1.0/download").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(&b).contains("younger than the release-age gate"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert_eq!(
        app.get("/api/v1/crates/timed/1.0.0/download").await.0,
        StatusCode::OK
    );

    let strict = TestApp::proxy(&up.uri())
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\ndeny_missing_timestamp = true\n")
        .build()
        .await;
    assert_eq!(
        yanked(&strict.lines("timed").await.1),
        [
            ("1.0.0".into(), false),
            ("1.1.0".into(), true),
            ("1.2.0".into(), true)
        ]
    );
    let (s, _, b) = strict.get("/api/v1/crates/timed/1.2.0/download").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&b).contains("no known publish time"));
}

#[tokio::test]
async fn blocks_and_version_gates() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"version_gate\"\npackage = \"gate-*\"\nblock = [\">=2.0.0\"]\n")
        .build()
        .await;
    app.publish("blk_crate", "1.0.0", "alice").await;
    app.publish("blk_crate", "1.2.0", "alice").await;
    app.publish("gate_me", "1.0.0", "alice").await;
    app.publish("gate_me", "2.0.0", "alice").await;
    let index = app.storage.index.clone();

    // Policy names crates by their key: lowercase, `_` written `-`.
    index
        .add_block(&block("b1", "blk-crate", Some(">=1.1.0"), "CVE-2026-0001"))
        .await
        .expect("block");
    assert_eq!(
        yanked(&app.lines("blk_crate").await.1),
        [("1.0.0".into(), false), ("1.2.0".into(), true)]
    );
    let (s, _, b) = app.get("/api/v1/crates/blk_crate/1.2.0/download").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("block_download_refused", err);

    assert_eq!(
        yanked(&app.lines("gate_me").await.1),
        [("1.0.0".into(), false), ("2.0.0".into(), true)]
    );
    assert_eq!(
        app.get("/api/v1/crates/gate_me/2.0.0/download").await.0,
        StatusCode::FORBIDDEN
    );

    index
        .add_block(&block("b2", "blk-crate", None, "malware"))
        .await
        .expect("block");
    let (s, _, b) = app.get(&index_path("blk_crate")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&b).contains("malware"));
    assert_eq!(
        app.get("/api/v1/crates/blk_crate/1.0.0/download").await.0,
        StatusCode::FORBIDDEN
    );
    let (_, found) = app.json("/api/v1/crates?q=blk").await;
    assert_eq!(
        found["meta"]["total"], 0,
        "blocked crates absent from search"
    );

    index.remove_block("b2").await.expect("unblock");
    index.remove_block("b1").await.expect("unblock");
    assert_eq!(
        yanked(&app.lines("blk_crate").await.1),
        [("1.0.0".into(), false), ("1.2.0".into(), false)]
    );
}

#[tokio::test]
async fn ownership_namespaces_and_rate_limits() {
    let app = TestApp::local()
        .rules("[rate_limit]\nrequests_per_window = 40\n")
        .build()
        .await;
    assert_eq!(
        app.publish("owned", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    let (s, err) = app.publish("owned", "1.1.0", "bob").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        err["errors"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("not an owner"),
        "{err}"
    );
    app.storage
        .index
        .add_namespace(&Namespace {
            registry: "cargo".into(),
            prefix: "team-".into(),
            group: "static:team".into(),
        })
        .await
        .expect("namespace");
    let (s, err) = app.publish("team_tool", "1.0.0", "bob").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    assert!(
        err["errors"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("namespace")
    );

    for _ in 0..40 {
        app.send(get("/registry/config.json", Some("carol"))).await;
    }
    let (s, h, b) = app.send(get("/registry/config.json", Some("carol"))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h.contains_key("retry-after"));
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("rate_limited", err);
}
