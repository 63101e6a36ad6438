//! A gem's versions as the index serves them: read once per state of a local gem or per
//! upstream `/info` document (lines, checksums, publish times), then decided per caller by
//! policy.
//!
//! A version policy refuses stays in `/info`, with one more dependency: on a gem that
//! cannot exist, named after the rule (`batlehub.refused-by.release_age_gate.until-...`),
//! required `< 0`. Resolvers (bundler, `gem`) therefore never pick it and fall back to an
//! older version, and a Gemfile or `gem install -v` pinning it fails naming the rule and,
//! for the release-age gate, when it becomes eligible: the explanation reaches the user,
//! where a version left out would only be "not found". Its `.gem` is refused with the
//! reason. The full index and the JSON APIs leave it out.

use std::sync::Arc;

use batlehub_core::model::Decision;
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::Cx;
use batlehub_core::{Error, MemoCache, Permission, Result};

use crate::handlers::compact::CompactDoc;
pub(crate) use crate::handlers::prepared::{Entry, Prepared};
use crate::handlers::{local, proxy, unknown_gem};

/// What one caller may see of a gem.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) prepared: Arc<Prepared>,
    /// Which entries policy lets through (`None`: all).
    pub(crate) allowed: Option<Vec<bool>>,
    /// Policy's decision for each entry.
    pub(crate) decisions: Vec<Decision>,
    /// Publish times, as learned.
    pub(crate) facts: Vec<VersionFacts>,
    /// Built from a stale copy of the upstream's document.
    pub(crate) stale: bool,
    /// Served from the local index.
    pub(crate) local: bool,
}

impl View {
    pub(crate) fn visible(&self, i: usize) -> bool {
        self.allowed.as_ref().is_none_or(|a| a[i])
    }

    /// `/info` as this caller sees it: refused versions carry the refusal's marker. Built
    /// once per document and set of refusals (kept in `memo`).
    pub(crate) fn info(&self, memo: &MemoCache) -> Arc<CompactDoc> {
        if self.allowed.is_none() {
            return Arc::new(self.prepared.plain.clone());
        }
        let markers: Vec<(usize, String)> = self
            .decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                Decision::Deny(denial) => Some((i, refusal_marker(denial))),
                _ => None,
            })
            .collect();
        let signature: String = markers.iter().map(|(i, m)| format!("{i}={m};")).collect();
        let key = format!(
            "gem-info-refused:{}:{}",
            self.prepared.plain.md5,
            crate::handlers::compact::md5_hex(signature.as_bytes())
        );
        if let Some(hit) = memo.get::<CompactDoc>(&key) {
            return hit;
        }
        let lines: Vec<String> = self
            .prepared
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| match markers.iter().find(|(at, _)| *at == i) {
                Some((_, marker)) => refused_line(&e.line, marker),
                None => e.line.clone(),
            })
            .collect();
        let doc = Arc::new(CompactDoc::new(crate::index::info_document(
            lines.iter().map(String::as_str),
        )));
        memo.insert(key, doc.clone(), doc.weight());
        doc
    }

    /// The versions field of its `/versions` line (`1.0.0,1.0.0-java`): every version of
    /// its `/info`.
    pub(crate) fn versions_field(&self) -> String {
        self.prepared
            .entries
            .iter()
            .map(Entry::key)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The entry for `number`/`platform`, refused with policy's reason when policy refuses
    /// it, `404` when there is none.
    pub(crate) fn entry(
        &self,
        name: &str,
        number: &str,
        platform: &str,
    ) -> Result<(usize, &Entry)> {
        let (i, e) = self
            .prepared
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.is(number, platform))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{} could not be found on this source",
                    crate::name::full_name(name, number, platform)
                ))
            })?;
        match &self.decisions[i] {
            Decision::Deny(d) => Err(Error::Denied(d.clone())),
            _ => Ok((i, e)),
        }
    }
}

/// Names of the gems refusal markers depend on start with this; `/info` of such a name is
/// empty.
pub(crate) const REFUSED_PREFIX: &str = "batlehub.refused-by.";

/// The gem a refused version depends on: the rule and, for a refusal that ends, when.
pub(crate) fn refusal_marker(denial: &batlehub_core::Denial) -> String {
    let rule: String = denial
        .rule
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let until = denial
        .eligible_at
        .map(|at| format!(".until-{}", at.format("%Y-%m-%dT%H.%MZ")))
        .unwrap_or_default();
    format!("{REFUSED_PREFIX}{rule}{until}")
}

/// An `/info` line with the refusal's marker among its dependencies.
fn refused_line(line: &str, marker: &str) -> String {
    let marker = format!("{marker}:< 0");
    let Some((head, rest)) = line.split_once(' ') else {
        return line.to_owned();
    };
    let (deps, reqs) = rest.split_once('|').unwrap_or((rest, ""));
    let deps = if deps.is_empty() {
        marker
    } else {
        format!("{deps},{marker}")
    };
    format!("{head} {deps}|{reqs}")
}

/// The gem `name` as `cx`'s caller may see it; `None` when this source does not have it.
/// Package-level access (RBAC, blocks, visibility) is checked first.
pub(crate) async fn view(cx: &Cx, name: &str) -> Result<Option<View>> {
    cx.registry
        .check_package(&cx.caller, Permission::ReleasesRead, name)
        .await?;
    let (prepared, stale, local) = if cx.is_local(name).await? {
        match local::prepared(cx, name).await? {
            Some(p) => (p, false, true),
            None => return Ok(None),
        }
    } else {
        match proxy::prepared(cx, name).await? {
            Some((p, stale)) => (p, stale, false),
            None => return Ok(None),
        }
    };
    let mut facts: Vec<VersionFacts> = prepared
        .entries
        .iter()
        .map(|e| VersionFacts {
            version: e.number.clone(),
            published_at: e.published_at,
        })
        .collect();
    if !local && cx.registry.uses_publish_times() && facts.iter().any(|f| f.published_at.is_none())
    {
        proxy::learn_publish_times(cx, name, &prepared, &mut facts).await?;
    }
    let decisions = cx
        .registry
        .version_decisions(&cx.caller, name, &facts)
        .await?;
    let allowed = (!decisions.iter().all(|d| matches!(d, Decision::Allow))).then(|| {
        decisions
            .iter()
            .map(|d| matches!(d, Decision::Allow))
            .collect()
    });
    Ok(Some(View {
        prepared,
        allowed,
        decisions,
        facts,
        stale,
        local,
    }))
}

/// Every local gem this caller may see, by name, with its view (gems hidden from the
/// caller, or refused whole, are left out).
pub(crate) async fn local_views(cx: &Cx) -> Result<Vec<(String, View)>> {
    let mut out = Vec::new();
    for name in local::names(cx).await? {
        match view(cx, &name).await {
            Ok(Some(v)) if v.local => out.push((name, v)),
            Ok(_)
            | Err(
                Error::NotFound(_)
                | Error::Denied(_)
                | Error::Forbidden(_)
                | Error::Unauthorized(_),
            ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// [`view`], `404` when this source does not have the gem.
pub(crate) async fn require(cx: &Cx, name: &str) -> Result<View> {
    view(cx, name).await?.ok_or_else(|| unknown_gem(name))
}

/// The gem, version and platform a file name (`{full_name}`) names, as this source knows
/// them: a name may hold `-2`, so each split is tried against the index, longest name
/// first.
pub(crate) async fn resolve_file(cx: &Cx, full_name: &str) -> Result<(String, View, usize)> {
    let mut first_err = None;
    for (name, number, platform) in crate::name::split_candidates(full_name) {
        match view(cx, name).await {
            Ok(Some(v)) => match v.entry(name, number, platform).map(|(i, _)| i) {
                Ok(i) => return Ok((name.to_owned(), v, i)),
                Err(e @ Error::Denied(_)) => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            },
            Ok(None) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Err(first_err.unwrap_or_else(|| super::unknown_file(full_name)))
}
