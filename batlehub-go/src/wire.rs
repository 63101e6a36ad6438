//! The GOPROXY documents: `.info` (and `@latest`) JSON and the `@v/list` text.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// `.info` and `@latest`: `{"Version":"v1.2.3","Time":"2026-01-02T03:04:05Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Info {
    /// The canonical version.
    #[serde(rename = "Version")]
    pub(crate) version: String,
    /// When it was published (RFC 3339, UTC).
    #[serde(rename = "Time", default, skip_serializing_if = "Option::is_none")]
    pub(crate) time: Option<String>,
}

impl Info {
    pub(crate) fn new(version: &str, time: Option<DateTime<Utc>>) -> Self {
        Self {
            version: version.to_owned(),
            time: time.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    /// The publish time, when the upstream gave a valid one.
    pub(crate) fn published_at(&self) -> Option<DateTime<Utc>> {
        self.time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// `@v/list`: one version per line, each ending in a newline.
pub(crate) fn list<'a>(versions: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for v in versions {
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// The versions of an upstream `@v/list`: the first field of each line (a second, a time,
/// is ignored, as the go command does for lists).
pub(crate) fn parse_list(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
