//! Packuments rendered from their JSON text, never from a parsed tree.
//!
//! A popular package's packument runs to 15 MB and thousands of versions; parsed into a
//! `serde_json::Value` it weighs about fifteen times that, and the allocator keeps much of
//! it after it is freed. Here the document stays text: objects are split into their members
//! (values borrowed as [`RawValue`]s), only the members a rendering changes are parsed
//! (a version's `dist`, `dist-tags`, `time`, `scripts`), and everything else is copied
//! through verbatim. Memory is the source, the output and one version's members at a time.
//!
//! The semantics are those of the packument as a JSON object (serde_json's
//! order-preserving map): members in document order, a repeated key keeps its first place
//! and its last value.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use batlehub_core::policy::VersionFacts;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::name::PackageName;
use crate::wire::{self, CORGI_VERSION_FIELDS};

/// An object key, borrowed from the document unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Objects up to this many members are searched for repeated keys; bigger ones indexed.
const SEARCHED: usize = 16;

/// A JSON object's members in document order, their values left as text.
pub(crate) struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                // Where each key is, once the object is too big to search (`versions`).
                let mut index: HashMap<Cow<'de, str>, usize> = HashMap::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    if members.len() == SEARCHED {
                        index.extend(members.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)));
                    }
                    let at = if members.len() < SEARCHED {
                        members.iter().position(|(k, _)| *k == key)
                    } else {
                        index.get(&key).copied()
                    };
                    match at {
                        Some(at) => members[at].1 = value,
                        None => {
                            if members.len() >= SEARCHED {
                                index.insert(key.clone(), members.len());
                            }
                            members.push((key, value));
                        }
                    }
                }
                Ok(RawObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> RawObject<'a> {
    /// `raw` split into members, or `None` when it is not an object.
    fn of(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| *v)
    }

    fn members(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), *v))
    }
}

/// Writes JSON text.
struct Out(Vec<u8>);

impl Out {
    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn string(&mut self, s: &str) {
        // Writing into a Vec cannot fail, and a str always serializes.
        let _ = serde_json::to_writer(&mut self.0, s);
    }

    fn value(&mut self, v: &Value) {
        let _ = serde_json::to_writer(&mut self.0, v);
    }

    /// `,"key":` (the comma unless `first`).
    fn key(&mut self, first: &mut bool, key: &str) {
        if !std::mem::take(first) {
            self.raw(",");
        }
        self.string(key);
        self.raw(":");
    }
}

/// An upstream or local packument, split for rendering: what the facts, the tarball
/// lookups and every rendering need.
pub(crate) struct Packument<'a> {
    top: RawObject<'a>,
    /// `versions`, when it is an object.
    versions: Option<RawObject<'a>>,
}

impl<'a> Packument<'a> {
    /// Splits `source`.
    ///
    /// # Errors
    /// When `source` is not a JSON object.
    pub(crate) fn parse(source: &'a [u8]) -> serde_json::Result<Self> {
        let top: RawObject<'a> = serde_json::from_slice(source)?;
        let versions = top.get("versions").and_then(RawObject::of);
        Ok(Self { top, versions })
    }

    fn time(&self) -> Option<RawObject<'a>> {
        self.top.get("time").and_then(RawObject::of)
    }

    /// Each version and its publish time (from `time`), in document order.
    pub(crate) fn facts(&self) -> Vec<VersionFacts> {
        let times = self.times();
        self.versions
            .iter()
            .flat_map(RawObject::members)
            .map(|(v, _)| VersionFacts {
                version: v.to_owned(),
                published_at: times.get(v).copied().flatten(),
            })
            .collect()
    }

    /// Every entry of `time` (versions, `created`, `modified`), read as a timestamp.
    pub(crate) fn times(&self) -> HashMap<String, Option<DateTime<Utc>>> {
        self.time()
            .iter()
            .flat_map(RawObject::members)
            .map(|(k, raw)| {
                let at = serde_json::from_str::<Cow<'_, str>>(raw.get())
                    .ok()
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map(|d| d.with_timezone(&Utc));
                (k.to_owned(), at)
            })
            .collect()
    }

    /// The `dist` of each version as the document writes it.
    pub(crate) fn dists(&self) -> HashMap<String, Value> {
        self.versions
            .iter()
            .flat_map(RawObject::members)
            .filter_map(|(v, manifest)| {
                let dist = RawObject::of(manifest)?.get("dist")?;
                Some((v.to_owned(), serde_json::from_str(dist.get()).ok()?))
            })
            .collect()
    }

    /// The packument as served: every version's `dist.tarball` pointing at this registry
    /// under `base`; the `denied` versions (with their reasons) moved from `versions` to
    /// npm's `policyRestrictions` and out of `time`, and the tags that named them repaired;
    /// abbreviated when `corgi`.
    pub(crate) fn render(
        &self,
        base: &str,
        name: &PackageName,
        corgi: bool,
        denied: &[(String, String)],
    ) -> Vec<u8> {
        let hidden: HashSet<&str> = denied.iter().map(|(v, _)| v.as_str()).collect();
        let r = Renderer {
            doc: self,
            base,
            name,
            hidden,
            denied,
        };
        let mut out = Out(Vec::with_capacity(
            self.top.0.iter().map(|(_, v)| v.get().len()).sum::<usize>() + 64,
        ));
        if corgi {
            r.abbreviated(&mut out);
        } else {
            r.full(&mut out);
        }
        out.0
    }
}

struct Renderer<'r, 'a> {
    doc: &'r Packument<'a>,
    base: &'r str,
    name: &'r PackageName,
    hidden: HashSet<&'r str>,
    denied: &'r [(String, String)],
}

impl Renderer<'_, '_> {
    fn full(&self, out: &mut Out) {
        let mut first = true;
        out.raw("{");
        let mut restrictions_written = false;
        for (key, raw) in self.doc.top.members() {
            out.key(&mut first, key);
            match key {
                "versions" if self.doc.versions.is_some() => self.versions(out, false),
                "time" if !self.denied.is_empty() => self.time(out, raw),
                "dist-tags" if !self.denied.is_empty() => self.tags(out, raw),
                "policyRestrictions" if !self.denied.is_empty() => {
                    self.restrictions(out, false);
                    restrictions_written = true;
                }
                _ => out.raw(raw.get()),
            }
        }
        if !self.denied.is_empty() && !restrictions_written {
            out.key(&mut first, "policyRestrictions");
            self.restrictions(out, false);
        }
        out.raw("}");
    }

    fn abbreviated(&self, out: &mut Out) {
        let top = &self.doc.top;
        let mut first = true;
        out.raw("{");
        out.key(&mut first, "name");
        out.raw(top.get("name").map_or("null", RawValue::get));
        out.key(&mut first, "modified");
        let modified = self
            .doc
            .time()
            .and_then(|t| t.get("modified"))
            .filter(|_| !self.hidden.contains("modified"));
        match modified {
            Some(m) => out.raw(m.get()),
            None => out.string(&wire::iso(Utc::now())),
        }
        out.key(&mut first, "dist-tags");
        match top.get("dist-tags") {
            Some(tags) if !self.denied.is_empty() => self.tags(out, tags),
            Some(tags) => out.raw(tags.get()),
            None => out.raw("{}"),
        }
        out.key(&mut first, "versions");
        self.versions(out, true);
        if !self.denied.is_empty() {
            out.key(&mut first, "policyRestrictions");
            self.restrictions(out, true);
        } else if let Some(r) = top.get("policyRestrictions") {
            // The document's own restrictions (none of ours), abbreviated.
            out.key(&mut first, "policyRestrictions");
            let r = RawObject::of(r);
            let mut inner = true;
            out.raw("{");
            out.key(&mut inner, "versions");
            out.raw("{");
            let mut each = true;
            for (v, manifest) in r
                .as_ref()
                .and_then(|r| r.get("versions"))
                .and_then(RawObject::of)
                .iter()
                .flat_map(RawObject::members)
            {
                out.key(&mut each, v);
                self.slim(out, manifest, None);
            }
            out.raw("}");
            out.key(&mut inner, "message");
            out.raw(
                r.as_ref()
                    .and_then(|r| r.get("message"))
                    .map_or("null", RawValue::get),
            );
            out.raw("}");
        }
        out.raw("}");
    }

    /// The visible versions, tarballs rewritten (slim when `corgi`).
    fn versions(&self, out: &mut Out, corgi: bool) {
        let mut first = true;
        out.raw("{");
        for (v, manifest) in self.doc.versions.iter().flat_map(RawObject::members) {
            if self.hidden.contains(v) {
                continue;
            }
            out.key(&mut first, v);
            self.manifest(out, v, manifest, corgi);
        }
        out.raw("}");
    }

    fn manifest(&self, out: &mut Out, version: &str, manifest: &RawValue, corgi: bool) {
        if corgi {
            self.slim(out, manifest, Some(version));
        } else {
            match RawObject::of(manifest) {
                Some(m) => {
                    let mut first = true;
                    out.raw("{");
                    for (key, raw) in m.members() {
                        out.key(&mut first, key);
                        if key == "dist" {
                            self.dist(out, version, raw);
                        } else {
                            out.raw(raw.get());
                        }
                    }
                    out.raw("}");
                }
                None => out.raw(manifest.get()),
            }
        }
    }

    /// `dist` with its tarball at this registry (other shapes are left alone).
    fn dist(&self, out: &mut Out, version: &str, raw: &RawValue) {
        match serde_json::from_str::<Map<String, Value>>(raw.get()) {
            Ok(mut dist) => {
                dist.insert(
                    "tarball".into(),
                    Value::String(wire::tarball_url(self.base, self.name, version)),
                );
                let mut first = true;
                out.raw("{");
                for (k, v) in &dist {
                    out.key(&mut first, k);
                    out.value(v);
                }
                out.raw("}");
            }
            Err(_) => out.raw(raw.get()),
        }
    }

    /// The abbreviated manifest: npm's corgi fields in their order, the tarball rewritten
    /// when `version` is given, install scripts flagged.
    fn slim(&self, out: &mut Out, manifest: &RawValue, version: Option<&str>) {
        let m = RawObject::of(manifest);
        let mut first = true;
        out.raw("{");
        if let Some(m) = &m {
            for field in CORGI_VERSION_FIELDS {
                let Some(raw) = m.get(field) else { continue };
                out.key(&mut first, field);
                match version {
                    Some(v) if *field == "dist" => self.dist(out, v, raw),
                    _ => out.raw(raw.get()),
                }
            }
            let scripts = m.get("scripts").and_then(RawObject::of);
            if m.get("hasInstallScript").is_none()
                && scripts.is_some_and(|s| {
                    ["preinstall", "install", "postinstall"]
                        .iter()
                        .any(|k| s.get(k).is_some())
                })
            {
                out.key(&mut first, "hasInstallScript");
                out.raw("true");
            }
        }
        out.raw("}");
    }

    /// `time` without the hidden versions.
    fn time(&self, out: &mut Out, raw: &RawValue) {
        let Some(time) = RawObject::of(raw) else {
            return out.raw(raw.get());
        };
        let mut first = true;
        out.raw("{");
        for (k, v) in time.members() {
            if !self.hidden.contains(k) {
                out.key(&mut first, k);
                out.raw(v.get());
            }
        }
        out.raw("}");
    }

    /// `dist-tags` with every tag that named a hidden version moved to the highest visible
    /// stable version below it (`latest`) or dropped.
    fn tags(&self, out: &mut Out, raw: &RawValue) {
        let Ok(mut tags) = serde_json::from_str::<Map<String, Value>>(raw.get()) else {
            return out.raw(raw.get());
        };
        let visible: Vec<&str> = self
            .doc
            .versions
            .iter()
            .flat_map(RawObject::members)
            .map(|(v, _)| v)
            .filter(|v| !self.hidden.contains(v))
            .collect();
        wire::repair_tags(&mut tags, &visible);
        out.value(&Value::Object(tags));
    }

    /// npm's `policyRestrictions`: the hidden versions (slim when `corgi`) and the reasons.
    fn restrictions(&self, out: &mut Out, corgi: bool) {
        let mut first = true;
        out.raw("{");
        out.key(&mut first, "versions");
        out.raw("{");
        let mut each = true;
        let mut written = HashSet::new();
        for (v, _) in self.denied {
            let Some(manifest) = self.doc.versions.as_ref().and_then(|vs| vs.get(v)) else {
                continue;
            };
            if !written.insert(v.as_str()) {
                continue;
            }
            out.key(&mut each, v);
            self.manifest(out, v, manifest, corgi);
        }
        out.raw("}");
        out.key(&mut first, "message");
        let message = self
            .denied
            .iter()
            .map(|(v, reason)| format!("{v}: {reason}"))
            .collect::<Vec<_>>()
            .join("\n");
        out.string(&message);
        out.raw("}");
    }
}

#[cfg(test)]
mod tests {
    //! The text renderer against the tree semantics it replaced (kept here as the oracle):
    //! on generated packuments, both agree once parsed.

    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    const BASE: &str = "http://hub.test/npm";

    /// The tree renderer: tarballs rewritten, denials applied, abbreviated when `corgi`.
    fn oracle(
        source: &[u8],
        name: &PackageName,
        corgi: bool,
        denied: &[(String, String)],
    ) -> Value {
        let mut doc: Value = serde_json::from_slice(source).expect("json");
        if let Some(Value::Object(versions)) = doc.get_mut("versions") {
            for (version, manifest) in versions.iter_mut() {
                if let Some(Value::Object(dist)) = manifest.get_mut("dist") {
                    dist.insert(
                        "tarball".into(),
                        Value::String(wire::tarball_url(BASE, name, version)),
                    );
                }
            }
        }
        if !denied.is_empty() {
            apply_denials(&mut doc, denied);
        }
        if corgi { abbreviate(&doc) } else { doc }
    }

    fn apply_denials(doc: &mut Value, denied: &[(String, String)]) {
        let obj = doc.as_object_mut().expect("object");
        let mut restricted = Map::new();
        if let Some(Value::Object(versions)) = obj.get_mut("versions") {
            for (v, _) in denied {
                if let Some(manifest) = versions.shift_remove(v) {
                    restricted.insert(v.clone(), manifest);
                }
            }
        }
        if let Some(Value::Object(time)) = obj.get_mut("time") {
            for (v, _) in denied {
                time.shift_remove(v);
            }
        }
        let visible: Vec<String> = obj
            .get("versions")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(Value::Object(tags)) = obj.get_mut("dist-tags") {
            let visible: Vec<&str> = visible.iter().map(String::as_str).collect();
            wire::repair_tags(tags, &visible);
        }
        let message = denied
            .iter()
            .map(|(v, reason)| format!("{v}: {reason}"))
            .collect::<Vec<_>>()
            .join("\n");
        obj.insert(
            "policyRestrictions".into(),
            json!({ "versions": restricted, "message": message }),
        );
    }

    fn abbreviate(full: &Value) -> Value {
        let mut out = Map::new();
        out.insert(
            "name".into(),
            full.get("name").cloned().unwrap_or(Value::Null),
        );
        // Generated documents always carry `time.modified` or none; "now" is compared apart.
        out.insert(
            "modified".into(),
            full.pointer("/time/modified")
                .cloned()
                .unwrap_or(Value::Null),
        );
        out.insert(
            "dist-tags".into(),
            full.get("dist-tags").cloned().unwrap_or_else(|| json!({})),
        );
        out.insert(
            "versions".into(),
            Value::Object(slim_versions(full.get("versions"))),
        );
        if let Some(r) = full.get("policyRestrictions") {
            out.insert(
                "policyRestrictions".into(),
                json!({ "versions": slim_versions(r.get("versions")), "message": r.get("message").cloned().unwrap_or(Value::Null) }),
            );
        }
        Value::Object(out)
    }

    fn slim_versions(versions: Option<&Value>) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(Value::Object(vs)) = versions {
            for (v, manifest) in vs {
                let mut slim = Map::new();
                if let Value::Object(m) = manifest {
                    for field in CORGI_VERSION_FIELDS {
                        if let Some(value) = m.get(*field) {
                            slim.insert((*field).to_owned(), value.clone());
                        }
                    }
                    if !slim.contains_key("hasInstallScript")
                        && let Some(Value::Object(scripts)) = m.get("scripts")
                        && ["preinstall", "install", "postinstall"]
                            .iter()
                            .any(|s| scripts.contains_key(*s))
                    {
                        slim.insert("hasInstallScript".into(), Value::Bool(true));
                    }
                }
                out.insert(v.clone(), Value::Object(slim));
            }
        }
        out
    }

    fn render(source: &[u8], corgi: bool, denied: &[(String, String)]) -> Value {
        let name = PackageName::parse("@scope/pkg").expect("name");
        let doc = Packument::parse(source).expect("object");
        let mut out: Value = serde_json::from_slice(&doc.render(BASE, &name, corgi, denied))
            .expect("the rendering is JSON");
        let expected = oracle(source, &name, corgi, denied);
        if corgi && expected["modified"].is_null() {
            // No `time.modified`: the renderer writes the current time.
            assert!(out["modified"].is_string(), "{out}");
            out["modified"] = Value::Null;
        }
        assert_eq!(out, expected, "corgi {corgi}, denied {denied:?}");
        out
    }

    fn manifest() -> impl Strategy<Value = Value> {
        prop_oneof![
            8 => (
                any::<bool>(),
                prop_oneof![
                    Just(json!({"shasum": "ab", "integrity": "sha512-AA==", "tarball": "http://up.test/x.tgz"})),
                    Just(json!({"shasum": "ab"})),
                    Just(json!("not an object")),
                ],
                prop::collection::vec(prop::sample::select(vec!["preinstall", "test", "install", "postinstall"]), 0..3),
                any::<bool>(),
            )
                .prop_map(|(dist, d, scripts, flag)| {
                    let mut m = json!({
                        "name": "@scope/pkg", "description": "x\u{e9}\"\\", "readme": "long",
                        "dependencies": {"a": "^1"}, "license": "MIT", "n": 1e2,
                    });
                    if dist {
                        m["dist"] = d;
                    }
                    let scripts: Map<String, Value> =
                        scripts.into_iter().map(|s| (s.to_owned(), json!("x"))).collect();
                    m["scripts"] = Value::Object(scripts);
                    if flag {
                        m["hasInstallScript"] = json!(false);
                    }
                    m
                }),
            1 => Just(json!(["not", "an", "object"])),
        ]
    }

    fn packument() -> impl Strategy<Value = (Vec<u8>, Vec<String>)> {
        let versions = prop::collection::vec(
            prop_oneof![
                (0u8..4, 0u8..4, 0u8..3).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
                Just("1.0.0-rc.1".to_owned()),
                Just("modified".to_owned()),
                Just("we\u{ee}rd \"v\"".to_owned()),
            ],
            0..12,
        );
        (
            versions,
            prop::collection::vec(manifest(), 12),
            any::<bool>(),
            prop::collection::vec((Just("latest"), 0usize..12), 0..3),
            any::<bool>(),
        )
            .prop_map(|(vs, manifests, has_modified, tags, own_restrictions)| {
                let mut versions = Map::new();
                let mut time = Map::new();
                if has_modified {
                    time.insert("modified".into(), json!("2025-02-01T00:00:00.000Z"));
                }
                for (v, m) in vs.iter().zip(manifests) {
                    versions.insert(v.clone(), m);
                    time.insert(v.clone(), json!("2025-01-01T00:00:00.000Z"));
                }
                let mut dist_tags = Map::new();
                for (i, (tag, at)) in tags.into_iter().enumerate() {
                    let tag = if i == 0 {
                        tag.to_owned()
                    } else {
                        format!("next{i}")
                    };
                    if let Some(v) = vs.get(at) {
                        dist_tags.insert(tag, json!(v));
                    }
                }
                let mut doc = json!({
                    "_id": "@scope/pkg", "name": "@scope/pkg", "dist-tags": dist_tags,
                    "versions": versions, "time": time, "readme": "big", "users": {"a": true},
                });
                if own_restrictions {
                    doc["policyRestrictions"] = json!({
                        "versions": {"0.0.1": {"name": "@scope/pkg", "dist": {"shasum": "cd"}}},
                        "message": "upstream's own",
                    });
                }
                // Pretty-printed: the renderer copies values as text, whitespace included.
                let text = serde_json::to_vec_pretty(&doc).expect("json");
                (text, vs)
            })
    }

    proptest! {
        #[test]
        fn agrees_with_the_tree_renderer(
            (source, versions) in packument(),
            picks in prop::collection::vec(0usize..12, 0..4),
            corgi in any::<bool>(),
        ) {
            let denied: Vec<(String, String)> = picks
                .iter()
                .filter_map(|i| versions.get(*i))
                .map(|v| (v.clone(), format!("blocked \"{v}\"")))
                .collect();
            render(&source, corgi, &denied);
        }
    }

    #[test]
    fn repeated_keys_keep_their_first_place_and_last_value() {
        let mut source = String::from(r#"{"name":"@scope/pkg","versions":{"#);
        // Past the searched size, so the index is used too.
        for i in 0..40 {
            source.push_str(&format!(r#""1.0.{i}":{{"dist":{{"shasum":"a"}}}},"#));
        }
        source.push_str(r#""1.0.3":{"dist":{"shasum":"last"}},"1.0.30":{"dist":{"shasum":"b"}}},"name":"@scope/pkg"}"#);
        let out = render(source.as_bytes(), false, &[]);
        let versions = out["versions"].as_object().expect("versions");
        assert_eq!(versions.len(), 40);
        assert_eq!(versions.keys().nth(3).map(String::as_str), Some("1.0.3"));
        assert_eq!(out["versions"]["1.0.3"]["dist"]["shasum"], "last");
        assert_eq!(out["versions"]["1.0.30"]["dist"]["shasum"], "b");
    }

    #[test]
    fn escaped_keys_are_read_as_their_text() {
        let source =
            br#"{"n\u0061me":"@scope/pkg","vers\u0069ons":{"1.0.0":{"dist":{"shasum":"a"}}}}"#;
        let out = render(source, true, &[("1.0.0".into(), "no".into())]);
        assert_eq!(out["name"], "@scope/pkg");
        assert_eq!(
            out["policyRestrictions"]["versions"]["1.0.0"]["dist"]["tarball"],
            format!("{BASE}/@scope/pkg/-/pkg-1.0.0.tgz")
        );
    }

    #[test]
    fn only_objects_are_packuments() {
        for bad in [&b"[]"[..], b"\"x\"", b"{", b"{\"a\":1}x", b""] {
            assert!(
                Packument::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
