//! The documents a RubyGems source exchanges that are not Marshal: what a local version
//! keeps in the index (its gemspec and `/info` line), an upstream `/info` line read back,
//! and the JSON APIs (`/api/v1/gems/{gem}.json`, `/api/v1/versions/{gem}.json`,
//! `/api/v2/rubygems/{gem}/versions/{version}.json`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::gemspec::{Constraint, DependencyKind, GemSpec};
use crate::name::is_prerelease;

/// What a local version keeps in its index row's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The gemspec as pushed.
    pub(crate) spec: GemSpec,
    /// Its `/info` line.
    pub(crate) info: String,
}

/// One line of an `/info` document, read back: version, platform, the `.gem`'s sha256
/// and, when the upstream writes it, the push time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InfoLine {
    pub(crate) number: String,
    pub(crate) platform: String,
    pub(crate) sha256: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
}

impl InfoLine {
    /// Reads `VER[-PLATFORM] DEPS|REQS`; `None` for a line that is not one.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let (head, rest) = line.split_once(' ')?;
        let (number, platform) = head.split_once('-').unwrap_or((head, "ruby"));
        crate::name::check_version(number).ok()?;
        if platform != "ruby" {
            crate::name::check_platform(platform).ok()?;
        }
        let reqs = rest.split_once('|').map_or("", |(_, r)| r);
        let mut out = Self {
            number: number.to_owned(),
            platform: platform.to_owned(),
            sha256: None,
            created_at: None,
        };
        for item in reqs.split(',') {
            match item.split_once(':') {
                Some(("checksum", v)) => out.sha256 = Some(v.trim().to_owned()),
                Some(("created_at", v)) => {
                    out.created_at = DateTime::parse_from_rfc3339(v.trim())
                        .ok()
                        .map(|t| t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        Some(out)
    }
}

/// One entry of an upstream's `/api/v1/versions/{gem}.json`, as far as it is read: the push
/// time of each version and platform (`built_at` is the author's claim and is not used).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UpstreamVersion {
    pub(crate) number: String,
    #[serde(default)]
    pub(crate) platform: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
}

impl UpstreamVersion {
    pub(crate) fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

fn requirement(constraints: &[Constraint]) -> String {
    constraints
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A local version as the JSON APIs describe it.
pub(crate) struct Described<'a> {
    pub(crate) spec: &'a GemSpec,
    pub(crate) sha256: &'a str,
    pub(crate) created_at: DateTime<Utc>,
}

impl Described<'_> {
    /// An entry of `/api/v1/versions/{gem}.json`.
    pub(crate) fn version_entry(&self) -> Value {
        let s = self.spec;
        json!({
            "authors": s.authors.join(", "),
            "built_at": time(self.created_at),
            "created_at": time(self.created_at),
            "description": s.description,
            "downloads_count": 0,
            "metadata": s.metadata,
            "number": s.version,
            "summary": s.summary,
            "platform": s.platform,
            "rubygems_version": requirement(&s.required_rubygems_version),
            "ruby_version": requirement(&s.required_ruby_version),
            "prerelease": is_prerelease(&s.version),
            "licenses": s.licenses,
            "requirements": [],
            "sha": self.sha256,
        })
    }

    /// `/api/v1/gems/{gem}.json` (of the newest version) and, with `number` and
    /// `created_at`, `/api/v2/rubygems/{gem}/versions/{version}.json`; `base` is the
    /// source's URL.
    pub(crate) fn gem(&self, base: &str, per_version: bool) -> Value {
        let s = self.spec;
        let deps = |kind: DependencyKind| -> Vec<Value> {
            s.dependencies
                .iter()
                .filter(|d| d.kind == kind)
                .map(|d| json!({ "name": d.name, "requirements": requirement(&d.requirement) }))
                .collect()
        };
        let full = crate::name::full_name(&s.name, &s.version, &s.platform);
        let mut out = json!({
            "name": s.name,
            "downloads": 0,
            "version": s.version,
            "version_created_at": time(self.created_at),
            "version_downloads": 0,
            "platform": s.platform,
            "authors": s.authors.join(", "),
            "info": s.description.as_ref().or(s.summary.as_ref()),
            "licenses": s.licenses,
            "metadata": s.metadata,
            "yanked": false,
            "sha": self.sha256,
            "project_uri": format!("{base}/api/v1/gems/{}.json", s.name),
            "gem_uri": format!("{base}/gems/{full}.gem"),
            "homepage_uri": s.homepage,
            "source_code_uri": s.metadata.get("source_code_uri"),
            "changelog_uri": s.metadata.get("changelog_uri"),
            "dependencies": {
                "development": deps(DependencyKind::Development),
                "runtime": deps(DependencyKind::Runtime),
            },
        });
        if per_version && let Value::Object(map) = &mut out {
            map.insert("number".into(), json!(s.version));
            map.insert("created_at".into(), json!(time(self.created_at)));
            map.insert("prerelease".into(), json!(is_prerelease(&s.version)));
            map.insert(
                "ruby_version".into(),
                json!(requirement(&s.required_ruby_version)),
            );
            map.insert(
                "rubygems_version".into(),
                json!(requirement(&s.required_rubygems_version)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_read_back() {
        let line = InfoLine::parse(
            "1.2.0-x86_64-linux rack:< 4&>= 2.0|checksum:abc,ruby:>= 2.7,created_at:2024-01-02T03:04:05Z",
        )
        .expect("line");
        assert_eq!(line.number, "1.2.0");
        assert_eq!(line.platform, "x86_64-linux");
        assert_eq!(line.sha256.as_deref(), Some("abc"));
        assert_eq!(
            line.created_at.map(|t| t.to_rfc3339()),
            Some("2024-01-02T03:04:05+00:00".into())
        );
        let plain = InfoLine::parse("1.0.0 |checksum:ff").expect("line");
        assert_eq!((plain.platform.as_str(), plain.created_at), ("ruby", None));
        for bad in ["", "garbage", "../x |checksum:1", "1.0/x |"] {
            assert!(InfoLine::parse(bad).is_none(), "{bad}");
        }
    }
}
