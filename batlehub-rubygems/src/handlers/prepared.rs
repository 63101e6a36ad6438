//! A gem's versions before policy: what the local index or an upstream's `/info` holds,
//! read once per state and shared by every caller's view.

use chrono::{DateTime, Utc};

use crate::handlers::compact::CompactDoc;

/// One version (and platform) of a gem.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) number: String,
    pub(crate) platform: String,
    /// Its `/info` line.
    pub(crate) line: String,
    /// The `.gem`'s sha256 (hex), from the `checksum:` of its line.
    pub(crate) sha256: Option<String>,
    pub(crate) published_at: Option<DateTime<Utc>>,
}

impl Entry {
    /// `1.0.0` or `1.0.0-java`: the key a local version is stored under, and how
    /// `/versions` lists it.
    pub(crate) fn key(&self) -> String {
        crate::name::full_name("", &self.number, &self.platform)
            .trim_start_matches('-')
            .to_owned()
    }

    pub(crate) fn is(&self, number: &str, platform: &str) -> bool {
        self.number == number && self.platform == platform
    }
}

/// A gem's versions before policy, in `/info` order, with the `/info` of all of them.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) entries: Vec<Entry>,
    /// `/info` with every entry (an upstream's, byte for byte).
    pub(crate) plain: CompactDoc,
    /// Which upstream served it (`0` for a local gem).
    pub(crate) upstream: usize,
}

impl Prepared {
    pub(crate) fn new(entries: Vec<Entry>, plain: CompactDoc, upstream: usize) -> Self {
        Self {
            entries,
            plain,
            upstream,
        }
    }

    pub(crate) fn weight(&self) -> usize {
        self.plain.weight() * 2 + self.entries.len() * 96
    }
}
