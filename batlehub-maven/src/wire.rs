//! Maven's XML documents: reading POMs and `maven-metadata.xml` (safely), writing metadata.
//!
//! The reader refuses DOCTYPE declarations outright, so no entity can be defined and an
//! entity-expansion bomb cannot be written; only the five predefined entities and
//! character references are resolved. Documents are size- and depth-bounded.

use std::collections::HashMap;

use batlehub_core::{Error, Result};
use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

/// The largest POM accepted.
pub(crate) const MAX_POM: usize = 4 * 1024 * 1024;
/// The largest uploaded or upstream `maven-metadata.xml` read.
pub(crate) const MAX_METADATA: usize = 8 * 1024 * 1024;
const MAX_DEPTH: usize = 64;

/// Walks `xml`, returning the text of every element whose slash-joined path (from the
/// root, local names) is in `wanted`, in document order.
fn collect(what: &str, xml: &[u8], wanted: &[&str]) -> Result<HashMap<String, Vec<String>>> {
    let bad = |detail: String| Error::BadRequest(format!("{what} is not valid XML: {detail}"));
    let text = std::str::from_utf8(xml).map_err(|_| bad("not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current: Option<String> = None;
    let mut root_seen = false;
    loop {
        let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
        match event {
            Event::DocType(_) => {
                return Err(Error::BadRequest(format!(
                    "{what} has a DOCTYPE declaration; DTDs and entity definitions are refused"
                )));
            }
            Event::Start(e) => {
                if path.is_empty() && root_seen {
                    return Err(bad("more than one root element".into()));
                }
                root_seen = true;
                path.push(e.local_name().as_ref().to_owned());
                if path.len() > MAX_DEPTH {
                    return Err(bad("nested too deeply".into()));
                }
                let joined = path.join("/");
                current = wanted.contains(&joined.as_str()).then(String::new);
            }
            Event::Empty(e) => {
                if path.is_empty() {
                    if root_seen {
                        return Err(bad("more than one root element".into()));
                    }
                    root_seen = true;
                }
                let mut joined = path.join("/");
                if !joined.is_empty() {
                    joined.push('/');
                }
                joined.push_str(e.local_name().as_ref());
                if wanted.contains(&joined.as_str()) {
                    out.entry(joined).or_default().push(String::new());
                }
            }
            Event::End(_) => {
                let joined = path.join("/");
                if let Some(t) = current.take() {
                    out.entry(joined).or_default().push(t.trim().to_owned());
                }
                path.pop();
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.xml10_content());
                } else if path.is_empty() && !t.xml10_content().trim().is_empty() {
                    return Err(bad("text outside the root element".into()));
                }
            }
            Event::CData(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved =
                    if let Some(ch) = r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                        ch
                    } else {
                        match r.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => {
                                return Err(bad(format!("undefined entity `&{other};`")));
                            }
                        }
                    };
                if let Some(c) = current.as_mut() {
                    c.push(resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() || !root_seen {
        return Err(bad("the document is incomplete".into()));
    }
    Ok(out)
}

fn first(map: &HashMap<String, Vec<String>>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(|v| v.first())
        .filter(|s| !s.is_empty())
        .cloned()
}

/// The coordinates a POM declares (`groupId`/`version` fall back to `<parent>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pom {
    pub(crate) group: String,
    pub(crate) artifact: String,
    pub(crate) version: String,
}

/// Parses the coordinates out of a POM.
pub(crate) fn parse_pom(xml: &[u8]) -> Result<Pom> {
    if xml.len() > MAX_POM {
        return Err(Error::PayloadTooLarge(format!(
            "POM exceeds the limit of {MAX_POM} bytes"
        )));
    }
    let m = collect(
        "the POM",
        xml,
        &[
            "project/groupId",
            "project/artifactId",
            "project/version",
            "project/parent/groupId",
            "project/parent/version",
        ],
    )?;
    if !m.keys().any(|k| k.starts_with("project/")) && !xml.windows(8).any(|w| w == b"<project") {
        return Err(Error::BadRequest("the POM has no <project> root".into()));
    }
    let missing = |f: &str| Error::BadRequest(format!("the POM has no {f}"));
    Ok(Pom {
        group: first(&m, "project/groupId")
            .or_else(|| first(&m, "project/parent/groupId"))
            .ok_or_else(|| missing("groupId (nor a parent groupId)"))?,
        artifact: first(&m, "project/artifactId").ok_or_else(|| missing("artifactId"))?,
        version: first(&m, "project/version")
            .or_else(|| first(&m, "project/parent/version"))
            .ok_or_else(|| missing("version (nor a parent version)"))?,
    })
}

/// What a `maven-metadata.xml` says, as far as batlehub uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) group: Option<String>,
    pub(crate) artifact: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) versions: Vec<String>,
    pub(crate) last_updated: Option<String>,
}

/// Parses a `maven-metadata.xml`.
pub(crate) fn parse_metadata(xml: &[u8]) -> Result<Metadata> {
    if xml.len() > MAX_METADATA {
        return Err(Error::PayloadTooLarge(format!(
            "maven-metadata.xml exceeds the limit of {MAX_METADATA} bytes"
        )));
    }
    let m = collect(
        "maven-metadata.xml",
        xml,
        &[
            "metadata/groupId",
            "metadata/artifactId",
            "metadata/version",
            "metadata/versioning/versions/version",
            "metadata/versioning/lastUpdated",
            "metadata/versioning/latest",
        ],
    )?;
    Ok(Metadata {
        group: first(&m, "metadata/groupId"),
        artifact: first(&m, "metadata/artifactId"),
        version: first(&m, "metadata/version"),
        versions: m
            .get("metadata/versioning/versions/version")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect(),
        last_updated: first(&m, "metadata/versioning/lastUpdated"),
    })
}

/// Renders artifact-level metadata. `versions` must be sorted (Maven order).
pub(crate) fn render_artifact_metadata(
    group: &str,
    artifact: &str,
    versions: &[String],
    last_updated: &str,
) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n");
    s.push_str(&format!("  <groupId>{}</groupId>\n", escape(group)));
    s.push_str(&format!(
        "  <artifactId>{}</artifactId>\n",
        escape(artifact)
    ));
    s.push_str("  <versioning>\n");
    if let Some(latest) = versions.last() {
        s.push_str(&format!(
            "    <latest>{}</latest>\n",
            escape(latest.as_str())
        ));
    }
    if let Some(release) = versions.iter().rev().find(|v| !crate::name::is_snapshot(v)) {
        s.push_str(&format!(
            "    <release>{}</release>\n",
            escape(release.as_str())
        ));
    }
    s.push_str("    <versions>\n");
    for v in versions {
        s.push_str(&format!(
            "      <version>{}</version>\n",
            escape(v.as_str())
        ));
    }
    s.push_str("    </versions>\n");
    s.push_str(&format!("    <lastUpdated>{last_updated}</lastUpdated>\n"));
    s.push_str("  </versioning>\n</metadata>\n");
    s
}

/// One `<snapshotVersion>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotFile {
    pub(crate) classifier: String,
    pub(crate) extension: String,
    pub(crate) value: String,
    pub(crate) updated: String,
}

/// Renders version-level metadata of a SNAPSHOT.
pub(crate) fn render_snapshot_metadata(
    group: &str,
    artifact: &str,
    version: &str,
    latest: Option<(&str, u32)>,
    files: &[SnapshotFile],
    last_updated: &str,
) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata modelVersion=\"1.1.0\">\n",
    );
    s.push_str(&format!("  <groupId>{}</groupId>\n", escape(group)));
    s.push_str(&format!(
        "  <artifactId>{}</artifactId>\n",
        escape(artifact)
    ));
    s.push_str(&format!("  <version>{}</version>\n", escape(version)));
    s.push_str("  <versioning>\n");
    if let Some((ts, n)) = latest {
        s.push_str(&format!(
            "    <snapshot>\n      <timestamp>{}</timestamp>\n      <buildNumber>{n}</buildNumber>\n    </snapshot>\n",
            escape(ts)
        ));
    }
    s.push_str(&format!("    <lastUpdated>{last_updated}</lastUpdated>\n"));
    s.push_str("    <snapshotVersions>\n");
    for f in files {
        s.push_str("      <snapshotVersion>\n");
        if !f.classifier.is_empty() {
            s.push_str(&format!(
                "        <classifier>{}</classifier>\n",
                escape(f.classifier.as_str())
            ));
        }
        s.push_str(&format!(
            "        <extension>{}</extension>\n        <value>{}</value>\n        <updated>{}</updated>\n",
            escape(f.extension.as_str()),
            escape(f.value.as_str()),
            escape(f.updated.as_str())
        ));
        s.push_str("      </snapshotVersion>\n");
    }
    s.push_str("    </snapshotVersions>\n  </versioning>\n</metadata>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pom_with_parent() {
        let pom = br#"<?xml version="1.0"?>
<project xmlns="urn:example:pom">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>2.0</version></parent>
  <artifactId>child</artifactId>
  <dependencies><dependency><groupId>x</groupId><artifactId>y</artifactId><version>9</version></dependency></dependencies>
</project>"#;
        let p = parse_pom(pom).expect("pom");
        assert_eq!(
            p,
            Pom {
                group: "org.example".into(),
                artifact: "child".into(),
                version: "2.0".into()
            }
        );
    }

    #[test]
    fn refuses_bombs_and_garbage() {
        let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<project><groupId>&lol2;</groupId></project>"#;
        let e = parse_pom(bomb).expect_err("bomb");
        assert!(e.to_string().contains("DOCTYPE"), "{e}");
        assert!(parse_pom(b"<project><groupId>a</groupId>").is_err());
        assert!(parse_pom(b"<project><groupId>&foo;</groupId></project>").is_err());
        assert!(parse_metadata(b"not xml <").is_err());
        let m = parse_metadata(
            b"<metadata><groupId>a&amp;b</groupId><versioning><versions><version>1</version><version>2</version></versions></versioning></metadata>",
        )
        .expect("meta");
        assert_eq!(m.group.as_deref(), Some("a&b"));
        assert_eq!(m.versions, ["1", "2"]);
    }
}
