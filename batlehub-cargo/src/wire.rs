//! cargo's JSON documents: `config.json`, index lines, the publish metadata, and the web
//! API's responses.
//!
//! Field names and meanings follow the Cargo Book's "Registry Index" and "Registry Web API"
//! chapters; where they and the cargo client disagree, the client wins.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Feature name -> what it enables.
pub(crate) type FeatureMap = BTreeMap<String, Vec<String>>;

/// `config.json` at the root of the sparse index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexConfig {
    /// Where crates are downloaded from; cargo appends `/{crate}/{version}/download` when
    /// the value has no `{crate}`-style markers.
    pub(crate) dl: String,
    /// The web API root (publish, yank, owners, search). Without it cargo cannot publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) api: Option<String>,
    /// Every request needs the token, index reads included (cargo sends `Authorization`
    /// on every request to such a registry).
    #[serde(
        rename = "auth-required",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub(crate) auth_required: bool,
}

impl IndexConfig {
    /// The `config.json` of a registry served at `base`.
    #[must_use]
    pub(crate) fn for_base(base: &str, auth_required: bool) -> Self {
        Self {
            dl: format!("{base}/api/v1/crates"),
            api: Some(base.to_owned()),
            auth_required,
        }
    }

    /// The download URL of a crate version, as cargo computes it from `dl`: the markers
    /// `{crate}`, `{version}`, `{prefix}`, `{lowerprefix}` and `{sha256-checksum}` are
    /// replaced; without any marker, `/{crate}/{version}/download` is appended.
    #[must_use]
    pub(crate) fn download_url(&self, name: &str, version: &str, cksum: &str) -> String {
        const MARKERS: [&str; 5] = [
            "{crate}",
            "{version}",
            "{prefix}",
            "{lowerprefix}",
            "{sha256-checksum}",
        ];
        if !MARKERS.iter().any(|m| self.dl.contains(m)) {
            return format!("{}/{name}/{version}/download", self.dl);
        }
        let prefix = crate::name::prefix(name);
        self.dl
            .replace("{crate}", name)
            .replace("{version}", version)
            .replace("{prefix}", &prefix)
            .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
            .replace("{sha256-checksum}", cksum)
    }
}

/// One line of an index file: one published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexLine {
    /// The crate name as published (case preserved).
    pub(crate) name: String,
    /// The version.
    pub(crate) vers: String,
    /// Every dependency, dev and build ones included.
    #[serde(default)]
    pub(crate) deps: Vec<IndexDep>,
    /// sha256 hex of the `.crate` file; cargo checks downloads against it.
    pub(crate) cksum: String,
    /// Features whose values use only the classic syntax.
    #[serde(default)]
    pub(crate) features: FeatureMap,
    /// Features using `dep:` or `pkg?/feat` (cargo merges them with `features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) features2: Option<FeatureMap>,
    /// Yanked versions are not selected by new resolutions.
    #[serde(default)]
    pub(crate) yanked: bool,
    /// The `links` value of the manifest.
    #[serde(default)]
    pub(crate) links: Option<String>,
    /// The schema version: `2` when `features2` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) v: Option<u32>,
    /// The minimum supported Rust version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rust_version: Option<String>,
    /// The publish time, `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pubtime: Option<String>,
}

/// A dependency in an index line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexDep {
    /// The name the dependent uses (the rename, when renamed).
    pub(crate) name: String,
    /// The version requirement.
    pub(crate) req: String,
    /// Features enabled on the dependency.
    #[serde(default)]
    pub(crate) features: Vec<String>,
    /// Whether it is optional.
    #[serde(default)]
    pub(crate) optional: bool,
    /// Whether its default features are enabled.
    #[serde(default = "yes")]
    pub(crate) default_features: bool,
    /// A `cfg(...)` or target triple, when platform-specific.
    #[serde(default)]
    pub(crate) target: Option<String>,
    /// `normal`, `dev` or `build`.
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// The index URL of another registry; `null` means this one.
    #[serde(default)]
    pub(crate) registry: Option<String>,
    /// The real crate name, when renamed.
    #[serde(default)]
    pub(crate) package: Option<String>,
}

fn yes() -> bool {
    true
}

/// The JSON part of a publish request (`PUT /api/v1/crates/new`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PublishMetadata {
    /// Crate name.
    pub(crate) name: String,
    /// Version.
    pub(crate) vers: String,
    /// Dependencies, in the publish API's form.
    #[serde(default)]
    pub(crate) deps: Vec<PublishDep>,
    /// Features, `dep:`/`?` syntax included.
    #[serde(default)]
    pub(crate) features: FeatureMap,
    /// Description, shown by `cargo search`.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// The `links` value.
    #[serde(default)]
    pub(crate) links: Option<String>,
    /// The minimum supported Rust version.
    #[serde(default)]
    pub(crate) rust_version: Option<String>,
    /// Not sent by cargo; when a client sends it, it must match the `.crate`.
    #[serde(default)]
    pub(crate) cksum: Option<String>,
}

/// A dependency in the publish API's form.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PublishDep {
    /// The real crate name (the index calls it `package` when renamed).
    pub(crate) name: String,
    /// The version requirement (the index calls it `req`).
    pub(crate) version_req: String,
    /// Features enabled on it.
    #[serde(default)]
    pub(crate) features: Vec<String>,
    /// Whether it is optional.
    #[serde(default)]
    pub(crate) optional: bool,
    /// Whether its default features are enabled.
    #[serde(default = "yes")]
    pub(crate) default_features: bool,
    /// Platform restriction.
    #[serde(default)]
    pub(crate) target: Option<String>,
    /// `normal`, `dev` or `build`.
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// Another registry's index URL; `null` means this one.
    #[serde(default)]
    pub(crate) registry: Option<String>,
    /// The rename used in `Cargo.toml` (the index's `name`).
    #[serde(default)]
    pub(crate) explicit_name_in_toml: Option<String>,
}

impl PublishDep {
    /// The index form: the rename becomes `name`, the real name `package`.
    #[must_use]
    pub(crate) fn to_index(&self) -> IndexDep {
        let (name, package) = match &self.explicit_name_in_toml {
            Some(rename) if *rename != self.name => (rename.clone(), Some(self.name.clone())),
            _ => (self.name.clone(), None),
        };
        IndexDep {
            name,
            req: self.version_req.clone(),
            features: self.features.clone(),
            optional: self.optional,
            default_features: self.default_features,
            target: self.target.clone(),
            kind: Some(self.kind.clone().unwrap_or_else(|| "normal".into())),
            registry: self.registry.clone(),
            package,
        }
    }
}

/// Whether a feature value needs `features2` (namespaced `dep:` or weak `?/` syntax).
#[must_use]
pub(crate) fn is_new_syntax(value: &str) -> bool {
    value.starts_with("dep:") || value.contains("?/")
}

/// Splits features into the classic map and `features2`, as the index format describes.
#[must_use]
pub(crate) fn split_features(features: &FeatureMap) -> (FeatureMap, Option<FeatureMap>) {
    let (new, classic): (FeatureMap, FeatureMap) = features
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(_, values)| values.iter().any(|v| is_new_syntax(v)));
    (classic, (!new.is_empty()).then_some(new))
}

/// A time as the index writes `pubtime`: `2025-01-01T00:00:00Z`.
#[must_use]
pub(crate) fn pubtime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a `pubtime`.
#[must_use]
pub(crate) fn parse_pubtime(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// What the proxy reads from an upstream index line: enough for policy and downloads;
/// the line itself is passed through untouched.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LineFacts {
    /// Crate name.
    pub(crate) name: String,
    /// Version.
    pub(crate) vers: String,
    /// sha256 hex of the `.crate`.
    #[serde(default)]
    pub(crate) cksum: Option<String>,
    /// Yanked upstream.
    #[serde(default)]
    pub(crate) yanked: bool,
    /// Publish time, when the upstream publishes it.
    #[serde(default)]
    pub(crate) pubtime: Option<String>,
}

/// The response to a successful publish.
#[must_use]
pub(crate) fn publish_ok() -> serde_json::Value {
    serde_json::json!({
        "warnings": { "invalid_categories": [], "invalid_badges": [], "other": [] }
    })
}

/// The body of `PUT`/`DELETE /api/v1/crates/{name}/owners`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OwnersRequest {
    /// Logins to add or remove.
    pub(crate) users: Vec<String>,
}

/// One owner in `GET /api/v1/crates/{name}/owners`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OwnerEntry {
    /// A number cargo requires; positions in the sorted owner list.
    pub(crate) id: u32,
    /// The principal id, or `group:NAME` for a group.
    pub(crate) login: String,
    /// A display name, when there is one.
    pub(crate) name: Option<String>,
}

/// One hit of `GET /api/v1/crates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SearchHit {
    /// Crate name.
    pub(crate) name: String,
    /// The highest version the caller may select.
    pub(crate) max_version: String,
    /// Description.
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_url_templates() {
        let c = |dl: &str| IndexConfig {
            dl: dl.into(),
            api: None,
            auth_required: false,
        };
        assert_eq!(
            c("http://h/dl").download_url("Foo", "1.0.0", "ab"),
            "http://h/dl/Foo/1.0.0/download"
        );
        assert_eq!(
            c("http://h/{prefix}/{lowerprefix}/{crate}-{version}.crate?c={sha256-checksum}")
                .download_url("MyCrate", "1.0.0", "ab"),
            "http://h/My/Cr/my/cr/MyCrate-1.0.0.crate?c=ab"
        );
    }

    #[test]
    fn features_split_and_deps_renamed() {
        let mut f = BTreeMap::new();
        f.insert("plain".to_owned(), vec!["a/b".to_owned()]);
        f.insert("ns".to_owned(), vec!["dep:x".to_owned()]);
        f.insert("weak".to_owned(), vec!["y?/z".to_owned()]);
        let (classic, new) = split_features(&f);
        assert_eq!(classic.keys().collect::<Vec<_>>(), ["plain"]);
        assert_eq!(
            new.expect("features2").keys().collect::<Vec<_>>(),
            ["ns", "weak"]
        );
        let dep: PublishDep = serde_json::from_value(serde_json::json!({
            "name": "real", "version_req": "^1", "explicit_name_in_toml": "alias"
        }))
        .expect("dep");
        let idx = dep.to_index();
        assert_eq!(
            (idx.name.as_str(), idx.package.as_deref()),
            ("alias", Some("real"))
        );
        assert_eq!(idx.kind.as_deref(), Some("normal"));
        assert_eq!(
            parse_pubtime("2025-01-01T00:00:00Z")
                .map(pubtime)
                .as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
    }
}
