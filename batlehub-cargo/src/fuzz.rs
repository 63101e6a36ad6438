//! Fuzz targets for cargo's parsers of untrusted bytes: `.crate` archives, crate names,
//! versions and request paths (`PROPTEST_CASES` sets the length of a run).

use batlehub_test::fuzz::{mutated, mutated_str};
use proptest::prelude::*;

use crate::name::{CrateName, check_version};

fn crate_file() -> Vec<u8> {
    crate::crate_file::tests::archive(&[
        (
            "foo-1.0.0/Cargo.toml",
            b"[package]\nname = \"foo\"\nversion = \"1.0.0\"\nedition = \"2021\"\n[dependencies]\nbar = \"1\"\n",
        ),
        ("foo-1.0.0/src/lib.rs", b"pub fn x() {}\n"),
        ("foo-1.0.0/README.md", b"# foo\n"),
    ])
}

proptest! {
    #[test]
    fn crate_archives(bytes in mutated(crate_file())) {
        if let Ok(manifest) = crate::crate_file::inspect(std::io::Cursor::new(bytes), "foo-1.0.0") {
            prop_assert!(!manifest.name.is_empty());
        }
    }

    #[test]
    fn names(name in prop_oneof![mutated_str("serde_json-Core"), any::<String>()]) {
        if let Ok(parsed) = CrateName::parse(&name) {
            // The lookup key is a valid name again, and its own key.
            let key = CrateName::parse(&parsed.key()).map(|k| k.key());
            prop_assert_eq!(key.ok(), Some(parsed.key()));
            let _ = parsed.check_new();
        }
    }

    #[test]
    fn versions(v in prop_oneof![mutated_str("1.2.3-alpha.1+build.5"), any::<String>()]) {
        if check_version(&v).is_ok() {
            prop_assert!(!v.contains('/') && !v.contains("..") && !v.contains('\\'), "{:?}", v);
        }
    }

    #[test]
    fn paths(
        path in prop_oneof![
            mutated_str("/registry/se/rd/serde"),
            mutated_str("/api/v1/crates/serde/1.0.0/download"),
            mutated_str("/api/v1/crates/serde/owners"),
        ],
        query in mutated_str("q=serde&per_page=10"),
    ) {
        let _ = crate::routes::parse(&path, Some(&query));
    }

    #[test]
    fn pubtimes(s in prop_oneof![mutated_str("2025-01-01T00:00:00Z"), any::<String>()]) {
        let _ = crate::wire::parse_pubtime(&s);
    }
}
