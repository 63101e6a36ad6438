//! A strict reader of the YAML `gem build` writes: one document, no anchors or aliases (a
//! "billion laughs" is refused at its first `&`/`*`), tags only from an allow-list (the
//! `Gem::*` objects of a gemspec), and bounded in depth and size.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// The tags a gemspec may carry (local tags, `!` handle), and the core schema's.
const ALLOWED_TAGS: &[&str] = &[
    "ruby/object:Gem::Specification",
    "ruby/object:Gem::Version",
    "ruby/object:Gem::Requirement",
    "ruby/object:Gem::Dependency",
    "ruby/object:Gem::Platform",
];

/// The deepest nesting accepted (a gemspec nests six levels).
const MAX_DEPTH: usize = 32;
/// The most events accepted (a gemspec listing thousands of files has tens of thousands).
const MAX_EVENTS: usize = 1_000_000;

/// A YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A scalar: its text, whether it was plain (unquoted: `~`/empty are null, `:x` a
    /// symbol), and its tag suffix (`ruby/object:Gem::Version`).
    Scalar {
        value: String,
        plain: bool,
        tag: Option<String>,
    },
    /// A sequence.
    Seq(Vec<Node>, Option<String>),
    /// A mapping, in document order.
    Map(Vec<(String, Node)>, Option<String>),
}

impl Node {
    /// The text of a scalar that is not null.
    pub(crate) fn str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, plain, .. } if !(*plain && is_null(value)) => Some(value),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items of a sequence (none for anything else).
    pub(crate) fn items(&self) -> &[Node] {
        match self {
            Node::Seq(items, _) => items,
            _ => &[],
        }
    }

    /// The tag suffix.
    pub(crate) fn tag(&self) -> Option<&str> {
        match self {
            Node::Scalar { tag, .. } | Node::Seq(_, tag) | Node::Map(_, tag) => tag.as_deref(),
        }
    }
}

fn is_null(v: &str) -> bool {
    matches!(v, "" | "~" | "null" | "Null" | "NULL")
}

/// Reads one YAML document.
///
/// # Errors
/// Why it is refused: not YAML, more than one document, an anchor or alias, a tag not
/// allowed, too deep or too large, or a mapping key that is not a plain string.
pub(crate) fn parse(text: &str) -> Result<Node, String> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for (n, item) in Parser::new_from_str(text).enumerate() {
        if n > MAX_EVENTS {
            return Err("the YAML is too large".into());
        }
        let (event, span) = item.map_err(|e| format!("not valid YAML: {e}"))?;
        let at = span.start.line();
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err("the YAML holds more than one document".into());
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(format!("YAML aliases are not accepted (line {at})"));
            }
            Event::Scalar(value, style, anchor, tag) => {
                check_anchor(anchor, at)?;
                Node::Scalar {
                    value: value.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    tag: checked_tag(tag.as_ref(), at)?,
                }
            }
            Event::SequenceStart(anchor, tag) => {
                check_anchor(anchor, at)?;
                push(
                    &mut stack,
                    Frame::Seq(Vec::new(), checked_tag(tag.as_ref(), at)?),
                )?;
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                check_anchor(anchor, at)?;
                push(
                    &mut stack,
                    Frame::Map(Vec::new(), None, checked_tag(tag.as_ref(), at)?),
                )?;
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, tag)) => Node::Seq(items, tag),
                _ => return Err("unbalanced YAML sequence".into()),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, None, tag)) => Node::Map(entries, tag),
                _ => return Err("unbalanced YAML mapping".into()),
            },
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => match node {
                    Node::Scalar {
                        value, tag: None, ..
                    } => *key = Some(value),
                    _ => return Err(format!("a YAML mapping key is not a string (line {at})")),
                },
            },
        }
    }
    root.ok_or_else(|| "the YAML is empty".into())
}

enum Frame {
    Seq(Vec<Node>, Option<String>),
    Map(Vec<(String, Node)>, Option<String>, Option<String>),
}

fn push(stack: &mut Vec<Frame>, frame: Frame) -> Result<(), String> {
    if stack.len() >= MAX_DEPTH {
        return Err("the YAML is nested too deeply".into());
    }
    stack.push(frame);
    Ok(())
}

fn check_anchor(anchor: usize, line: usize) -> Result<(), String> {
    if anchor == 0 {
        Ok(())
    } else {
        Err(format!("YAML anchors are not accepted (line {line})"))
    }
}

fn checked_tag(
    tag: Option<&Cow<'_, saphyr_parser::Tag>>,
    line: usize,
) -> Result<Option<String>, String> {
    let Some(tag) = tag else { return Ok(None) };
    if tag.is_yaml_core_schema() {
        return Ok(None);
    }
    if tag.handle == "!" && ALLOWED_TAGS.contains(&tag.suffix.as_str()) {
        return Ok(Some(tag.suffix.clone()));
    }
    Err(format!(
        "YAML tag {}{} is not accepted in a gemspec (line {line})",
        tag.handle, tag.suffix
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tagged_mappings() {
        let doc = parse(
            "--- !ruby/object:Gem::Specification\nname: demo\nversion: !ruby/object:Gem::Version\n  version: '1.0'\nauthors:\n- A\nautorequire:\ntype: :runtime\n",
        )
        .expect("valid");
        assert_eq!(doc.tag(), Some("ruby/object:Gem::Specification"));
        assert_eq!(doc.get("name").and_then(Node::str), Some("demo"));
        let version = doc.get("version").expect("version");
        assert_eq!(version.tag(), Some("ruby/object:Gem::Version"));
        assert_eq!(version.get("version").and_then(Node::str), Some("1.0"));
        assert_eq!(doc.get("authors").map(|a| a.items().len()), Some(1));
        assert_eq!(doc.get("autorequire").and_then(Node::str), None);
        assert_eq!(doc.get("type").and_then(Node::str), Some(":runtime"));
    }

    #[test]
    fn refuses_what_a_gemspec_never_holds() {
        for (yaml, why) in [
            ("a: &x [1]\nb: *x\n", "anchors"),
            ("a: *x\n", "not valid YAML"),
            ("--- !ruby/object:Kernel\nx: 1\n", "not accepted"),
            (
                "--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nx: 1\n",
                "not accepted",
            ),
            ("a: 1\n---\nb: 2\n", "more than one document"),
            ("? [1, 2]\n: x\n", "not a string"),
            (&"[".repeat(100), "deeply"),
        ] {
            let err = parse(yaml).expect_err(yaml);
            assert!(err.contains(why), "{yaml}: {err}");
        }
    }
}
