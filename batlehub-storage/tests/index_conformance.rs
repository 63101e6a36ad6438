//! One conformance suite for [`Index`], run against SQLite (memory and file) and, when
//! `BATLEHUB_TEST_POSTGRES_URL` is set, PostgreSQL.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::str::FromStr;

use batlehub_core::model::{
    AuditEvent, AuditQuery, Block, CachedArtifact, CachedDocument, FileRecord, Namespace,
    NewVersion, Owner, PackageSummary, Role, TokenRecord, Usage, VersionRecord, Visibility,
};
use batlehub_core::{Error, Index};
use batlehub_storage::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use batlehub_storage::sqlx::{self, AssertSqlSafe};
use batlehub_storage::{SqlIndex, StorageError};
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Helpers

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `2024-01-01T00:00:00.000000Z` plus `n` seconds and a few microseconds.
fn t(n: i64) -> DateTime<Utc> {
    at("2024-01-01T00:00:00.000000Z")
        + chrono::Duration::seconds(n)
        + chrono::Duration::microseconds(123_456)
}

fn version(
    package: &str,
    version: &str,
    published_at: DateTime<Utc>,
    files: &[&str],
) -> VersionRecord {
    VersionRecord {
        package: package.to_owned(),
        version: version.to_owned(),
        published_at,
        yanked: false,
        deprecated: None,
        publisher: Some("alice".to_owned()),
        metadata: json!({
            "name": package,
            "version": version,
            "nested": {"list": [1, 2.5, {"null": null}], "flag": true},
            "unicode": "über ✓",
        }),
        files: files
            .iter()
            .enumerate()
            .map(|(i, f)| FileRecord {
                filename: (*f).to_owned(),
                sha256: format!("{:064x}", i + 1),
                size: 1000 + i as u64,
                signature: None,
                signature_type: None,
            })
            .collect(),
    }
}

fn new(registry: &str, v: &VersionRecord, tags: &[&str]) -> NewVersion {
    NewVersion {
        registry: registry.to_owned(),
        version: v.clone(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
        .collect()
}

fn names(hits: &[PackageSummary]) -> Vec<&str> {
    hits.iter().map(|h| h.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Cases

async fn publish_and_read_back(index: &dyn Index, reg: &str) {
    assert!(!index.package_exists(reg, "pkg").await.unwrap());
    assert!(index.package(reg, "pkg").await.unwrap().is_none());
    assert!(index.version(reg, "pkg", "1.0.0").await.unwrap().is_none());

    let v1 = version("pkg", "1.0.0", t(10), &["pkg-1.0.0.tgz", "pkg-1.0.0.sig"]);
    let mut v2 = version("pkg", "1.1.0", t(20), &["pkg-1.1.0.tgz"]);
    v2.publisher = None;
    v2.deprecated = Some("use 2.x".to_owned());
    v2.yanked = true;
    index.publish(&new(reg, &v1, &["latest"])).await.unwrap();
    index
        .publish(&new(reg, &v2, &["latest", "next"]))
        .await
        .unwrap();
    // Published later, but older: versions are ordered by publish time.
    let v0 = version("pkg", "0.9.0", t(5), &[]);
    index.publish(&new(reg, &v0, &[])).await.unwrap();
    // Same publish time as 1.1.0: insertion order breaks the tie.
    let v3 = version("pkg", "1.1.1", t(20), &["pkg-1.1.1.tgz"]);
    index.publish(&new(reg, &v3, &[])).await.unwrap();

    assert!(index.package_exists(reg, "pkg").await.unwrap());
    assert!(!index.package_exists(reg, "PKG").await.unwrap());
    let pkg = index.package(reg, "pkg").await.unwrap().unwrap();
    assert_eq!(pkg.record.name, "pkg");
    assert_eq!(pkg.record.created_at, t(10));
    assert_eq!(pkg.record.updated_at, t(20));
    assert_eq!(pkg.versions, vec![v0, v1.clone(), v2.clone(), v3]);
    assert_eq!(pkg.tags, tags(&[("latest", "1.1.0"), ("next", "1.1.0")]));
    assert_eq!(index.tags(reg, "pkg").await.unwrap(), pkg.tags);

    assert_eq!(index.version(reg, "pkg", "1.0.0").await.unwrap(), Some(v1));
    assert_eq!(index.version(reg, "pkg", "1.1.0").await.unwrap(), Some(v2));
    assert!(index.version(reg, "pkg", "9.9.9").await.unwrap().is_none());

    // Nanoseconds are truncated to the stored microsecond precision.
    let mut fine = version(
        "fine",
        "1.0.0",
        t(1) + chrono::Duration::nanoseconds(789),
        &[],
    );
    index.publish(&new(reg, &fine, &[])).await.unwrap();
    fine.published_at = t(1);
    assert_eq!(
        index.version(reg, "fine", "1.0.0").await.unwrap(),
        Some(fine)
    );
}

async fn duplicate_publish_conflicts(index: &dyn Index, reg: &str) {
    let v = version("dup", "1.0.0", t(10), &["dup-1.0.0.tgz"]);
    index.publish(&new(reg, &v, &["latest"])).await.unwrap();
    let before = index.package(reg, "dup").await.unwrap().unwrap();

    let mut again = version("dup", "1.0.0", t(30), &["other.tgz"]);
    again.metadata = json!({"changed": true});
    let err = index
        .publish(&new(reg, &again, &["latest", "beta"]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Conflict("dup@1.0.0 is already published".to_owned())
    );

    let after = index.package(reg, "dup").await.unwrap().unwrap();
    assert_eq!(after.versions, before.versions);
    assert_eq!(after.tags, before.tags);
    assert_eq!(after.record, before.record);
    // The other file name was not registered by the failed publish.
    index
        .publish(&new(
            reg,
            &version("dup", "2.0.0", t(40), &["other.tgz"]),
            &[],
        ))
        .await
        .unwrap();
}

async fn concurrent_duplicate_publish(index: &dyn Index, reg: &str) {
    let v = version("race", "1.0.0", t(10), &["race-1.0.0.tgz"]);
    let attempt = new(reg, &v, &["latest"]);
    let results = join_all((0..8).map(|_| index.publish(&attempt))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in results.into_iter().filter(Result::is_err) {
        assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    }
    // Different versions in parallel all succeed.
    let versions: Vec<_> = (0..8)
        .map(|i| {
            new(
                reg,
                &version("race", &format!("2.0.{i}"), t(20 + i), &[]),
                &[],
            )
        })
        .collect();
    for r in join_all(versions.iter().map(|n| index.publish(n))).await {
        r.unwrap();
    }
    assert_eq!(
        index
            .package(reg, "race")
            .await
            .unwrap()
            .unwrap()
            .versions
            .len(),
        9
    );
}

async fn publish_is_atomic(index: &dyn Index, reg: &str) {
    // The second file repeats the first: nothing of the version may remain.
    let bad = version("atom", "1.0.0", t(10), &["atom.tgz", "atom.tgz"]);
    let err = index
        .publish(&new(reg, &bad, &["latest"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(!index.package_exists(reg, "atom").await.unwrap());
    assert!(index.version(reg, "atom", "1.0.0").await.unwrap().is_none());
    assert!(index.tags(reg, "atom").await.unwrap().is_empty());

    // On an existing package: the second file clashes with a file of another version.
    let good = version("atom", "1.0.0", t(10), &["atom-1.tgz"]);
    index.publish(&new(reg, &good, &["latest"])).await.unwrap();
    let before = index.package(reg, "atom").await.unwrap().unwrap();
    let clash = version("atom", "2.0.0", t(20), &["atom-2.tgz", "atom-1.tgz"]);
    let err = index
        .publish(&new(reg, &clash, &["latest"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let after = index.package(reg, "atom").await.unwrap().unwrap();
    assert_eq!(after.versions, before.versions);
    assert_eq!(after.tags, tags(&[("latest", "1.0.0")]));
    assert_eq!(after.record, before.record);
    // atom-2.tgz was rolled back with the rest.
    let retry = version("atom", "2.0.0", t(20), &["atom-2.tgz"]);
    index.publish(&new(reg, &retry, &["latest"])).await.unwrap();
    assert_eq!(
        index.tags(reg, "atom").await.unwrap(),
        tags(&[("latest", "2.0.0")])
    );
}

async fn yank_and_deprecate(index: &dyn Index, reg: &str) {
    let v = version("yd", "1.0.0", t(10), &[]);
    index.publish(&new(reg, &v, &[])).await.unwrap();

    assert!(index.set_yanked(reg, "yd", "1.0.0", true).await.unwrap());
    assert!(
        index
            .version(reg, "yd", "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .yanked
    );
    let updated = index
        .package(reg, "yd")
        .await
        .unwrap()
        .unwrap()
        .record
        .updated_at;
    assert!(updated > t(10), "yank bumps updated_at");
    assert!(index.set_yanked(reg, "yd", "1.0.0", false).await.unwrap());
    assert!(
        !index
            .version(reg, "yd", "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .yanked
    );
    assert!(!index.set_yanked(reg, "yd", "2.0.0", true).await.unwrap());
    assert!(!index.set_yanked(reg, "nope", "1.0.0", true).await.unwrap());

    assert!(
        index
            .set_deprecated(reg, "yd", "1.0.0", Some("use yd2"))
            .await
            .unwrap()
    );
    let got = index.version(reg, "yd", "1.0.0").await.unwrap().unwrap();
    assert_eq!(got.deprecated.as_deref(), Some("use yd2"));
    assert!(
        index
            .set_deprecated(reg, "yd", "1.0.0", None)
            .await
            .unwrap()
    );
    assert_eq!(
        index
            .version(reg, "yd", "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .deprecated,
        None
    );
    assert!(
        !index
            .set_deprecated(reg, "yd", "2.0.0", Some("x"))
            .await
            .unwrap()
    );

    // Nothing else changed.
    let mut got = index.version(reg, "yd", "1.0.0").await.unwrap().unwrap();
    got.yanked = false;
    assert_eq!(got, v);
}

async fn tag_management(index: &dyn Index, reg: &str) {
    index
        .publish(&new(reg, &version("tg", "1.0.0", t(10), &[]), &["latest"]))
        .await
        .unwrap();
    index
        .publish(&new(reg, &version("tg", "2.0.0", t(20), &[]), &[]))
        .await
        .unwrap();

    assert!(index.set_tag(reg, "tg", "beta", "2.0.0").await.unwrap());
    assert!(index.set_tag(reg, "tg", "latest", "2.0.0").await.unwrap());
    assert_eq!(
        index.tags(reg, "tg").await.unwrap(),
        tags(&[("beta", "2.0.0"), ("latest", "2.0.0")])
    );
    assert!(!index.set_tag(reg, "tg", "beta", "3.0.0").await.unwrap());
    assert!(!index.set_tag(reg, "tg", "new", "3.0.0").await.unwrap());
    assert!(
        !index
            .set_tag(reg, "missing", "latest", "1.0.0")
            .await
            .unwrap()
    );
    assert_eq!(
        index.tags(reg, "tg").await.unwrap(),
        tags(&[("beta", "2.0.0"), ("latest", "2.0.0")])
    );
    assert!(index.remove_tag(reg, "tg", "beta").await.unwrap());
    assert!(!index.remove_tag(reg, "tg", "beta").await.unwrap());
    assert!(!index.remove_tag(reg, "missing", "beta").await.unwrap());
    assert_eq!(
        index.tags(reg, "tg").await.unwrap(),
        tags(&[("latest", "2.0.0")])
    );
    assert!(index.tags(reg, "missing").await.unwrap().is_empty());
}

async fn delete_version_and_package(index: &dyn Index, reg: &str) {
    index
        .publish(&new(
            reg,
            &version("dv", "1.0.0", t(10), &["dv-1.tgz"]),
            &["beta"],
        ))
        .await
        .unwrap();
    index
        .publish(&new(
            reg,
            &version("dv", "2.0.0", t(20), &["dv-2.tgz"]),
            &["latest"],
        ))
        .await
        .unwrap();

    assert!(index.delete_version(reg, "dv", "1.0.0").await.unwrap());
    assert!(!index.delete_version(reg, "dv", "1.0.0").await.unwrap());
    assert!(!index.delete_version(reg, "nope", "1.0.0").await.unwrap());
    assert!(index.version(reg, "dv", "1.0.0").await.unwrap().is_none());
    assert_eq!(
        index.tags(reg, "dv").await.unwrap(),
        tags(&[("latest", "2.0.0")])
    );
    let pkg = index.package(reg, "dv").await.unwrap().unwrap();
    assert_eq!(pkg.versions.len(), 1);
    assert_eq!(pkg.record.created_at, t(10));
    // The file name of the deleted version is free again.
    index
        .publish(&new(
            reg,
            &version("dv", "1.0.1", t(30), &["dv-1.tgz"]),
            &[],
        ))
        .await
        .unwrap();

    assert!(index.delete_version(reg, "dv", "1.0.1").await.unwrap());
    assert!(index.delete_version(reg, "dv", "2.0.0").await.unwrap());
    assert!(!index.package_exists(reg, "dv").await.unwrap());
    assert!(index.package(reg, "dv").await.unwrap().is_none());
    assert!(index.tags(reg, "dv").await.unwrap().is_empty());
    assert!(index.search(reg, "dv", 0, 10).await.unwrap().is_empty());

    // Republishing after the last version went starts a new package.
    index
        .publish(&new(
            reg,
            &version("dv", "3.0.0", t(40), &["dv-3.tgz"]),
            &["latest"],
        ))
        .await
        .unwrap();
    assert_eq!(
        index
            .package(reg, "dv")
            .await
            .unwrap()
            .unwrap()
            .record
            .created_at,
        t(40)
    );

    assert!(index.delete_package(reg, "dv").await.unwrap());
    assert!(!index.delete_package(reg, "dv").await.unwrap());
    assert!(!index.package_exists(reg, "dv").await.unwrap());
    assert!(index.tags(reg, "dv").await.unwrap().is_empty());
    assert!(index.version(reg, "dv", "3.0.0").await.unwrap().is_none());
    index
        .publish(&new(
            reg,
            &version("dv", "3.0.0", t(50), &["dv-3.tgz"]),
            &[],
        ))
        .await
        .unwrap();
}

async fn search(index: &dyn Index, reg: &str) {
    assert!(index.search(reg, "", 0, 10).await.unwrap().is_empty());
    let names_in_order = [
        "Left-Pad",
        "left_pad",
        "leftXpad",
        "right-pad",
        "100%done",
        "1000done",
    ];
    for (i, name) in (0_i64..).zip(names_in_order) {
        index
            .publish(&new(
                reg,
                &version(name, "1.0.0", t(10 * (i + 1)), &[]),
                &[],
            ))
            .await
            .unwrap();
    }
    // A later upload of an older version does not become the latest.
    let mut newest = version("right-pad", "2.0.0", t(45), &[]);
    newest.metadata = json!({"latest": true});
    index.publish(&new(reg, &newest, &[])).await.unwrap();
    index
        .publish(&new(reg, &version("right-pad", "0.1.0", t(1), &[]), &[]))
        .await
        .unwrap();

    let hits = index.search(reg, "left", 0, 10).await.unwrap();
    assert_eq!(names(&hits), ["leftXpad", "left_pad", "Left-Pad"]);
    let hits = index.search(reg, "LEFT-", 0, 10).await.unwrap();
    assert_eq!(names(&hits), ["Left-Pad"]);
    let hits = index.search(reg, "_", 0, 10).await.unwrap();
    assert_eq!(names(&hits), ["left_pad"], "`_` is literal");
    let hits = index.search(reg, "%", 0, 10).await.unwrap();
    assert_eq!(names(&hits), ["100%done"], "`%` is literal");
    let hits = index.search(reg, "\\", 0, 10).await.unwrap();
    assert!(hits.is_empty());
    assert!(index.search(reg, "zzz", 0, 10).await.unwrap().is_empty());

    let all = index.search(reg, "", 0, 100).await.unwrap();
    assert_eq!(
        names(&all),
        [
            "1000done",
            "100%done",
            "right-pad",
            "leftXpad",
            "left_pad",
            "Left-Pad"
        ]
    );
    let right = &all[2];
    assert_eq!(right.latest_version, "2.0.0");
    assert_eq!(right.metadata, json!({"latest": true}));
    // A backdated publish does not move updated_at backwards.
    assert_eq!(right.updated_at, t(45));
    assert_eq!(all[0].updated_at, t(60));
    assert_eq!(
        all[0].metadata,
        version("1000done", "1.0.0", t(60), &[]).metadata
    );

    let page = index.search(reg, "", 1, 2).await.unwrap();
    assert_eq!(names(&page), ["100%done", "right-pad"]);
    let page = index.search(reg, "pad", 3, 10).await.unwrap();
    assert_eq!(names(&page), ["Left-Pad"]);
    assert!(index.search(reg, "", 0, 0).await.unwrap().is_empty());
    assert!(index.search(reg, "", 50, 10).await.unwrap().is_empty());

    // Equal update times: by name.
    let reg2 = format!("{reg}-ties");
    for name in ["b-tie", "c-tie", "a-tie"] {
        index
            .publish(&new(&reg2, &version(name, "1.0.0", t(5), &[]), &[]))
            .await
            .unwrap();
    }
    let hits = index.search(&reg2, "TIE", 0, 10).await.unwrap();
    assert_eq!(names(&hits), ["a-tie", "b-tie", "c-tie"]);
}

async fn cached_documents_and_artifacts(index: &dyn Index, reg: &str) {
    assert!(index.cached_document(reg, "doc").await.unwrap().is_none());
    let doc = CachedDocument {
        sha256: "a".repeat(64),
        size: 1234,
        etag: Some("\"v1\"".to_owned()),
        last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_owned()),
        content_type: Some("application/json".to_owned()),
        upstream: 2,
        fetched_at: t(10),
    };
    index.put_cached_document(reg, "doc", &doc).await.unwrap();
    assert_eq!(
        index.cached_document(reg, "doc").await.unwrap(),
        Some(doc.clone())
    );

    let replaced = CachedDocument {
        sha256: "b".repeat(64),
        size: 0,
        etag: None,
        last_modified: None,
        content_type: None,
        upstream: u32::MAX,
        fetched_at: t(20),
    };
    index
        .put_cached_document(reg, "doc", &replaced)
        .await
        .unwrap();
    assert_eq!(
        index.cached_document(reg, "doc").await.unwrap(),
        Some(replaced.clone())
    );

    index
        .touch_cached_document(reg, "doc", t(30))
        .await
        .unwrap();
    let touched = index.cached_document(reg, "doc").await.unwrap().unwrap();
    assert_eq!(
        touched,
        CachedDocument {
            fetched_at: t(30),
            ..replaced
        }
    );
    index
        .touch_cached_document(reg, "missing", t(30))
        .await
        .unwrap();
    assert!(
        index
            .cached_document(reg, "missing")
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        index
            .cached_artifact(reg, "pkg/-/pkg-1.0.0.tgz")
            .await
            .unwrap()
            .is_none()
    );
    let art = CachedArtifact {
        sha256: "c".repeat(64),
        size: u64::from(u32::MAX) + 7,
        fetched_at: t(40),
    };
    index
        .put_cached_artifact(reg, "pkg/-/pkg-1.0.0.tgz", &art)
        .await
        .unwrap();
    assert_eq!(
        index
            .cached_artifact(reg, "pkg/-/pkg-1.0.0.tgz")
            .await
            .unwrap(),
        Some(art)
    );
    let art2 = CachedArtifact {
        sha256: "d".repeat(64),
        size: 1,
        fetched_at: t(50),
    };
    index
        .put_cached_artifact(reg, "pkg/-/pkg-1.0.0.tgz", &art2)
        .await
        .unwrap();
    assert_eq!(
        index
            .cached_artifact(reg, "pkg/-/pkg-1.0.0.tgz")
            .await
            .unwrap(),
        Some(art2)
    );
}

async fn registries_are_isolated(index: &dyn Index, reg: &str) {
    let (a, b) = (format!("{reg}-a"), format!("{reg}-b"));
    index
        .publish(&new(
            &a,
            &version("same", "1.0.0", t(10), &["same.tgz"]),
            &["latest"],
        ))
        .await
        .unwrap();
    assert!(!index.package_exists(&b, "same").await.unwrap());
    assert!(index.search(&b, "", 0, 10).await.unwrap().is_empty());
    assert!(!index.set_tag(&b, "same", "x", "1.0.0").await.unwrap());
    assert!(!index.set_yanked(&b, "same", "1.0.0", true).await.unwrap());
    assert!(!index.delete_version(&b, "same", "1.0.0").await.unwrap());

    // Same name, version and file name in another registry: no conflict.
    index
        .publish(&new(
            &b,
            &version("same", "1.0.0", t(20), &["same.tgz"]),
            &["beta"],
        ))
        .await
        .unwrap();
    assert!(index.delete_package(&b, "same").await.unwrap());
    let pkg = index.package(&a, "same").await.unwrap().unwrap();
    assert_eq!(pkg.versions.len(), 1);
    assert_eq!(pkg.tags, tags(&[("latest", "1.0.0")]));

    let art = CachedArtifact {
        sha256: "e".repeat(64),
        size: 3,
        fetched_at: t(10),
    };
    index.put_cached_artifact(&a, "k", &art).await.unwrap();
    assert!(index.cached_artifact(&b, "k").await.unwrap().is_none());
    let doc = CachedDocument {
        sha256: "f".repeat(64),
        size: 3,
        etag: None,
        last_modified: None,
        content_type: None,
        upstream: 0,
        fetched_at: t(10),
    };
    index.put_cached_document(&a, "k", &doc).await.unwrap();
    assert!(index.cached_document(&b, "k").await.unwrap().is_none());
    index.touch_cached_document(&b, "k", t(99)).await.unwrap();
    assert_eq!(index.cached_document(&a, "k").await.unwrap(), Some(doc));
}

async fn file_signatures(index: &dyn Index, reg: &str) {
    let mut v = version("signed", "1.0.0", t(10), &["signed.tgz", "signed.txt"]);
    v.files[0].signature = Some("c2lnbmF0dXJl".to_owned());
    v.files[0].signature_type = Some("ed25519".to_owned());
    // A signature without a type is stored as given.
    v.files[1].signature = Some("b3RoZXI=".to_owned());
    index.publish(&new(reg, &v, &[])).await.unwrap();
    let plain = version("signed", "2.0.0", t(20), &["signed-2.tgz"]);
    index.publish(&new(reg, &plain, &[])).await.unwrap();

    assert_eq!(
        index.version(reg, "signed", "1.0.0").await.unwrap(),
        Some(v.clone())
    );
    let pkg = index.package(reg, "signed").await.unwrap().unwrap();
    assert_eq!(pkg.versions, vec![v, plain]);
    assert_eq!(pkg.versions[1].files[0].signature, None);
    assert_eq!(pkg.versions[1].files[0].signature_type, None);
}

async fn add_files(index: &dyn Index, reg: &str) {
    let v = version("multi", "1.0.0", t(10), &["multi-1.0.0.tar.gz"]);
    index.publish(&new(reg, &v, &[])).await.unwrap();
    let wheel = FileRecord {
        filename: "multi-1.0.0-py3-none-any.whl".to_owned(),
        sha256: "a".repeat(64),
        size: 42,
        signature: Some("c2ln".to_owned()),
        signature_type: Some("ed25519".to_owned()),
    };
    assert!(index.add_file(reg, "multi", "1.0.0", &wheel).await.unwrap());
    let got = index.version(reg, "multi", "1.0.0").await.unwrap().unwrap();
    assert_eq!(got.files.len(), 2);
    assert_eq!(got.files[1], wheel, "appended after the existing files");
    // The same file name twice is a conflict and changes nothing.
    let dup = index.add_file(reg, "multi", "1.0.0", &wheel).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    // A file of another version with an existing name conflicts too (names are per package).
    let other = version("multi", "2.0.0", t(20), &["multi-2.0.0.tar.gz"]);
    index.publish(&new(reg, &other, &[])).await.unwrap();
    let clash = FileRecord {
        filename: "multi-1.0.0.tar.gz".to_owned(),
        ..wheel.clone()
    };
    assert!(matches!(
        index.add_file(reg, "multi", "2.0.0", &clash).await,
        Err(Error::Conflict(_))
    ));
    // A missing version: false, nothing stored.
    assert!(
        !index
            .add_file(
                reg,
                "multi",
                "9.9.9",
                &FileRecord {
                    filename: "x.whl".into(),
                    ..wheel.clone()
                }
            )
            .await
            .unwrap()
    );
    assert!(
        !index
            .add_file(
                reg,
                "nope",
                "1.0.0",
                &FileRecord {
                    filename: "y.whl".into(),
                    ..wheel
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(
        index
            .version(reg, "multi", "1.0.0")
            .await
            .unwrap()
            .unwrap()
            .files
            .len(),
        2
    );
    assert_eq!(
        index
            .version(reg, "multi", "2.0.0")
            .await
            .unwrap()
            .unwrap()
            .files
            .len(),
        1
    );
}

fn token(id: &str, created: i64, role: Role, groups: &[&str]) -> TokenRecord {
    TokenRecord {
        id: id.to_owned(),
        principal: format!("{id}-user"),
        secret_sha256: "9".repeat(64),
        role,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        description: Some(format!("token {id} ✓")),
        created_at: t(created),
        expires_at: Some(t(created + 86_400)),
        revoked_at: None,
        created_by: "admin".to_owned(),
    }
}

async fn tokens(index: &dyn Index, reg: &str) {
    // Tokens are hub-wide: this case owns the ids starting with its registry name.
    let mine = |list: Vec<TokenRecord>| -> Vec<TokenRecord> {
        list.into_iter().filter(|t| t.id.starts_with(reg)).collect()
    };
    let (a_id, b_id, c_id) = (format!("{reg}-a"), format!("{reg}-b"), format!("{reg}-c"));
    assert!(index.token(&a_id).await.unwrap().is_none());
    assert!(mine(index.list_tokens().await.unwrap()).is_empty());

    let a = token(&a_id, 10, Role::User, &["team-a", "team-b"]);
    let mut b = token(&b_id, 30, Role::Admin, &[]);
    b.description = None;
    b.expires_at = None;
    let c = token(&c_id, 20, Role::Anonymous, &["ünï"]);
    for tok in [&a, &b, &c] {
        index.create_token(tok).await.unwrap();
    }
    assert_eq!(index.token(&a_id).await.unwrap(), Some(a.clone()));
    assert_eq!(index.token(&b_id).await.unwrap(), Some(b.clone()));
    assert_eq!(index.token(&c_id).await.unwrap(), Some(c.clone()));
    assert!(index.token(&format!("{reg}-z")).await.unwrap().is_none());
    // Newest first.
    assert_eq!(
        mine(index.list_tokens().await.unwrap()),
        vec![b.clone(), c.clone(), a.clone()]
    );

    // A duplicate id conflicts and changes nothing.
    let mut dup = token(&a_id, 40, Role::Admin, &["x"]);
    dup.secret_sha256 = "0".repeat(64);
    let err = index.create_token(&dup).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(index.token(&a_id).await.unwrap(), Some(a.clone()));

    // Revocation: once, and only for existing tokens.
    assert!(index.revoke_token(&a_id, t(50)).await.unwrap());
    assert!(!index.revoke_token(&a_id, t(60)).await.unwrap());
    assert!(
        !index
            .revoke_token(&format!("{reg}-z"), t(60))
            .await
            .unwrap()
    );
    let revoked = index.token(&a_id).await.unwrap().unwrap();
    assert_eq!(
        revoked,
        TokenRecord {
            revoked_at: Some(t(50)),
            ..a
        }
    );
    // Revoked tokens are still listed.
    assert_eq!(
        mine(index.list_tokens().await.unwrap()),
        vec![b.clone(), c.clone(), revoked]
    );
    // A token created already revoked cannot be revoked again.
    let mut d = token(&format!("{reg}-d"), 5, Role::User, &[]);
    d.revoked_at = Some(t(6));
    index.create_token(&d).await.unwrap();
    assert!(!index.revoke_token(&d.id, t(70)).await.unwrap());
    let stored = index.token(&d.id).await.unwrap();
    assert_eq!(stored, Some(d));
}

async fn owners(index: &dyn Index, reg: &str) {
    let user = |n: &str| Owner::User(n.to_owned());
    let group = |n: &str| Owner::Group(n.to_owned());
    assert!(index.owners(reg, "owned").await.unwrap().is_empty());

    for owner in [user("bob"), group("team-a"), user("alice"), group("Team-Z")] {
        assert!(index.add_owner(reg, "owned", &owner).await.unwrap());
    }
    assert!(!index.add_owner(reg, "owned", &user("bob")).await.unwrap());
    // The same name as a user and as a group are different owners.
    assert!(index.add_owner(reg, "owned", &group("bob")).await.unwrap());
    // Sorted like `Owner`: users before groups, then names bytewise.
    assert_eq!(
        index.owners(reg, "owned").await.unwrap(),
        vec![
            user("alice"),
            user("bob"),
            group("Team-Z"),
            group("bob"),
            group("team-a")
        ]
    );

    // Scoped by package and registry; the package need not exist.
    assert!(index.owners(reg, "other").await.unwrap().is_empty());
    let reg2 = format!("{reg}-2");
    assert!(index.owners(&reg2, "owned").await.unwrap().is_empty());
    assert!(index.add_owner(&reg2, "owned", &user("bob")).await.unwrap());

    assert!(
        index
            .remove_owner(reg, "owned", &user("bob"))
            .await
            .unwrap()
    );
    assert!(
        !index
            .remove_owner(reg, "owned", &user("bob"))
            .await
            .unwrap()
    );
    assert!(
        !index
            .remove_owner(reg, "owned", &user("nobody"))
            .await
            .unwrap()
    );
    assert!(
        !index
            .remove_owner(reg, "other", &user("alice"))
            .await
            .unwrap()
    );
    assert_eq!(
        index.owners(reg, "owned").await.unwrap(),
        vec![
            user("alice"),
            group("Team-Z"),
            group("bob"),
            group("team-a")
        ]
    );
    assert_eq!(
        index.owners(&reg2, "owned").await.unwrap(),
        vec![user("bob")]
    );
}

/// The first-owner claim: atomic, once per name, and never over owners assigned ahead of
/// the first publish; the last owner cannot be removed.
async fn claims_and_last_owner(index: &dyn Index, reg: &str) {
    let user = |n: &str| Owner::User(n.to_owned());
    assert!(
        index
            .claim_package(reg, "new", &user("alice"))
            .await
            .unwrap()
    );
    assert!(!index.claim_package(reg, "new", &user("bob")).await.unwrap());
    assert!(
        !index
            .claim_package(reg, "new", &user("alice"))
            .await
            .unwrap()
    );
    assert_eq!(index.owners(reg, "new").await.unwrap(), vec![user("alice")]);

    // Owners assigned before the first publish keep the name.
    assert!(
        index
            .add_owner(reg, "reserved", &user("carol"))
            .await
            .unwrap()
    );
    assert!(
        !index
            .claim_package(reg, "reserved", &user("bob"))
            .await
            .unwrap()
    );
    assert_eq!(
        index.owners(reg, "reserved").await.unwrap(),
        vec![user("carol")]
    );

    // Racing first publishes: exactly one claim wins.
    let names: Vec<Owner> = (0..8).map(|i| user(&format!("racer-{i}"))).collect();
    let won = join_all(
        names
            .iter()
            .map(|o| index.claim_package(reg, "contested", o)),
    )
    .await;
    let winners = won.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
    assert_eq!(index.owners(reg, "contested").await.unwrap().len(), 1);

    // The last owner stays.
    assert!(
        !index
            .remove_owner(reg, "new", &user("alice"))
            .await
            .unwrap()
    );
    assert_eq!(index.owners(reg, "new").await.unwrap(), vec![user("alice")]);
    assert!(index.add_owner(reg, "new", &user("dave")).await.unwrap());
    assert!(
        index
            .remove_owner(reg, "new", &user("alice"))
            .await
            .unwrap()
    );
    assert_eq!(index.owners(reg, "new").await.unwrap(), vec![user("dave")]);
}

async fn namespaces(index: &dyn Index, reg: &str) {
    let ns = |registry: &str, prefix: &str, group: &str| Namespace {
        registry: registry.to_owned(),
        prefix: prefix.to_owned(),
        group: group.to_owned(),
    };
    assert!(index.namespaces(reg).await.unwrap().is_empty());

    assert!(index.add_namespace(&ns(reg, "team-b-", "b")).await.unwrap());
    assert!(
        index
            .add_namespace(&ns(reg, "@team-a/", "a"))
            .await
            .unwrap()
    );
    assert!(index.add_namespace(&ns(reg, "Zed-", "z")).await.unwrap());
    // Claimed already, by the same group or by another.
    assert!(
        !index
            .add_namespace(&ns(reg, "@team-a/", "a"))
            .await
            .unwrap()
    );
    assert!(
        !index
            .add_namespace(&ns(reg, "@team-a/", "other"))
            .await
            .unwrap()
    );
    // Sorted by prefix, bytewise.
    assert_eq!(
        index.namespaces(reg).await.unwrap(),
        vec![
            ns(reg, "@team-a/", "a"),
            ns(reg, "Zed-", "z"),
            ns(reg, "team-b-", "b")
        ]
    );

    // Another registry has its own prefixes.
    let reg2 = format!("{reg}-2");
    assert!(index.namespaces(&reg2).await.unwrap().is_empty());
    assert!(
        index
            .add_namespace(&ns(&reg2, "@team-a/", "other"))
            .await
            .unwrap()
    );

    assert!(index.remove_namespace(reg, "@team-a/").await.unwrap());
    assert!(!index.remove_namespace(reg, "@team-a/").await.unwrap());
    assert!(!index.remove_namespace(reg, "never-").await.unwrap());
    assert_eq!(
        index.namespaces(reg).await.unwrap(),
        vec![ns(reg, "Zed-", "z"), ns(reg, "team-b-", "b")]
    );
    assert_eq!(
        index.namespaces(&reg2).await.unwrap(),
        vec![ns(&reg2, "@team-a/", "other")]
    );
    // A released prefix can be claimed by another group.
    assert!(
        index
            .add_namespace(&ns(reg, "@team-a/", "c"))
            .await
            .unwrap()
    );
}

async fn visibility(index: &dyn Index, reg: &str) {
    assert_eq!(
        index.visibility(reg, "vis").await.unwrap(),
        Visibility::Public
    );
    assert!(index.restricted_packages(reg).await.unwrap().is_empty());

    // Before the first publish.
    index
        .set_visibility(reg, "vis", Visibility::Team)
        .await
        .unwrap();
    assert_eq!(
        index.visibility(reg, "vis").await.unwrap(),
        Visibility::Team
    );
    index
        .publish(&new(reg, &version("vis", "1.0.0", t(10), &[]), &[]))
        .await
        .unwrap();
    assert_eq!(
        index.visibility(reg, "vis").await.unwrap(),
        Visibility::Team
    );

    index
        .set_visibility(reg, "a-internal", Visibility::Internal)
        .await
        .unwrap();
    index
        .set_visibility(reg, "back", Visibility::Internal)
        .await
        .unwrap();
    index
        .set_visibility(reg, "back", Visibility::Public)
        .await
        .unwrap();
    index
        .set_visibility(reg, "open", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        index.visibility(reg, "back").await.unwrap(),
        Visibility::Public
    );
    assert_eq!(
        index.restricted_packages(reg).await.unwrap(),
        vec![
            ("a-internal".to_owned(), Visibility::Internal),
            ("vis".to_owned(), Visibility::Team)
        ]
    );

    // An admin setting: it survives the package's deletion.
    assert!(index.delete_package(reg, "vis").await.unwrap());
    assert_eq!(
        index.visibility(reg, "vis").await.unwrap(),
        Visibility::Team
    );

    // Scoped by registry.
    let reg2 = format!("{reg}-2");
    assert_eq!(
        index.visibility(&reg2, "vis").await.unwrap(),
        Visibility::Public
    );
    assert!(index.restricted_packages(&reg2).await.unwrap().is_empty());
}

fn block(id: &str, registry: &str, package: &str, versions: Option<&str>, at: i64) -> Block {
    Block {
        id: id.to_owned(),
        registry: registry.to_owned(),
        package: package.to_owned(),
        versions: versions.map(str::to_owned),
        reason: format!("blocked by {id}"),
        created_by: "admin".to_owned(),
        created_at: t(at),
    }
}

async fn blocks(index: &dyn Index, reg: &str) {
    let reg2 = format!("{reg}-2");
    let id = |n: u32| format!("{reg}-{n}");
    assert!(index.blocks_for(reg, "evil").await.unwrap().is_empty());
    assert!(index.list_blocks(Some(reg)).await.unwrap().is_empty());

    let whole = block(&id(0), reg, "evil", None, 30);
    let range = block(&id(2), reg, "evil", Some(">=2.0.0, <3"), 10);
    // Same time as `range`: the id breaks the tie.
    let exact = block(&id(1), reg, "evil", Some("1.0.0"), 10);
    let other = block(&id(3), reg, "other", None, 5);
    let elsewhere = block(&id(4), &reg2, "evil", None, 1);
    for b in [&whole, &range, &exact, &other, &elsewhere] {
        index.add_block(b).await.unwrap();
    }

    assert_eq!(
        index.blocks_for(reg, "evil").await.unwrap(),
        vec![exact.clone(), range.clone(), whole.clone()]
    );
    assert_eq!(
        index.blocks_for(reg, "other").await.unwrap(),
        vec![other.clone()]
    );
    assert!(index.blocks_for(reg, "fine").await.unwrap().is_empty());
    assert_eq!(
        index.list_blocks(Some(reg)).await.unwrap(),
        vec![other.clone(), exact.clone(), range.clone(), whole.clone()]
    );
    assert_eq!(
        index.list_blocks(Some(&reg2)).await.unwrap(),
        vec![elsewhere.clone()]
    );
    // Every registry (this case owns the registries starting with its name).
    let all: Vec<Block> = index
        .list_blocks(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.registry.starts_with(reg))
        .collect();
    assert_eq!(
        all,
        vec![
            elsewhere.clone(),
            other.clone(),
            exact.clone(),
            range.clone(),
            whole.clone()
        ]
    );

    // A duplicate id conflicts and changes nothing.
    let err = index
        .add_block(&block(&id(1), &reg2, "x", None, 99))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(index.blocks_for(&reg2, "x").await.unwrap().is_empty());

    assert!(index.remove_block(&id(1)).await.unwrap());
    assert!(!index.remove_block(&id(1)).await.unwrap());
    assert!(!index.remove_block(&id(99)).await.unwrap());
    assert_eq!(
        index.blocks_for(reg, "evil").await.unwrap(),
        vec![range, whole]
    );
}

async fn rate_counters(index: &dyn Index, reg: &str) {
    let key = format!("{reg}:alice");
    for expected in 1..=3 {
        assert_eq!(index.rate_hit(&key, t(60)).await.unwrap(), expected);
    }
    // Another key counts on its own.
    assert_eq!(
        index.rate_hit(&format!("{reg}:bob"), t(60)).await.unwrap(),
        1
    );
    // A new window starts again at 1.
    assert_eq!(index.rate_hit(&key, t(120)).await.unwrap(), 1);
    assert_eq!(index.rate_hit(&key, t(120)).await.unwrap(), 2);
    assert_eq!(
        index.rate_hit(&format!("{reg}:bob"), t(60)).await.unwrap(),
        2
    );

    // Concurrent hits are each counted once: every caller sees a different count.
    let burst = format!("{reg}:burst");
    let mut counts: Vec<u64> = join_all((0..20).map(|_| index.rate_hit(&burst, t(180))))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u64>>());
    assert_eq!(index.rate_hit(&burst, t(180)).await.unwrap(), 21);

    // The sweep deletes earlier windows of keys under its prefix, whoever they belong to,
    // and nothing else.
    let other = format!("{reg}x:alice");
    assert_eq!(index.rate_hit(&other, t(60)).await.unwrap(), 1);
    // Before 180 under the prefix: alice@120 and bob@60 (alice@60 went when she hit 120).
    assert_eq!(
        index.rate_sweep(&format!("{reg}:"), t(180)).await.unwrap(),
        2
    );
    assert_eq!(
        index.rate_hit(&format!("{reg}:bob"), t(60)).await.unwrap(),
        1,
        "swept"
    );
    assert_eq!(
        index.rate_hit(&burst, t(180)).await.unwrap(),
        22,
        "current window kept"
    );
    assert_eq!(
        index.rate_hit(&other, t(60)).await.unwrap(),
        2,
        "other prefix kept"
    );
    // `_` and `%` in a prefix are literal.
    assert_eq!(index.rate_sweep("r_%", t(1_000)).await.unwrap(), 0);
}

async fn usage(index: &dyn Index, reg: &str) {
    assert_eq!(index.usage(reg, "alice").await.unwrap(), Usage::default());

    let by = |who: &str, mut v: VersionRecord| {
        v.publisher = Some(who.to_owned());
        v
    };
    // alice: 1000 + 1001, then 1000, on one package; a second package without files.
    let versions = [
        by(
            "alice",
            version("u1", "1.0.0", t(10), &["u1-1.tgz", "u1-1.sig"]),
        ),
        by("alice", version("u1", "2.0.0", t(20), &["u1-2.tgz"])),
        by("alice", version("u3", "1.0.0", t(30), &[])),
        // bob: 1000 + 1001 + 1002 on u2, and 1000 on alice's u1.
        by("bob", version("u2", "1.0.0", t(40), &["a", "b", "c"])),
        by("bob", version("u1", "3.0.0", t(50), &["u1-3.tgz"])),
    ];
    for v in &versions {
        index.publish(&new(reg, v, &[])).await.unwrap();
    }
    let mut anonymous = version("u4", "1.0.0", t(60), &["u4.tgz"]);
    anonymous.publisher = None;
    index.publish(&new(reg, &anonymous, &[])).await.unwrap();

    assert_eq!(
        index.usage(reg, "alice").await.unwrap(),
        Usage {
            bytes: 3001,
            packages: 2
        }
    );
    assert_eq!(
        index.usage(reg, "bob").await.unwrap(),
        Usage {
            bytes: 4003,
            packages: 2
        }
    );
    assert_eq!(index.usage(reg, "carol").await.unwrap(), Usage::default());
    assert_eq!(
        index.usage(&format!("{reg}-2"), "alice").await.unwrap(),
        Usage::default()
    );

    // Deleted versions no longer count.
    assert!(index.delete_version(reg, "u1", "1.0.0").await.unwrap());
    assert_eq!(
        index.usage(reg, "alice").await.unwrap(),
        Usage {
            bytes: 1000,
            packages: 2
        }
    );
    assert!(index.delete_package(reg, "u1").await.unwrap());
    assert_eq!(
        index.usage(reg, "alice").await.unwrap(),
        Usage {
            bytes: 0,
            packages: 1
        }
    );
}

fn event(
    registry: &str,
    at: i64,
    action: &str,
    package: Option<&str>,
    version: Option<&str>,
    principal: &str,
    outcome: &str,
) -> AuditEvent {
    let denied = outcome == "deny";
    AuditEvent {
        at: t(at),
        registry: registry.to_owned(),
        action: action.to_owned(),
        package: package.map(str::to_owned),
        version: version.map(str::to_owned),
        principal: principal.to_owned(),
        outcome: outcome.to_owned(),
        rule: denied.then(|| "block".to_owned()),
        reason: denied.then(|| format!("{action} refused ✗")),
        client_ip: (principal != "anonymous").then(|| "192.0.2.7".to_owned()),
    }
}

async fn audit_log(index: &dyn Index, reg: &str) {
    let reg2 = format!("{reg}-2");
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut query = AuditQuery {
            registry: Some(reg.to_owned()),
            ..AuditQuery::default()
        };
        f(&mut query);
        query
    };
    assert!(index.query_audit(&q(&|_| {})).await.unwrap().is_empty());
    index.append_audit(&[]).await.unwrap();
    assert!(index.query_audit(&q(&|_| {})).await.unwrap().is_empty());

    let e = [
        event(
            reg,
            10,
            "download",
            Some("pkg"),
            Some("1.0.0"),
            "alice",
            "allow",
        ),
        event(
            reg,
            20,
            "publish",
            Some("pkg"),
            Some("2.0.0"),
            "alice",
            "allow",
        ),
        event(
            reg,
            20,
            "download",
            Some("pkg"),
            Some("2.0.0"),
            "anonymous",
            "deny",
        ),
        event(reg, 30, "yank", Some("other"), Some("1.0.0"), "bob", "deny"),
        event(reg, 40, "admin.block.add", None, None, "admin", "allow"),
    ];
    // Appended out of order, in two batches: results come back by time, then insertion.
    let late = event(
        reg,
        5,
        "download",
        Some("pkg"),
        Some("1.0.0"),
        "bob",
        "allow",
    );
    let elsewhere = event(
        &reg2,
        25,
        "download",
        Some("pkg"),
        Some("1.0.0"),
        "alice",
        "allow",
    );
    index
        .append_audit(&[e[0].clone(), e[1].clone(), e[2].clone(), elsewhere.clone()])
        .await
        .unwrap();
    index
        .append_audit(&[e[3].clone(), e[4].clone(), late.clone()])
        .await
        .unwrap();

    let all = vec![
        late.clone(),
        e[0].clone(),
        e[1].clone(),
        e[2].clone(),
        e[3].clone(),
        e[4].clone(),
    ];
    assert_eq!(index.query_audit(&q(&|_| {})).await.unwrap(), all);
    assert_eq!(
        index
            .query_audit(&q(&|q| q.registry = Some(reg2.clone())))
            .await
            .unwrap(),
        vec![elsewhere.clone()]
    );
    // Without any filter: every registry (this case owns those starting with its name).
    let everything: Vec<AuditEvent> = index
        .query_audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.registry.starts_with(reg))
        .collect();
    let mut expected = all.clone();
    expected.insert(4, elsewhere.clone());
    assert_eq!(everything, expected);

    // Each filter.
    let got = |query: AuditQuery| async move { index.query_audit(&query).await.unwrap() };
    assert_eq!(
        got(q(&|q| q.package = Some("pkg".to_owned()))).await,
        vec![late.clone(), e[0].clone(), e[1].clone(), e[2].clone()]
    );
    assert_eq!(
        got(q(&|q| {
            q.package = Some("pkg".to_owned());
            q.version = Some("2.0.0".to_owned());
        }))
        .await,
        vec![e[1].clone(), e[2].clone()]
    );
    assert_eq!(
        got(q(&|q| q.version = Some("1.0.0".to_owned()))).await,
        vec![late.clone(), e[0].clone(), e[3].clone()]
    );
    assert_eq!(
        got(q(&|q| q.principal = Some("alice".to_owned()))).await,
        vec![e[0].clone(), e[1].clone()]
    );
    assert_eq!(
        got(AuditQuery {
            principal: Some("alice".to_owned()),
            ..AuditQuery::default()
        })
        .await
        .into_iter()
        .filter(|e| e.registry.starts_with(reg))
        .collect::<Vec<_>>(),
        vec![e[0].clone(), e[1].clone(), elsewhere.clone()]
    );
    assert_eq!(
        got(q(&|q| q.action = Some("download".to_owned()))).await,
        vec![late.clone(), e[0].clone(), e[2].clone()]
    );
    assert_eq!(
        got(q(&|q| q.outcome = Some("deny".to_owned()))).await,
        vec![e[2].clone(), e[3].clone()]
    );
    assert_eq!(
        got(q(&|q| {
            q.action = Some("download".to_owned());
            q.outcome = Some("allow".to_owned());
            q.principal = Some("bob".to_owned());
        }))
        .await,
        vec![late.clone()]
    );
    assert!(
        got(q(&|q| q.principal = Some("nobody".to_owned())))
            .await
            .is_empty()
    );

    // Time window: `since` inclusive, `until` exclusive.
    assert_eq!(
        got(q(&|q| q.since = Some(t(20)))).await,
        vec![e[1].clone(), e[2].clone(), e[3].clone(), e[4].clone()]
    );
    assert_eq!(
        got(q(&|q| q.until = Some(t(20)))).await,
        vec![late.clone(), e[0].clone()]
    );
    assert_eq!(
        got(q(&|q| {
            q.since = Some(t(10));
            q.until = Some(t(30));
        }))
        .await,
        vec![e[0].clone(), e[1].clone(), e[2].clone()]
    );
    assert_eq!(
        got(q(&|q| {
            q.since = Some(t(20));
            q.until = Some(t(40));
            q.outcome = Some("deny".to_owned());
        }))
        .await,
        vec![e[2].clone(), e[3].clone()]
    );
    assert!(
        got(q(&|q| {
            q.since = Some(t(30));
            q.until = Some(t(30));
        }))
        .await
        .is_empty()
    );

    // Pages.
    assert_eq!(
        got(q(&|q| q.limit = Some(2))).await,
        vec![late.clone(), e[0].clone()]
    );
    assert_eq!(
        got(q(&|q| {
            q.limit = Some(2);
            q.offset = Some(2);
        }))
        .await,
        vec![e[1].clone(), e[2].clone()]
    );
    assert_eq!(
        got(q(&|q| q.offset = Some(4))).await,
        vec![e[3].clone(), e[4].clone()]
    );
    assert!(got(q(&|q| q.offset = Some(6))).await.is_empty());
    assert!(got(q(&|q| q.limit = Some(0))).await.is_empty());
    assert_eq!(got(q(&|q| q.limit = Some(u32::MAX))).await, all);

    // The default limit is 1000.
    let bulk_reg = format!("{reg}-bulk");
    let bulk: Vec<AuditEvent> = (0..1001)
        .map(|i| event(&bulk_reg, i, "download", Some("p"), None, "alice", "allow"))
        .collect();
    index.append_audit(&bulk).await.unwrap();
    let bulk_q = AuditQuery {
        registry: Some(bulk_reg.clone()),
        ..AuditQuery::default()
    };
    let page = index.query_audit(&bulk_q).await.unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page[..], bulk[..1000]);
    let rest = index
        .query_audit(&AuditQuery {
            offset: Some(1000),
            ..bulk_q.clone()
        })
        .await
        .unwrap();
    assert_eq!(rest, bulk[1000..]);
    let big = index
        .query_audit(&AuditQuery {
            limit: Some(50_000),
            ..bulk_q
        })
        .await
        .unwrap();
    assert_eq!(big, bulk);
}

// ---------------------------------------------------------------------------------------------
// Runner

type Case = for<'a> fn(&'a dyn Index, &'a str) -> BoxFuture<'a, ()>;

const CASES: &[(&str, Case)] = &[
    ("publish_and_read_back", |i, r| {
        Box::pin(publish_and_read_back(i, r))
    }),
    ("duplicate_publish_conflicts", |i, r| {
        Box::pin(duplicate_publish_conflicts(i, r))
    }),
    ("concurrent_duplicate_publish", |i, r| {
        Box::pin(concurrent_duplicate_publish(i, r))
    }),
    ("publish_is_atomic", |i, r| {
        Box::pin(publish_is_atomic(i, r))
    }),
    ("yank_and_deprecate", |i, r| {
        Box::pin(yank_and_deprecate(i, r))
    }),
    ("tag_management", |i, r| Box::pin(tag_management(i, r))),
    ("delete_version_and_package", |i, r| {
        Box::pin(delete_version_and_package(i, r))
    }),
    ("search", |i, r| Box::pin(search(i, r))),
    ("cached_documents_and_artifacts", |i, r| {
        Box::pin(cached_documents_and_artifacts(i, r))
    }),
    ("registries_are_isolated", |i, r| {
        Box::pin(registries_are_isolated(i, r))
    }),
    ("file_signatures", |i, r| Box::pin(file_signatures(i, r))),
    ("add_files", |i, r| Box::pin(add_files(i, r))),
    ("tokens", |i, r| Box::pin(tokens(i, r))),
    ("owners", |i, r| Box::pin(owners(i, r))),
    ("claims_and_last_owner", |i, r| {
        Box::pin(claims_and_last_owner(i, r))
    }),
    ("namespaces", |i, r| Box::pin(namespaces(i, r))),
    ("visibility", |i, r| Box::pin(visibility(i, r))),
    ("blocks", |i, r| Box::pin(blocks(i, r))),
    ("rate_counters", |i, r| Box::pin(rate_counters(i, r))),
    ("usage", |i, r| Box::pin(usage(i, r))),
    ("audit_log", |i, r| Box::pin(audit_log(i, r))),
    ("referenced_blobs", |i, r| Box::pin(referenced_blobs(i, r))),
];

/// Two indexes on one database (two replicas): what one caches, the other's writes clear.
async fn replicas_see_each_others_writes(writer: &SqlIndex, reader: &SqlIndex) {
    let reg = "replicas";
    // Warm the reader's cache with the state before the writes.
    assert!(reader.blocks_for(reg, "pkg").await.unwrap().is_empty());
    assert_eq!(
        reader.visibility(reg, "pkg").await.unwrap(),
        Visibility::Public
    );
    assert!(reader.namespaces(reg).await.unwrap().is_empty());
    assert!(!reader.package_exists(reg, "pkg").await.unwrap());

    writer
        .add_block(&block("replica-block", reg, "pkg", None, 1))
        .await
        .unwrap();
    writer
        .set_visibility(reg, "pkg", Visibility::Internal)
        .await
        .unwrap();
    writer
        .add_namespace(&Namespace {
            registry: reg.to_owned(),
            prefix: "@team/".to_owned(),
            group: "team".to_owned(),
        })
        .await
        .unwrap();
    writer
        .publish(&new(reg, &version("pkg", "1.0.0", t(1), &[]), &[]))
        .await
        .unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = (
            reader.blocks_for(reg, "pkg").await.unwrap().len(),
            reader.visibility(reg, "pkg").await.unwrap(),
            reader.namespaces(reg).await.unwrap().len(),
            reader.package_exists(reg, "pkg").await.unwrap(),
        );
        if seen == (1, Visibility::Internal, 1, true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica still serves its cached state: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every blob a file, cached document or cached artifact refers to is listed (across
/// registries); an unpublished version's file no longer is.
async fn referenced_blobs(index: &dyn Index, reg: &str) {
    let (file, doc, artifact, other) = (
        "e1".repeat(32),
        "e2".repeat(32),
        "e3".repeat(32),
        "e4".repeat(32),
    );
    let mut v = version("refs", "1.0.0", t(1), &["refs-1.0.0.tgz"]);
    v.files[0].sha256 = file.clone();
    index.publish(&new(reg, &v, &[])).await.unwrap();
    index
        .put_cached_document(
            reg,
            "refs-doc",
            &CachedDocument {
                sha256: doc.clone(),
                size: 1,
                etag: None,
                last_modified: None,
                content_type: None,
                upstream: 0,
                fetched_at: t(1),
            },
        )
        .await
        .unwrap();
    index
        .put_cached_artifact(
            reg,
            "refs-artifact",
            &CachedArtifact {
                sha256: artifact.clone(),
                size: 1,
                fetched_at: t(1),
            },
        )
        .await
        .unwrap();
    let refs = index.referenced_blobs().await.unwrap();
    for sha in [&file, &doc, &artifact] {
        assert!(refs.contains(sha.as_str()), "{sha} is referenced");
    }
    assert!(!refs.contains(other.as_str()));
    assert!(index.delete_package(reg, "refs").await.unwrap());
    let refs = index.referenced_blobs().await.unwrap();
    assert!(!refs.contains(file.as_str()), "unpublished: an orphan now");
    assert!(refs.contains(doc.as_str()) && refs.contains(artifact.as_str()));
}

/// Runs every case, each in its own registry, and returns how many ran.
/// Two replicas on one PostgreSQL database contend for leases: one holds a lease at a
/// time, its holder renews it, it passes on when it lapses or is released; on SQLite (one
/// process) every lease is `Local`.
async fn replicas_share_leases(one: &SqlIndex, two: &SqlIndex) {
    use batlehub_core::store::Lease;
    use chrono::TimeZone as _;
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    async fn lease(
        index: &SqlIndex,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Lease {
        index
            .try_lease("download:r", "pkg/-/pkg-1.0.0.tgz", holder, now, until)
            .await
            .unwrap()
    }
    assert_eq!(lease(one, "a", secs(0), secs(15)).await, Lease::Taken);
    assert_eq!(lease(two, "b", secs(1), secs(16)).await, Lease::Busy);
    // The holder renews; the other still waits, even past the first lease's end.
    assert_eq!(lease(one, "a", secs(5), secs(20)).await, Lease::Taken);
    assert_eq!(lease(two, "b", secs(16), secs(31)).await, Lease::Busy);
    // Another name, another scope: independent.
    assert_eq!(
        two.try_lease("download:r", "other", "b", secs(16), secs(31))
            .await
            .unwrap(),
        Lease::Taken
    );
    assert_eq!(
        two.try_lease("sweep", "pkg/-/pkg-1.0.0.tgz", "b", secs(16), secs(31))
            .await
            .unwrap(),
        Lease::Taken
    );
    // Lapsed (its holder died): taken over.
    assert_eq!(lease(two, "b", secs(21), secs(36)).await, Lease::Taken);
    assert_eq!(lease(one, "a", secs(22), secs(37)).await, Lease::Busy);
    // Released: free at once; a release by a non-holder does nothing.
    one.release_lease("download:r", "pkg/-/pkg-1.0.0.tgz", "a")
        .await
        .unwrap();
    assert_eq!(lease(one, "a", secs(23), secs(38)).await, Lease::Busy);
    two.release_lease("download:r", "pkg/-/pkg-1.0.0.tgz", "b")
        .await
        .unwrap();
    assert_eq!(lease(one, "a", secs(24), secs(39)).await, Lease::Taken);
    // Racing for a free lease: exactly one of many wins.
    let name = "raced";
    let tries = (0..20).map(|i| {
        let index = if i % 2 == 0 { one } else { two };
        async move {
            index
                .try_lease("download:r", name, &format!("h{i}"), secs(0), secs(15))
                .await
                .unwrap()
        }
    });
    let results = futures::future::join_all(tries).await;
    assert_eq!(
        results.iter().filter(|l| **l == Lease::Taken).count(),
        1,
        "{results:?}"
    );
}

async fn run_suite(backend: &str, index: &dyn Index) -> usize {
    for (name, case) in CASES {
        eprintln!("{backend}: {name}");
        case(index, name).await;
    }
    eprintln!("{backend}: {} index conformance cases passed", CASES.len());
    CASES.len()
}

#[tokio::test]
async fn sqlite_in_memory() {
    let index = SqlIndex::sqlite_in_memory().await.unwrap();
    assert_eq!(index.dialect(), "sqlite");
    run_suite("sqlite (memory)", &index).await;
    let now = chrono::Utc::now();
    for _ in 0..2 {
        assert_eq!(
            index
                .try_lease("sweep", "blobs", "h", now, now)
                .await
                .unwrap(),
            batlehub_core::store::Lease::Local
        );
    }
    // Each in-memory index is private.
    let other = SqlIndex::sqlite_in_memory().await.unwrap();
    assert!(
        !other
            .package_exists("publish_and_read_back", "pkg")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqlIndex::sqlite_file(&path).await.unwrap();
    run_suite("sqlite (file)", &index).await;
    assert!(
        dir.path().join("index.db-wal").exists(),
        "WAL journal in use"
    );
    index.close().await;

    // Reopening by URL re-runs the (already applied) migrations and sees the data.
    let url = format!("sqlite://{}", path.display());
    let reopened = SqlIndex::connect(&url).await.unwrap();
    assert!(
        reopened
            .package_exists("publish_and_read_back", "pkg")
            .await
            .unwrap()
    );
    reopened.close().await;
}

#[tokio::test]
async fn sqlite_upgrade_from_0001_keeps_the_data() {
    use batlehub_storage::sqlx::SqlSafeStr;
    use batlehub_storage::sqlx::migrate::{Migration, MigrationType, Migrator};
    use batlehub_storage::sqlx::sqlite::SqlitePoolOptions;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    // A database as the first release left it: only 0001, with a published file.
    let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
    let mut v1 = Migrator::with_migrations(vec![Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0001_init.sql").into_sql_str(),
        false,
    )]);
    v1.dangerous_set_table_name("batlehub_migrations");
    v1.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO packages VALUES ('npm', 'old', 'old', 1, 1)",
        "INSERT INTO versions (registry, package, version, published_at, metadata) \
         VALUES ('npm', 'old', '1.0.0', 1, '{}')",
        "INSERT INTO files VALUES ('npm', 'old', '1.0.0', 'old.tgz', 0, 'ab', 7)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let index = SqlIndex::connect(&url).await.unwrap();
    let got = index.version("npm", "old", "1.0.0").await.unwrap().unwrap();
    assert_eq!(
        got.files,
        vec![FileRecord {
            filename: "old.tgz".to_owned(),
            sha256: "ab".to_owned(),
            size: 7,
            signature: None,
            signature_type: None,
        }]
    );
    assert_eq!(
        index.visibility("npm", "old").await.unwrap(),
        Visibility::Public
    );
    index.close().await;
}

#[tokio::test]
async fn connect_picks_the_backend_from_the_scheme() {
    let index = SqlIndex::connect("sqlite::memory:").await.unwrap();
    assert_eq!(index.dialect(), "sqlite");
    let err = SqlIndex::connect("mysql://user:secret@host/db")
        .await
        .unwrap_err();
    assert!(matches!(&err, StorageError::UnsupportedUrl { scheme } if scheme == "mysql"));
    assert!(!err.to_string().contains("secret"));
}

#[tokio::test]
async fn postgres() {
    let Ok(url) = std::env::var("BATLEHUB_TEST_POSTGRES_URL") else {
        eprintln!("skipping PostgreSQL index conformance: BATLEHUB_TEST_POSTGRES_URL is not set");
        return;
    };
    // A fresh schema per run keeps runs independent and leaves the database as found.
    let schema = format!("batlehub_test_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();

    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    // Run in a task so that the schema is dropped even when a case panics.
    let result = tokio::spawn(async move {
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .unwrap();
        let index = SqlIndex::from_pg_pool(pool).await.unwrap();
        assert_eq!(index.dialect(), "postgres");
        run_suite("postgres", &index).await;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .unwrap();
        let replica = SqlIndex::from_pg_pool(pool).await.unwrap();
        replicas_see_each_others_writes(&index, &replica).await;
        replicas_share_leases(&index, &replica).await;
        replica.close().await;
        index.close().await;
        // Migrations are idempotent.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let again = SqlIndex::from_pg_pool(pool).await.unwrap();
        assert!(
            again
                .package_exists("publish_and_read_back", "pkg")
                .await
                .unwrap()
        );
        again.close().await;
    })
    .await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
