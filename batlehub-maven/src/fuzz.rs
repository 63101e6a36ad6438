//! Fuzz targets for Maven's parsers of untrusted bytes: POMs, `maven-metadata.xml`,
//! checksum files, versions, file names and request paths (`PROPTEST_CASES` sets the
//! length of a run).

use std::cmp::Ordering;

use batlehub_test::fuzz::{mutated, mutated_str};
use proptest::prelude::*;

use crate::checksum::Algo;

const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>2.0</version></parent>
  <artifactId>demo-lib</artifactId>
  <version>1.0-SNAPSHOT</version>
  <!-- a comment &amp; an entity -->
  <dependencies><dependency><groupId>a</groupId><artifactId>b</artifactId><version>[1,2)</version></dependency></dependencies>
</project>"#;

const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <groupId>org.example</groupId>
  <artifactId>demo-lib</artifactId>
  <versioning>
    <latest>1.1</latest>
    <release>1.1</release>
    <versions><version>1.0</version><version>1.1-rc-1</version><version>1.1</version></versions>
    <lastUpdated>20260102030405</lastUpdated>
  </versioning>
</metadata>"#;

proptest! {
    #[test]
    fn poms(xml in mutated(POM.as_bytes().to_vec())) {
        if let Ok(pom) = crate::wire::parse_pom(&xml) {
            prop_assert!(!pom.group.is_empty() && !pom.artifact.is_empty() && !pom.version.is_empty());
        }
    }

    #[test]
    fn metadata(xml in mutated(METADATA.as_bytes().to_vec())) {
        if let Ok(meta) = crate::wire::parse_metadata(&xml) {
            // What we render from parsed metadata parses back to the same versions.
            let mut versions = meta.versions.clone();
            versions.sort_by(|a, b| crate::version::order(a, b));
            let rendered = crate::wire::render_artifact_metadata(
                meta.group.as_deref().unwrap_or("g"),
                meta.artifact.as_deref().unwrap_or("a"),
                &versions,
                "20260102030405",
            );
            let again = crate::wire::parse_metadata(rendered.as_bytes());
            prop_assert_eq!(again.map(|m| m.versions).ok(), Some(versions));
        }
    }

    #[test]
    fn checksum_files(
        body in prop_oneof![
            mutated(b"0123456789abcdef0123456789abcdef01234567  demo-lib-1.0.jar\n".to_vec()),
            mutated(b"d41d8cd98f00b204e9800998ecf8427e".to_vec()),
        ],
        file in mutated_str("demo-lib-1.0.jar.sha256"),
    ) {
        for algo in [Algo::Md5, Algo::Sha1, Algo::Sha256, Algo::Sha512] {
            if let Ok(hex) = algo.parse_file(&body) {
                prop_assert!(hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
        let (base, _) = Algo::split(&file);
        prop_assert!(file.starts_with(base));
    }

    #[test]
    fn versions(
        a in prop_oneof![mutated_str("1.0.0-alpha-1"), mutated_str("2.0-SNAPSHOT"), any::<String>()],
        b in prop_oneof![mutated_str("1.0.0.RELEASE"), mutated_str("1.0-sp-1"), any::<String>()],
    ) {
        use crate::version::compare;
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse(), "{:?} vs {:?}", a, b);
        let _ = crate::name::check_version(&a);
    }

    #[test]
    fn file_names(
        file in prop_oneof![
            mutated_str("demo-lib-1.0-SNAPSHOT.jar"),
            mutated_str("demo-lib-1.0-20260102.030405-3-sources.jar.asc"),
        ],
        version in prop_oneof![Just("1.0-SNAPSHOT".to_owned()), mutated_str("1.0")],
    ) {
        if let Some(parsed) = crate::name::parse_file("demo-lib", &version, &file) {
            prop_assert!(!parsed.extension.is_empty());
            // The file name is rebuilt from its parts.
            let classifier = if parsed.classifier.is_empty() {
                String::new()
            } else {
                format!("-{}", parsed.classifier)
            };
            prop_assert_eq!(
                format!("demo-lib-{}{classifier}.{}", parsed.value(&version), parsed.extension),
                file
            );
        }
    }

    #[test]
    fn paths(path in prop_oneof![
        mutated_str("/org/example/demo-lib/1.0/demo-lib-1.0.jar"),
        mutated_str("/org/example/demo-lib/maven-metadata.xml.sha1"),
        mutated_str("/org/example/demo-lib/1.0-SNAPSHOT/maven-metadata.xml"),
    ]) {
        let _ = crate::routes::parse(&path);
    }
}
