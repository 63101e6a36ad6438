//! Authentication on the hot path: the same cached packument request anonymous, with a
//! plain static token, with an argon2id token (verified once, then cached) and with a
//! personal access token (looked up once, then cached), through `AuthLayer` and the npm
//! service. The cached-token rows should match the anonymous row within noise.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::sync::Arc;

use batlehub::auth::{AuthLayer, PatProvider, Providers, StaticTokens, TokenConfig, TokenSecret};
use batlehub::core::body::Body;
use batlehub::npm::NpmService;
use batlehub::{BaseUrl, Hub, Mode, RegistryConfig, Role};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt as _;
use tower::{Layer as _, Service as _, ServiceExt};

fn request(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(batlehub::core::body::empty()).expect("request")
}

/// Publishes `bench-pkg@1.0.0` as `plain` through the layered service.
async fn publish<S>(svc: &S)
where
    S: tower::Service<
            Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone,
{
    use base64::Engine as _;
    let tarball = {
        let mut builder = tar::Builder::new(Vec::new());
        let manifest = br#"{"name":"bench-pkg","version":"1.0.0"}"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, "package/package.json", &manifest[..])
            .expect("append");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &builder.into_inner().expect("tar")).expect("gz");
        gz.finish().expect("gz")
    };
    let body = serde_json::json!({
        "name": "bench-pkg",
        "versions": {"1.0.0": {"name": "bench-pkg", "version": "1.0.0"}},
        "_attachments": {"bench-pkg-1.0.0.tgz": {"data": base64::engine::general_purpose::STANDARD.encode(&tarball)}}
    });
    let req = Request::put("/bench-pkg")
        .header("authorization", "Bearer plain-secret-token")
        .body(batlehub::core::body::full(
            serde_json::to_vec(&body).expect("json"),
        ))
        .expect("request");
    let resp = svc.clone().oneshot(req).await.expect("infallible");
    assert!(resp.status().is_success(), "{}", resp.status());
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, pat) = rt.block_on(async {
        let storage = batlehub::storage::embedded(dir.path())
            .await
            .expect("storage");
        let hub = Hub::builder()
            .storage(storage.clone())
            .build()
            .expect("hub");
        let registry = hub
            .registry(RegistryConfig::new("npm", Mode::Local))
            .expect("registry");
        let npm = NpmService::new(registry, BaseUrl::fixed("http://127.0.0.1/npm"));
        let hash = batlehub::auth::hash_token("argon2-secret-token").expect("hash");
        let tokens = StaticTokens::new(vec![
            TokenConfig {
                name: "plain".into(),
                secret: TokenSecret::Plain("plain-secret-token".into()),
                role: Role::User,
                groups: vec![],
                id: None,
            },
            TokenConfig {
                name: "hashed".into(),
                secret: TokenSecret::Argon2(hash),
                role: Role::User,
                groups: vec![],
                id: None,
            },
        ])
        .expect("tokens");
        let (pat, record) = batlehub::auth::new_personal_token(
            "carol",
            Role::User,
            vec![],
            None,
            None,
            "bench",
            chrono::Utc::now(),
        );
        storage.index.create_token(&record).await.expect("pat");
        let pats = Arc::new(PatProvider::new(storage.index.clone(), hub.clock()));
        let layer = AuthLayer::new(Providers::new().with(tokens).with_arc(pats));
        publish(&layer.layer(npm.clone())).await;
        (layer.layer(npm), pat)
    });
    let run_path = |path: &'static str, token: Option<String>| {
        let mut svc = svc.clone();
        async move {
            let ready = ServiceExt::<Request<Body>>::ready(&mut svc)
                .await
                .expect("ready");
            let resp = ready
                .call(request(path, token.as_deref()))
                .await
                .expect("infallible");
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len()
        }
    };
    let run = |token: Option<String>| run_path("/-/ping", token);
    // Warm the caches once (argon2 and the PAT lookup happen here, not in the loop).
    rt.block_on(run(Some("argon2-secret-token".into())));
    rt.block_on(run(Some(pat.clone())));

    let mut g = c.benchmark_group("auth");
    g.bench_function("anonymous", |b| b.to_async(&rt).iter(|| run(None)));
    g.bench_function("static_plain_token", |b| {
        b.to_async(&rt)
            .iter(|| run(Some("plain-secret-token".into())))
    });
    g.bench_function("argon2_token_cached", |b| {
        b.to_async(&rt)
            .iter(|| run(Some("argon2-secret-token".into())))
    });
    g.bench_function("personal_access_token_cached", |b| {
        b.to_async(&rt).iter(|| run(Some(pat.clone())))
    });
    // A realistic request: a local packument read from the index and rendered.
    g.bench_function("packument_anonymous", |b| {
        b.to_async(&rt).iter(|| run_path("/bench-pkg", None))
    });
    g.bench_function("packument_argon2_token_cached", |b| {
        b.to_async(&rt)
            .iter(|| run_path("/bench-pkg", Some("argon2-secret-token".into())))
    });
    g.finish();
}

criterion_group!(auth, benches);
criterion_main!(auth);
