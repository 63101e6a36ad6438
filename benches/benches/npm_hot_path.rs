//! The cached tarball and cached packument paths of the npm service, through `oneshot`,
//! on the embedded storage (SQLite + filesystem).
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use base64::Engine as _;
use batlehub::core::body::Body;
use batlehub::core::digest::Digests;
use batlehub::npm::NpmService;
use batlehub::{BaseUrl, Hub, Identity, Mode, Principal, RegistryConfig, Role};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::Request;
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

fn tgz(name: &str, version: &str, filler: usize) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(&json!({"name": name, "version": version})).expect("json");
    // Incompressible filler so the tarball has the requested size on the wire.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..filler)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for (path, data) in [
        ("package/package.json", manifest),
        ("package/blob.bin", noise),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, path, data.as_slice())
            .expect("append");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &builder.into_inner().expect("tar")).expect("gz");
    gz.finish().expect("gz")
}

fn publish_req(name: &str, version: &str, tarball: &[u8]) -> Request<Body> {
    let d = Digests::of(tarball);
    let body = json!({
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "description": "bench",
            "dependencies": {"a": "^1.0.0", "b": "~2.1.0"},
            "dist": {"integrity": d.sha512_sri(), "shasum": d.sha1_hex()}}},
        "_attachments": {format!("{name}-{version}.tgz"): {
            "data": base64::engine::general_purpose::STANDARD.encode(tarball), "length": tarball.len()}}
    });
    let mut req = Request::put(format!("/{name}"))
        .body(batlehub::core::body::full(
            serde_json::to_vec(&body).expect("json"),
        ))
        .expect("req");
    req.extensions_mut().insert(Identity::User(Principal {
        id: "bench".into(),
        role: Role::Admin,
        groups: vec![],
        provider: "static".into(),
    }));
    req
}

async fn drain(svc: &NpmService, req: Request<Body>) -> usize {
    let resp = svc.clone().oneshot(req).await.expect("infallible");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = rt.block_on(async {
        let storage = batlehub::storage::embedded(dir.path())
            .await
            .expect("storage");
        let hub = Hub::builder().storage(storage).build().expect("hub");
        let registry = hub
            .registry(RegistryConfig::new("npm", Mode::Local))
            .expect("registry");
        let svc = NpmService::new(registry, BaseUrl::fixed("http://127.0.0.1:8080/proxy/npm"));
        drain(
            &svc,
            publish_req(
                "tarball-pkg",
                "1.0.0",
                &tgz("tarball-pkg", "1.0.0", 100 * 1024),
            ),
        )
        .await;
        for i in 0..200 {
            let v = format!("1.{i}.0");
            drain(
                &svc,
                publish_req("many-versions", &v, &tgz("many-versions", &v, 64)),
            )
            .await;
        }
        svc
    });

    let mut g = c.benchmark_group("npm");
    let size = rt.block_on(drain(
        &svc,
        Request::get("/tarball-pkg/-/tarball-pkg-1.0.0.tgz")
            .body(batlehub::core::body::empty())
            .expect("req"),
    ));
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("cached_tarball_100k", |b| {
        b.to_async(&rt).iter(|| {
            drain(
                &svc,
                Request::get("/tarball-pkg/-/tarball-pkg-1.0.0.tgz")
                    .body(batlehub::core::body::empty())
                    .expect("req"),
            )
        });
    });
    let size = rt.block_on(drain(
        &svc,
        Request::get("/many-versions")
            .body(batlehub::core::body::empty())
            .expect("req"),
    ));
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("packument_200_versions_full", |b| {
        b.to_async(&rt).iter(|| {
            drain(
                &svc,
                Request::get("/many-versions")
                    .body(batlehub::core::body::empty())
                    .expect("req"),
            )
        });
    });
    g.bench_function("packument_200_versions_abbreviated", |b| {
        b.to_async(&rt).iter(|| {
            drain(
                &svc,
                Request::get("/many-versions")
                    .header("accept", "application/vnd.npm.install-v1+json")
                    .body(batlehub::core::body::empty())
                    .expect("req"),
            )
        });
    });
    g.finish();
}

criterion_group!(npm, benches);
criterion_main!(npm);
