//! Fuzz targets for the Go parsers of untrusted bytes: module zips, `go.mod` module
//! directives, `.info` documents, version lists, module paths, versions and request paths
//! and checksum database lookups with their signed tree notes (`PROPTEST_CASES` sets the
//! length of a run).

use std::io::Cursor;

use batlehub_test::fuzz::{mutated, mutated_str};
use proptest::prelude::*;

use crate::name::{ModulePath, Version};

proptest! {
    #[test]
    fn module_zips(bytes in mutated(crate::modzip::make_zip(&[
        ("example.com/m@v1.0.0/go.mod", b"module example.com/m\n\ngo 1.19\n"),
        ("example.com/m@v1.0.0/m.go", b"package m\n"),
        ("example.com/m@v1.0.0/sub/s.go", b"package sub\n"),
    ]))) {
        let m = ModulePath::parse("example.com/m").expect("path");
        let v = Version::parse("v1.0.0").expect("version");
        if let Ok(zip) = crate::modzip::inspect(Cursor::new(bytes), &m, &v) {
            prop_assert!(zip.h1.starts_with("h1:"));
            let declared = crate::modzip::module_directive(&zip.go_mod);
            prop_assert_eq!(declared.as_deref(), Some("example.com/m"));
        }
    }

    #[test]
    fn go_mod_directives(text in mutated(b"// c\nmodule example.com/m // x\n\ngo 1.19\n".to_vec())) {
        let _ = crate::modzip::module_directive(&text);
    }

    #[test]
    fn infos(json in mutated(br#"{"Version":"v1.2.3","Time":"2026-01-02T03:04:05Z"}"#.to_vec())) {
        if let Ok(info) = serde_json::from_slice::<crate::wire::Info>(&json) {
            let again: crate::wire::Info = serde_json::from_slice(&info.to_json()).expect("ours parse");
            prop_assert_eq!(again.version, info.version);
        }
    }

    #[test]
    fn lists(text in mutated(b"v1.0.0\nv1.1.0 2026-01-02T03:04:05Z\nv2.0.0+incompatible\n".to_vec())) {
        for v in crate::wire::parse_list(&text) {
            if let Ok(parsed) = Version::parse(&v) {
                prop_assert_eq!(Version::from_stored(parsed.stored()).expect("round trip"), parsed);
            }
        }
    }

    #[test]
    fn module_paths(path in mutated_str("example.com/!org/mod/v2")) {
        if let Ok(m) = ModulePath::unescape(&path) {
            prop_assert_eq!(ModulePath::unescape(&m.escaped()).expect("round trip"), m.clone());
            prop_assert!(!m.as_str().split('/').any(|e| e == ".." || e.is_empty()));
        }
    }

    #[test]
    fn checksum_database_lookups(body in mutated(sumdb().lookup_of(5, None).into_bytes())) {
        let db = sumdb();
        let key = crate::tlog::VerifierKey::parse(&db.key()).expect("key");
        let _ = crate::sumdb::parse_lookup(&body, "example.com/m", "v1.0.0");
        if let Some(record) = crate::tlog::parse_record(&body)
            && let Ok(tree) = crate::tlog::verify_tree(record.note, &key)
            && let Ok(proof) = crate::tlog::Inclusion::new(record.id, tree)
        {
            let tiles = proof
                .tiles()
                .into_iter()
                .filter_map(|t| Some((t, db.answer(&t.path())?)))
                .collect();
            // Whatever was changed, a record that still proves is the database's own.
            if proof.check(record.text.as_bytes(), &tiles).is_ok() {
                prop_assert_eq!(record.text, db.record(usize::try_from(record.id).unwrap_or(0)));
            }
        }
    }

    #[test]
    fn request_paths(path in mutated_str("/example.com/!org/mod/@v/v1.0.0-rc.1.zip")) {
        let _ = crate::routes::parse(&path, false);
        let _ = crate::routes::parse(&path, true);
    }
}

/// The checksum database the lookups are mutated from.
fn sumdb() -> batlehub_test::sumdb::FakeSumdb {
    batlehub_test::sumdb::FakeSumdb::new(
        "sum.example.org",
        7,
        5,
        &[("example.com/m", "v1.0.0", "h1:zip=", "h1:mod=")],
    )
}
