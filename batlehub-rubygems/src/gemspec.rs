//! The gemspec inside a `.gem` (`metadata.gz`): the YAML `gem build` writes, read into what a
//! registry needs (name, version, platform, requirements, dependencies, descriptive fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::name::{check_name, check_platform, check_version};
use crate::yaml::{self, Node};

/// One constraint of a requirement: an operator and a version (`>= 2.0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// `=`, `!=`, `>`, `<`, `>=`, `<=` or `~>`.
    pub op: String,
    /// The version.
    pub version: String,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.version)
    }
}

/// Whether a dependency is needed at run time or only to develop the gem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    /// `:runtime`.
    Runtime,
    /// `:development`.
    Development,
}

/// A dependency of a gem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The gem depended on.
    pub name: String,
    /// Its constraints (all must hold); `>= 0` when unconstrained.
    pub requirement: Vec<Constraint>,
    /// Runtime or development.
    pub kind: DependencyKind,
}

/// What a registry reads from a gemspec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemSpec {
    /// The gem's name.
    pub name: String,
    /// Its version (normalized as RubyGems writes it).
    pub version: String,
    /// `ruby` for a pure gem, else the platform (`x86_64-linux`, `java`).
    pub platform: String,
    /// The one-line summary.
    pub summary: Option<String>,
    /// The longer description.
    pub description: Option<String>,
    /// Authors.
    pub authors: Vec<String>,
    /// SPDX license identifiers.
    pub licenses: Vec<String>,
    /// The home page.
    pub homepage: Option<String>,
    /// `metadata` (source_code_uri, changelog_uri, ...).
    pub metadata: BTreeMap<String, String>,
    /// `required_ruby_version`.
    pub required_ruby_version: Vec<Constraint>,
    /// `required_rubygems_version`.
    pub required_rubygems_version: Vec<Constraint>,
    /// Runtime and development dependencies.
    pub dependencies: Vec<Dependency>,
}

const OPS: &[&str] = &["=", "!=", ">", "<", ">=", "<=", "~>"];

/// Reads a gemspec from the YAML of a `.gem`'s `metadata.gz`.
///
/// # Errors
/// Why it is refused (not YAML `gem build` writes, a missing or invalid name, version or
/// platform, a malformed requirement).
pub fn parse(text: &str) -> Result<GemSpec, String> {
    let doc = yaml::parse(text)?;
    if doc.tag() != Some("ruby/object:Gem::Specification") {
        return Err("the metadata is not a Gem::Specification".into());
    }
    let name = doc
        .get("name")
        .and_then(Node::str)
        .ok_or("the gemspec has no name")?
        .to_owned();
    check_name(&name).map_err(|e| e.0)?;
    let version = version_of(doc.get("version").ok_or("the gemspec has no version")?)?;
    let platform = match doc.get("platform") {
        None => "ruby".to_owned(),
        Some(p) if p.tag() == Some("ruby/object:Gem::Platform") => {
            let part = |k: &str| p.get(k).and_then(Node::str).map(str::to_owned);
            [part("cpu"), part("os"), part("version")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("-")
        }
        Some(p) => p.str().unwrap_or("ruby").to_owned(),
    };
    check_platform(&platform).map_err(|e| e.0)?;
    let mut dependencies = Vec::new();
    for d in doc.get("dependencies").map(Node::items).unwrap_or_default() {
        if d.tag() != Some("ruby/object:Gem::Dependency") {
            return Err("a dependency is not a Gem::Dependency".into());
        }
        let dep_name = d
            .get("name")
            .and_then(Node::str)
            .ok_or("a dependency has no name")?
            .to_owned();
        check_name(&dep_name).map_err(|e| e.0)?;
        let requirement = match d
            .get("requirement")
            .or_else(|| d.get("version_requirements"))
        {
            Some(r) => requirement_of(r)?,
            None => vec![any()],
        };
        let kind = match d.get("type").and_then(Node::str) {
            Some(":development" | "development") => DependencyKind::Development,
            _ => DependencyKind::Runtime,
        };
        dependencies.push(Dependency {
            name: dep_name,
            requirement,
            kind,
        });
    }
    let text_of = |k: &str| doc.get(k).and_then(Node::str).map(str::to_owned);
    let list_of = |k: &str| -> Vec<String> {
        match doc.get(k) {
            Some(Node::Seq(items, _)) => items
                .iter()
                .filter_map(|i| i.str().map(str::to_owned))
                .collect(),
            Some(n) => n.str().map(|s| vec![s.to_owned()]).unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let metadata = match doc.get("metadata") {
        Some(Node::Map(entries, _)) => entries
            .iter()
            .filter_map(|(k, v)| v.str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let req = |k: &str| doc.get(k).map_or_else(|| Ok(vec![any()]), requirement_of);
    Ok(GemSpec {
        name,
        version,
        platform,
        summary: text_of("summary"),
        description: text_of("description"),
        authors: list_of("authors"),
        licenses: list_of("licenses"),
        homepage: text_of("homepage"),
        metadata,
        required_ruby_version: req("required_ruby_version")?,
        required_rubygems_version: req("required_rubygems_version")?,
        dependencies,
    })
}

fn any() -> Constraint {
    Constraint {
        op: ">=".into(),
        version: "0".into(),
    }
}

/// A `Gem::Version` (a mapping with `version:`), or a plain scalar.
fn version_of(node: &Node) -> Result<String, String> {
    let v = match node.tag() {
        Some("ruby/object:Gem::Version") => node.get("version").and_then(Node::str),
        _ => node.str(),
    }
    .ok_or("a version is empty")?;
    check_version(v).map_err(|e| e.0)?;
    Ok(v.to_owned())
}

/// A `Gem::Requirement`: `requirements:` of `[op, Gem::Version]` pairs.
fn requirement_of(node: &Node) -> Result<Vec<Constraint>, String> {
    if node.tag() != Some("ruby/object:Gem::Requirement") {
        return Err("a requirement is not a Gem::Requirement".into());
    }
    let mut out = Vec::new();
    for pair in node
        .get("requirements")
        .map(Node::items)
        .unwrap_or_default()
    {
        let [op, version] = pair.items() else {
            return Err("a requirement is not an [operator, version] pair".into());
        };
        let op = op.str().ok_or("a requirement has no operator")?;
        if !OPS.contains(&op) {
            return Err(format!("unknown requirement operator {op:?}"));
        }
        out.push(Constraint {
            op: op.to_owned(),
            version: version_of(version)?,
        });
    }
    if out.is_empty() {
        out.push(any());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) const DEMO: &str = r#"--- !ruby/object:Gem::Specification
name: demo-gem
version: !ruby/object:Gem::Version
  version: 1.2.0
platform: ruby
authors:
- Jane Doe
autorequire:
bindir: bin
cert_chain: []
date: 2024-01-02 00:00:00.000000000 Z
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
  version_requirements: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '2.0'
    - - "<"
      - !ruby/object:Gem::Version
        version: '4'
- !ruby/object:Gem::Dependency
  name: rake
  requirement: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '0'
  type: :development
  prerelease: false
  version_requirements: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '0'
description: Longer description
email:
- jane@example.com
executables: []
extensions: []
extra_rdoc_files: []
files:
- lib/demo.rb
homepage: https://example.com/demo
licenses:
- MIT
metadata:
  source_code_uri: https://example.com/src
post_install_message:
rdoc_options: []
require_paths:
- lib
required_ruby_version: !ruby/object:Gem::Requirement
  requirements:
  - - ">="
    - !ruby/object:Gem::Version
      version: '2.7'
required_rubygems_version: !ruby/object:Gem::Requirement
  requirements:
  - - ">="
    - !ruby/object:Gem::Version
      version: '0'
requirements: []
rubygems_version: 3.3.15
signing_key:
specification_version: 4
summary: A demo
test_files: []
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_gem_build_writes() {
        let spec = parse(DEMO).expect("valid");
        assert_eq!(spec.name, "demo-gem");
        assert_eq!(spec.version, "1.2.0");
        assert_eq!(spec.platform, "ruby");
        assert_eq!(spec.summary.as_deref(), Some("A demo"));
        assert_eq!(spec.authors, ["Jane Doe"]);
        assert_eq!(spec.licenses, ["MIT"]);
        assert_eq!(spec.metadata["source_code_uri"], "https://example.com/src");
        assert_eq!(
            spec.required_ruby_version
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [">= 2.7"]
        );
        assert_eq!(spec.dependencies.len(), 2);
        assert_eq!(spec.dependencies[0].name, "rack");
        assert_eq!(spec.dependencies[0].kind, DependencyKind::Runtime);
        assert_eq!(
            spec.dependencies[0]
                .requirement
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [">= 2.0", "< 4"]
        );
        assert_eq!(spec.dependencies[1].kind, DependencyKind::Development);
    }

    #[test]
    fn refuses_bad_specs() {
        for (yaml, why) in [
            (
                DEMO.replace("name: demo-gem", "name: ../evil"),
                "invalid gem name",
            ),
            (
                DEMO.replace("version: 1.2.0", "version: 1.2-beta"),
                "invalid gem version",
            ),
            (
                DEMO.replace("platform: ruby", "platform: ../x"),
                "invalid gem platform",
            ),
            (
                DEMO.replace("- - \"<\"", "- - \"=~\""),
                "unknown requirement operator",
            ),
            (
                DEMO.replacen("--- !ruby/object:Gem::Specification", "---", 1),
                "not a Gem::Specification",
            ),
            (
                DEMO.replace("summary: A demo", "summary: !ruby/object:Gem::Installer {}"),
                "not accepted",
            ),
        ] {
            let err = parse(&yaml).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
