//! What this crate writes, read back by the real Ruby and RubyGems (Debian's `ruby`; `.ci/run`
//! installs it): quick gemspecs load as `Gem::Specification`s with their name, version,
//! platform and dependencies, and the full index loads as `[name, Gem::Version, platform]`
//! tuples.

use std::process::Command;

use batlehub_rubygems::{gemspec, index};

const SPEC: &str = r#"--- !ruby/object:Gem::Specification
name: demo-gem
version: !ruby/object:Gem::Version
  version: 1.2.0
platform: x86_64-linux
authors:
- Jane Doe
dependencies:
- !ruby/object:Gem::Dependency
  name: rack
  requirement: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '2.0'
    - - "<"
      - !ruby/object:Gem::Version
        version: '4'
  type: :runtime
  prerelease: false
- !ruby/object:Gem::Dependency
  name: rake
  requirement: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '0'
  type: :development
  prerelease: false
licenses:
- MIT
metadata:
  source_code_uri: https://example.com/src
required_ruby_version: !ruby/object:Gem::Requirement
  requirements:
  - - ">="
    - !ruby/object:Gem::Version
      version: '2.7'
summary: A demo
"#;

fn ruby(script: &str, file: &std::path::Path) -> String {
    let out = Command::new("ruby")
        .arg("-e")
        .arg(script)
        .arg(file)
        .output()
        .expect("ruby runs (Debian's ruby; .ci/run installs it)");
    assert!(
        out.status.success(),
        "ruby failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn rubygems_loads_quick_gemspecs_and_the_full_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = gemspec::parse(SPEC).expect("spec");
    let rz = dir.path().join("demo-gem-1.2.0-x86_64-linux.gemspec.rz");
    std::fs::write(&rz, index::quick_spec(&spec, "2024-01-02")).expect("write");
    let got = ruby(
        "require 'rubygems'; s = Marshal.load(Gem::Util.inflate(File.binread(ARGV[0]))); \
         puts s.full_name; puts s.platform.to_s; puts s.summary; puts s.authors.inspect; \
         puts s.required_ruby_version.to_s; puts s.instance_variable_get(:@license).inspect; \
         puts s.metadata.inspect; \
         s.dependencies.sort_by(&:name).each { |d| puts \"#{d.name} #{d.type} #{d.requirement}\" }",
        &rz,
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "demo-gem-1.2.0-x86_64-linux",
            "x86_64-linux",
            "A demo",
            "[\"Jane Doe\"]",
            ">= 2.7",
            // RubyGems' `_load` keeps element 17 as `@license` (which `licenses` does not
            // read): what a quick gemspec carries, not what `licenses` answers.
            "[\"MIT\"]",
            "{\"source_code_uri\"=>\"https://example.com/src\"}",
            "rack runtime >= 2.0, < 4",
            "rake development >= 0",
        ]
    );

    let specs = dir.path().join("specs.4.8.gz");
    std::fs::write(
        &specs,
        index::specs_index(&[
            ("demo-gem".into(), "1.2.0".into(), "ruby".into()),
            ("demo-gem".into(), "1.2.0".into(), "java".into()),
        ]),
    )
    .expect("write");
    let got = ruby(
        "require 'rubygems'; Marshal.load(Gem::Util.gunzip(File.binread(ARGV[0]))).each { |n, v, p| puts \"#{n} #{v.class} #{v} #{p}\" }",
        &specs,
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "demo-gem Gem::Version 1.2.0 ruby",
            "demo-gem Gem::Version 1.2.0 java"
        ]
    );
}
