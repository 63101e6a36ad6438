//! npm's JSON documents: local packuments, version manifests, publish bodies, search
//! results. Packuments are served by [`crate::render`] from their text: npm documents
//! carry many fields this registry does not interpret, and clients rely on them being
//! passed through untouched.

use std::collections::BTreeMap;

use batlehub_core::model::{LocalPackage, VersionRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::name::PackageName;

/// The `Accept` value npm sends for abbreviated ("corgi") packuments.
pub(crate) const CORGI: &str = "application/vnd.npm.install-v1+json";

/// Fields of a version manifest that an abbreviated packument keeps (npm's
/// `registry/package.json` "abbreviated metadata" format).
pub(crate) const CORGI_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "funding",
    "license",
    "os",
    "cpu",
    "libc",
    "_hasShrinkwrap",
    "hasInstallScript",
];

/// ISO 8601 with milliseconds and `Z`, as npm writes times.
#[must_use]
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The tarball URL this registry hands out for `name@version`.
#[must_use]
pub(crate) fn tarball_url(base: &str, name: &PackageName, version: &str) -> String {
    format!("{base}/{}/-/{}", name.as_str(), name.tarball_file(version))
}

/// A version manifest as stored, made ready to serve: tarball URL, deprecation.
#[must_use]
pub(crate) fn render_version(base: &str, name: &PackageName, v: &VersionRecord) -> Value {
    let mut manifest = match &v.metadata {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let dist = manifest.entry("dist").or_insert_with(|| json!({}));
    if let Value::Object(dist) = dist {
        dist.insert(
            "tarball".into(),
            Value::String(tarball_url(base, name, &v.version)),
        );
    }
    match &v.deprecated {
        Some(msg) => {
            manifest.insert("deprecated".into(), Value::String(msg.clone()));
        }
        None => {
            manifest.remove("deprecated");
        }
    }
    Value::Object(manifest)
}

/// The full packument of a local package.
#[must_use]
pub(crate) fn local_packument(base: &str, name: &PackageName, pkg: &LocalPackage) -> Value {
    let mut versions = Map::new();
    let mut time = Map::new();
    time.insert("created".into(), Value::String(iso(pkg.record.created_at)));
    time.insert("modified".into(), Value::String(iso(pkg.record.updated_at)));
    let mut maintainers: Vec<String> = Vec::new();
    for v in &pkg.versions {
        versions.insert(v.version.clone(), render_version(base, name, v));
        time.insert(v.version.clone(), Value::String(iso(v.published_at)));
        if let Some(p) = &v.publisher
            && !maintainers.contains(p)
        {
            maintainers.push(p.clone());
        }
    }
    let latest = pkg
        .tags
        .get("latest")
        .and_then(|l| pkg.versions.iter().find(|v| &v.version == l))
        .or_else(|| pkg.versions.last());
    let pick = |field: &str| {
        latest
            .and_then(|v| v.metadata.get(field))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut doc = Map::new();
    doc.insert("_id".into(), Value::String(name.as_str().to_owned()));
    doc.insert("_rev".into(), Value::String(revision(pkg)));
    doc.insert("name".into(), Value::String(name.as_str().to_owned()));
    doc.insert("dist-tags".into(), json!(pkg.tags));
    doc.insert("versions".into(), Value::Object(versions));
    doc.insert("time".into(), Value::Object(time));
    doc.insert(
        "maintainers".into(),
        Value::Array(
            maintainers
                .into_iter()
                .map(|m| json!({"name": m, "email": ""}))
                .collect(),
        ),
    );
    for field in [
        "description",
        "readme",
        "readmeFilename",
        "homepage",
        "keywords",
        "repository",
        "license",
        "bugs",
        "author",
    ] {
        let v = pick(field);
        if !v.is_null() {
            doc.insert(field.into(), v);
        }
    }
    Value::Object(doc)
}

/// A revision string for CouchDB-style `_rev` (npm's unpublish sends it back; any value works).
fn revision(pkg: &LocalPackage) -> String {
    format!(
        "{}-{:x}",
        pkg.versions.len().max(1),
        pkg.record.updated_at.timestamp_micros()
    )
}

/// Repairs the `dist-tags` after versions were hidden: a tag naming a version not in
/// `visible` moves to the highest visible stable version below it when it is `latest`, and
/// is dropped otherwise.
pub(crate) fn repair_tags(tags: &mut Map<String, Value>, visible: &[&str]) {
    let hidden: Vec<(String, String)> = tags
        .iter()
        .filter_map(|(t, v)| v.as_str().map(|v| (t.clone(), v.to_owned())))
        .filter(|(_, v)| !visible.contains(&v.as_str()))
        .collect();
    for (tag, version) in hidden {
        let replacement = (tag == "latest")
            .then(|| batlehub_core::versions::repair_pointer(visible.iter().copied(), &version))
            .flatten();
        match replacement {
            Some(r) => {
                tags.insert(tag, Value::String(r));
            }
            None => {
                tags.shift_remove(&tag);
            }
        }
    }
}

/// The body of `PUT /{name}` as the npm CLI sends it (publish, deprecate, unpublish).
#[derive(Debug, Deserialize)]
pub(crate) struct PublishBody {
    /// Package name.
    pub(crate) name: Option<String>,
    /// Version manifests, keyed by version.
    #[serde(default)]
    pub(crate) versions: Map<String, Value>,
    /// Tags to set.
    #[serde(default, rename = "dist-tags")]
    pub(crate) dist_tags: BTreeMap<String, String>,
    /// Versions hidden by policy, as this registry sent them (passed back by npm).
    #[serde(default, rename = "policyRestrictions")]
    pub(crate) policy_restrictions: Option<Value>,
    /// Tarballs, keyed by file name, base64 in `data`.
    #[serde(default, rename = "_attachments")]
    pub(crate) attachments: BTreeMap<String, Attachment>,
}

/// One `_attachments` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct Attachment {
    /// Base64 tarball.
    pub(crate) data: String,
    /// Declared decoded length.
    pub(crate) length: Option<u64>,
}
