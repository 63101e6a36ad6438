//! Fuzz targets for npm's parsers of untrusted bytes: published tarballs, publish bodies,
//! names, versions and request paths (`PROPTEST_CASES` sets the length of a run).

use base64::Engine as _;
use batlehub_test::fuzz::{mutated, mutated_str};
use bytes::Bytes;
use http::Method;
use proptest::prelude::*;
use serde_json::json;

use crate::name::{PackageName, check_version};

fn tarball() -> Vec<u8> {
    crate::tarball::tests::tgz(&json!({
        "name": "@scope/pkg",
        "version": "1.0.0",
        "dependencies": {"left-pad": "^1.0.0"},
    }))
}

fn publish_body() -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(tarball());
    serde_json::to_vec(&json!({
        "_id": "@scope/pkg",
        "name": "@scope/pkg",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": "@scope/pkg", "version": "1.0.0",
            "dist": {"shasum": "00", "integrity": "sha512-AAAA"}}},
        "_attachments": {"@scope/pkg-1.0.0.tgz": {
            "content_type": "application/octet-stream", "data": data, "length": 1}},
    }))
    .expect("json")
}

proptest! {
    #[test]
    fn tarballs(bytes in mutated(tarball())) {
        let _ = crate::tarball::read_package_json(&bytes);
    }

    #[test]
    fn publish_bodies(bytes in mutated(publish_body())) {
        let _ = crate::handlers::publish::parse_body(&Bytes::from(bytes));
    }

    #[test]
    fn names(name in prop_oneof![
        mutated_str("@scope/pkg-name.js"),
        mutated_str("Legacy_Name~'!()*"),
        any::<String>(),
    ]) {
        if let Ok(parsed) = PackageName::parse(&name) {
            prop_assert_eq!(parsed.as_str(), name.as_str());
            prop_assert_eq!(PackageName::parse(parsed.as_str()).ok(), Some(parsed.clone()));
            let _ = parsed.check_new();
            let file = parsed.tarball_file("1.0.0");
            prop_assert_eq!(parsed.version_of_file(&file), Some("1.0.0"));
        }
    }

    #[test]
    fn versions(v in prop_oneof![mutated_str("1.2.3-rc.1+build.5"), any::<String>()]) {
        if check_version(&v).is_ok() {
            prop_assert!(!v.contains('/') && !v.contains("..") && !v.contains('\\'), "{:?}", v);
        }
    }

    #[test]
    fn paths(
        path in mutated_str("/@scope%2fpkg/-/pkg-1.0.0.tgz"),
        query in mutated_str("text=a&size=20&from=0"),
    ) {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let _ = crate::routes::parse(&method, &path, Some(&query));
        }
    }
}
