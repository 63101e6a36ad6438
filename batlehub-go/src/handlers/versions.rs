//! A module's versions prepared for serving: sorted once, the list every version allowed
//! rendered once with its `ETag`, shared by the local and the upstream paths.

use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol;
use bytes::Bytes;
use std::cmp::Ordering;

use crate::name::Version;
use crate::wire;

/// Orders versions as the go command does (semver; invalid ones first).
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let parse = |v: &str| semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok();
    parse(a).cmp(&parse(b))
}

/// A module's versions before policy, sorted, with the list every version allowed already
/// rendered: built once per state of a local module or per upstream list document and kept
/// in the memory cache, so a request only asks policy and, when it denies nothing, serves
/// the bytes.
pub(crate) struct PreparedList {
    /// Stored versions (no `v`), oldest first, with their publish times when known.
    pub(crate) facts: Vec<VersionFacts>,
    /// The same, as the go command writes them.
    pub(crate) versions: Vec<Version>,
    /// `@v/list` with every version (pseudo-versions are never listed).
    pub(crate) plain: Bytes,
    pub(crate) plain_etag: String,
}

impl PreparedList {
    pub(crate) fn new(facts: Vec<VersionFacts>) -> Self {
        let mut keyed: Vec<(Option<semver::Version>, VersionFacts, Version)> = facts
            .into_iter()
            .filter_map(|f| {
                let v = Version::from_stored(&f.version).ok()?;
                Some((semver::Version::parse(&f.version).ok(), f, v))
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let (facts, versions): (Vec<VersionFacts>, Vec<Version>) =
            keyed.into_iter().map(|(_, f, v)| (f, v)).unzip();
        let plain = Bytes::from(render(&versions, |_| true));
        Self {
            plain_etag: protocol::etag_of(&plain),
            facts,
            versions,
            plain,
        }
    }

    pub(crate) fn weight(&self) -> usize {
        self.plain.len() * 4 + self.facts.len() * 96
    }
}

/// `@v/list` of the versions `keep` lets through, pseudo-versions left out.
pub(crate) fn render(versions: &[Version], keep: impl Fn(usize) -> bool) -> String {
    let kept = versions
        .iter()
        .enumerate()
        .filter(|(i, v)| keep(*i) && !v.is_pseudo())
        .map(|(_, v)| v.as_str());
    wire::list(kept)
}
