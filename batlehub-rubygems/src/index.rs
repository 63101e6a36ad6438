//! The documents a RubyGems registry serves about its gems, rendered from gemspecs: compact
//! index lines (`/versions`, `/info/{gem}`), the full index (`specs.4.8.gz` and friends)
//! and quick gemspecs (`quick/Marshal.4.8/{gem}.gemspec.rz`).

use std::io::Write as _;

use crate::gemspec::{Constraint, DependencyKind, GemSpec};
use crate::marshal::{self, Value};

/// A requirement as the compact index writes it: constraints sorted, joined by `&`.
fn requirement(constraints: &[Constraint]) -> String {
    let mut parts: Vec<String> = constraints.iter().map(ToString::to_string).collect();
    parts.sort();
    parts.join("&")
}

fn is_any(constraints: &[Constraint]) -> bool {
    constraints.is_empty() || constraints.iter().all(|c| c.op == ">=" && c.version == "0")
}

/// One line of `/info/{gem}` (without its newline): the version (and platform), runtime
/// dependencies sorted by name, the `.gem`'s sha256, and the Ruby and RubyGems
/// requirements when they say anything.
#[must_use]
pub fn info_line(spec: &GemSpec, sha256_hex: &str) -> String {
    let mut deps: Vec<String> = spec
        .dependencies
        .iter()
        .filter(|d| d.kind == DependencyKind::Runtime)
        .map(|d| format!("{}:{}", d.name, requirement(&d.requirement)))
        .collect();
    deps.sort();
    let mut line = crate::name::full_name("", &spec.version, &spec.platform)
        .trim_start_matches('-')
        .to_owned();
    line.push(' ');
    line.push_str(&deps.join(","));
    line.push_str("|checksum:");
    line.push_str(sha256_hex);
    if !is_any(&spec.required_ruby_version) {
        line.push_str(",ruby:");
        line.push_str(&requirement(&spec.required_ruby_version));
    }
    if !is_any(&spec.required_rubygems_version) {
        line.push_str(",rubygems:");
        line.push_str(&requirement(&spec.required_rubygems_version));
    }
    line
}

/// `/info/{gem}`: `---` and one line per version, in the order given (push order).
#[must_use]
pub fn info_document<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("---\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One line of `/versions`: the gem, its versions (`1.0.0`, `1.0.0-java`; yanked ones as
/// `-1.0.0`), and the MD5 of its `/info` document as served.
#[must_use]
pub fn versions_line(name: &str, versions: &[String], info: &[u8]) -> String {
    use md5::Digest as _;
    format!(
        "{name} {} {}",
        versions.join(","),
        hex::encode(md5::Md5::digest(info))
    )
}

fn version(v: &str) -> Value {
    Value::UserMarshal {
        class: "Gem::Version".into(),
        data: Box::new(Value::Array(vec![Value::Str(v.to_owned())])),
    }
}

fn requirement_value(constraints: &[Constraint]) -> Value {
    let pairs = if constraints.is_empty() {
        vec![Value::Array(vec![Value::Str(">=".into()), version("0")])]
    } else {
        constraints
            .iter()
            .map(|c| Value::Array(vec![Value::Str(c.op.clone()), version(&c.version)]))
            .collect()
    };
    Value::UserMarshal {
        class: "Gem::Requirement".into(),
        data: Box::new(Value::Array(vec![Value::Array(pairs)])),
    }
}

/// A platform as `Gem::Platform` holds it (`x86_64-linux`: cpu, os; `java`: os only;
/// `universal-darwin-21`: cpu, os, version).
fn platform_value(platform: &str) -> Value {
    if platform == "ruby" {
        return Value::Str("ruby".into());
    }
    let parts: Vec<&str> = platform.split('-').collect();
    let s = |p: Option<&&str>| p.map_or(Value::Nil, |p| Value::Str((*p).to_owned()));
    let (cpu, os, ver) = match parts.as_slice() {
        [os] => (Value::Nil, s(Some(os)), Value::Nil),
        [cpu, os] => (s(Some(cpu)), s(Some(os)), Value::Nil),
        [cpu, os, ver, ..] => (s(Some(cpu)), s(Some(os)), s(Some(ver))),
        [] => (Value::Nil, Value::Nil, Value::Nil),
    };
    Value::Object {
        class: "Gem::Platform".into(),
        ivars: vec![
            ("@cpu".into(), cpu),
            ("@os".into(), os),
            ("@version".into(), ver),
        ],
    }
}

/// The `[name, Gem::Version, platform]` tuples of a full index, gzipped
/// (`specs.4.8.gz`, `latest_specs.4.8.gz`, `prerelease_specs.4.8.gz`).
#[must_use]
pub fn specs_index(tuples: &[(String, String, String)]) -> Vec<u8> {
    let value = Value::Array(
        tuples
            .iter()
            .map(|(n, v, p)| {
                Value::Array(vec![
                    Value::Str(n.clone()),
                    version(v),
                    Value::Str(p.clone()),
                ])
            })
            .collect(),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(&marshal::dump(&value));
    gz.finish().unwrap_or_default()
}

/// A quick gemspec (`{full_name}.gemspec.rz`): `Gem::Specification#_dump` of `spec`
/// (abbreviated as the index writes it: no file lists), marshalled and zlib-deflated.
/// `date` is `YYYY-MM-DD`.
#[must_use]
pub fn quick_spec(spec: &GemSpec, date: &str) -> Vec<u8> {
    let text = |s: &Option<String>| s.clone().map_or(Value::Nil, Value::Str);
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::Str).collect());
    let dependencies = spec
        .dependencies
        .iter()
        .map(|d| {
            let req = requirement_value(&d.requirement);
            let kind = match d.kind {
                DependencyKind::Runtime => "runtime",
                DependencyKind::Development => "development",
            };
            Value::Object {
                class: "Gem::Dependency".into(),
                ivars: vec![
                    ("@name".into(), Value::Str(d.name.clone())),
                    ("@requirement".into(), req.clone()),
                    ("@type".into(), Value::Sym(kind.into())),
                    ("@prerelease".into(), Value::False),
                    ("@version_requirements".into(), req),
                ],
            }
        })
        .collect();
    let fields = Value::Array(vec![
        Value::Str("3.3.15".into()),
        Value::Int(4),
        Value::Str(spec.name.clone()),
        version(&spec.version),
        Value::Str(date.to_owned()),
        text(&spec.summary),
        requirement_value(&spec.required_ruby_version),
        requirement_value(&spec.required_rubygems_version),
        Value::Str(spec.platform.clone()),
        Value::Array(dependencies),
        Value::Str(String::new()),
        Value::Nil,
        strings(&spec.authors),
        text(&spec.description),
        text(&spec.homepage),
        Value::True,
        platform_value(&spec.platform),
        strings(&spec.licenses),
        Value::Hash(
            spec.metadata
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                .collect(),
        ),
    ]);
    let dumped = Value::UserDefined {
        class: "Gem::Specification".into(),
        bytes: marshal::dump(&fields),
    };
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = z.write_all(&marshal::dump(&dumped));
    z.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn compact_index_lines() {
        let spec = crate::gemspec::parse(crate::gemspec::DEMO).expect("spec");
        let line = info_line(&spec, "abc123");
        assert_eq!(line, "1.2.0 rack:< 4&>= 2.0|checksum:abc123,ruby:>= 2.7");
        let mut java = spec.clone();
        java.platform = "java".into();
        java.dependencies.clear();
        java.required_ruby_version.clear();
        assert_eq!(info_line(&java, "ff"), "1.2.0-java |checksum:ff");
        let info = info_document([line.as_str()]);
        assert_eq!(info, format!("---\n{line}\n"));
        let v = versions_line(
            "demo-gem",
            &["1.2.0".into(), "-1.1.0".into()],
            info.as_bytes(),
        );
        assert!(v.starts_with("demo-gem 1.2.0,-1.1.0 "), "{v}");
        assert_eq!(v.rsplit(' ').next().map(str::len), Some(32));
    }

    #[test]
    fn index_files_are_compressed_marshal() {
        let spec = crate::gemspec::parse(crate::gemspec::DEMO).expect("spec");
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&quick_spec(&spec, "2024-01-02")[..])
            .read_to_end(&mut out)
            .expect("zlib");
        assert_eq!(&out[..3], &[4, 8, b'u']);
        assert!(out.windows(18).any(|w| w == b"Gem::Specification"));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(
            &specs_index(&[("demo-gem".into(), "1.2.0".into(), "ruby".into())])[..],
        )
        .read_to_end(&mut out)
        .expect("gzip");
        assert_eq!(&out[..4], &[4, 8, b'[', 0x06]);
    }
}
