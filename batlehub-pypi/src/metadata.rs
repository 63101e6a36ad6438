//! Core metadata (`METADATA` in wheels, `PKG-INFO` in sdists): an RFC 822-style header
//! block, optionally followed by the description as the body (metadata 2.1+).

use batlehub_core::{Error, Result};
use serde_json::{Map, Value, json};

/// Parsed core metadata.
///
/// # Examples
/// ```
/// use batlehub_pypi::metadata::CoreMetadata;
/// let m = CoreMetadata::parse(
///     b"Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\nRequires-Dist: idna\n\nHello\n",
/// )
/// .expect("valid");
/// assert_eq!(m.name(), "Demo");
/// assert_eq!(m.get_all("requires-dist"), ["idna"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    /// Header fields, keys lowercased, in file order (multi-use fields repeat).
    fields: Vec<(String, String)>,
    /// The message body (the long description), when present.
    body: String,
}

impl CoreMetadata {
    /// Parses a metadata file; `Metadata-Version`, `Name` and `Version` are required.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the file is not core metadata.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::BadRequest(format!("invalid core metadata: {why}"));
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut lines = text.split('\n');
        let mut body = String::new();
        for line in lines.by_ref() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = fields.last_mut() else {
                    return Err(bad("starts with a continuation line"));
                };
                // Multi-line `Description:` headers indent continuation lines with up to
                // eight spaces and a `|`.
                let trimmed = line.trim_start_matches([' ', '\t']);
                value.push('\n');
                value.push_str(trimmed.strip_prefix('|').unwrap_or(trimmed));
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(bad(&format!(
                    "line `{}` is not a `Key: value` field",
                    line.chars().take(60).collect::<String>().escape_default()
                )));
            };
            if key.is_empty() || key.contains([' ', '\t']) {
                return Err(bad("a field name is empty or contains spaces"));
            }
            fields.push((key.to_ascii_lowercase(), value.trim().to_owned()));
        }
        for line in lines {
            body.push_str(line);
            body.push('\n');
        }
        let m = Self {
            fields,
            body: body.trim_end().to_owned(),
        };
        for required in ["metadata-version", "name", "version"] {
            if m.get(required).is_none_or(str::is_empty) {
                return Err(bad(&format!("the `{required}` field is missing")));
            }
        }
        Ok(m)
    }

    /// The first value of a field (key case-insensitive).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        let key = key.to_ascii_lowercase();
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a multi-use field (`Classifier`, `Requires-Dist`, ...).
    #[must_use]
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        let key = key.to_ascii_lowercase();
        self.fields
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `Name`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.get("name").unwrap_or_default()
    }

    /// `Version`.
    #[must_use]
    pub fn version(&self) -> &str {
        self.get("version").unwrap_or_default()
    }

    /// `Requires-Python`, when set.
    #[must_use]
    pub fn requires_python(&self) -> Option<&str> {
        self.get("requires-python").filter(|s| !s.is_empty())
    }

    /// The long description: the message body, else the `Description` field.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        if self.body.is_empty() {
            self.get("description").filter(|d| !d.is_empty())
        } else {
            Some(&self.body)
        }
    }

    /// The fields of the JSON API's `info` object that come from core metadata (as the
    /// public index's JSON API names them).
    #[must_use]
    pub fn to_info(&self) -> Map<String, Value> {
        let single = |k: &str| {
            self.get(k)
                .filter(|s| !s.is_empty() && *s != "UNKNOWN")
                .map_or(Value::Null, |s| Value::String(s.to_owned()))
        };
        let list = |k: &str| {
            let all = self.get_all(k);
            if all.is_empty() {
                Value::Null
            } else {
                json!(all)
            }
        };
        let mut info = Map::new();
        for (key, field) in [
            ("metadata_version", "metadata-version"),
            ("name", "name"),
            ("version", "version"),
            ("summary", "summary"),
            ("description_content_type", "description-content-type"),
            ("author", "author"),
            ("author_email", "author-email"),
            ("maintainer", "maintainer"),
            ("maintainer_email", "maintainer-email"),
            ("license", "license"),
            ("license_expression", "license-expression"),
            ("keywords", "keywords"),
            ("platform", "platform"),
            ("home_page", "home-page"),
            ("download_url", "download-url"),
            ("requires_python", "requires-python"),
        ] {
            info.insert(key.into(), single(field));
        }
        info.insert("description".into(), json!(self.description()));
        info.insert("classifiers".into(), json!(self.get_all("classifier")));
        info.insert("requires_dist".into(), list("requires-dist"));
        info.insert("provides_extra".into(), list("provides-extra"));
        info.insert("license_files".into(), list("license-file"));
        info.insert("dynamic".into(), list("dynamic"));
        let urls: Map<String, Value> = self
            .get_all("project-url")
            .into_iter()
            .filter_map(|u| {
                let (label, url) = u.split_once(',')?;
                Some((
                    label.trim().to_owned(),
                    Value::String(url.trim().to_owned()),
                ))
            })
            .collect();
        info.insert(
            "project_urls".into(),
            if urls.is_empty() {
                Value::Null
            } else {
                Value::Object(urls)
            },
        );
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_body_and_continuations() {
        let m = CoreMetadata::parse(
            b"Metadata-Version: 2.1\r\nName: Demo_Pkg\r\nVersion: 1.0\r\nSummary: A demo\r\n\
              Classifier: A\r\nClassifier: B\r\nProject-URL: Home, https://example.invalid/\r\n\
              Requires-Python: >=3.8\r\nLicense: line one\r\n        |line two\r\n\r\n# Readme\r\n\r\nbody\r\n",
        )
        .expect("valid");
        assert_eq!(m.name(), "Demo_Pkg");
        assert_eq!(m.requires_python(), Some(">=3.8"));
        let info = m.to_info();
        assert_eq!(info["classifiers"], json!(["A", "B"]));
        assert_eq!(info["license"], "line one\nline two");
        assert_eq!(info["description"], "# Readme\r\n\r\nbody");
        assert_eq!(info["project_urls"]["Home"], "https://example.invalid/");
        assert_eq!(info["requires_dist"], Value::Null);
    }

    #[test]
    fn refuses_what_is_not_metadata() {
        for bad in [
            &b"\xff\xfe"[..],
            b"hello world",
            b"Name: x\nVersion: 1\n",
            b"  continued\nName: x\n",
            b"Metadata-Version: 2.1\nName: x\n",
        ] {
            assert!(CoreMetadata::parse(bad).is_err(), "{bad:?}");
        }
    }
}
