//! Fuzz targets for RubyGems' parsers of untrusted bytes: `.gem` archives, gemspec YAML,
//! `checksums.yaml`, file names and upstream `/info` lines (`PROPTEST_CASES` sets the length of a run).

use batlehub_test::fuzz::{mutated, mutated_str};
use proptest::prelude::*;

proptest! {
    #[test]
    fn gems(bytes in mutated(crate::package::tests::gem(crate::gemspec::DEMO, None))) {
        if let Ok(p) = crate::package::read(&bytes[..], crate::package::Limits::default()) {
            prop_assert!(crate::name::check_name(&p.spec.name).is_ok());
            prop_assert!(crate::name::check_version(&p.spec.version).is_ok());
        }
    }

    #[test]
    fn gemspecs(text in mutated_str(crate::gemspec::DEMO)) {
        if let Ok(spec) = crate::gemspec::parse(&text) {
            prop_assert!(crate::name::check_name(&spec.name).is_ok());
            prop_assert!(crate::name::check_platform(&spec.platform).is_ok());
        }
    }

    #[test]
    fn file_names(name in mutated_str("nokogiri-1.15.0-x86_64-linux")) {
        for (n, v, p) in crate::name::split_candidates(&name) {
            prop_assert_eq!(crate::name::full_name(n, v, p), name.clone());
        }
    }

    #[test]
    fn upstream_info_lines(line in mutated_str("1.2.0-x86_64-linux rack:< 4&>= 2.0|checksum:ab12,ruby:>= 2.7,created_at:2024-01-02T03:04:05Z")) {
        if let Some(parsed) = crate::wire::InfoLine::parse(&line) {
            prop_assert!(crate::name::check_version(&parsed.number).is_ok());
            prop_assert!(parsed.platform == "ruby" || crate::name::check_platform(&parsed.platform).is_ok());
        }
    }
}
