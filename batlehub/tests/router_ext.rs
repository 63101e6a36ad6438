//! `RouterExt::registry`: a registry mounted at a path, its base URL derived from that path.

#![cfg(all(feature = "axum", feature = "npm", feature = "cargo"))]

use batlehub::axum::RouterExt as _;
use batlehub::cargo::CargoService;
use batlehub::npm::NpmService;
use batlehub::{Hub, Mode, RegistryConfig};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

#[tokio::test]
async fn mounted_registries_answer_under_their_path() {
    let storage = batlehub::storage::memory().await.expect("storage");
    let hub = Hub::builder().storage(storage).build().expect("hub");
    let app: axum::Router = axum::Router::new()
        .registry::<NpmService>("/npm", &hub, RegistryConfig::new("npm", Mode::Local))
        .expect("npm")
        .registry::<CargoService>(
            "/crates",
            &hub,
            // cargo's own spelling of a sparse index is accepted.
            RegistryConfig::new("up", Mode::Proxy).upstreams(["sparse+http://127.0.0.1:9/index/"]),
        )
        .expect("cargo proxy");
    let get = |path: &str| {
        axum::http::Request::get(path)
            .header("host", "hub.test")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let resp = app
        .clone()
        .oneshot(get("/npm/-/ping"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    let resp = app
        .oneshot(get("/crates/registry/config.json"))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let config: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(config["api"], "http://hub.test/crates", "{config}");

    let err = axum::Router::<()>::new()
        .registry::<NpmService>("/bad", &hub, RegistryConfig::new("../x", Mode::Local))
        .expect_err("a bad name is a configuration error");
    assert!(err.message().contains("registry name"), "{err}");
}
