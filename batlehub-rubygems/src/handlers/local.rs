//! Gems pushed to this source: their `/info` built from the index rows (one line per
//! version and platform, in push order, yanked ones left out), and the list of them all.

use std::sync::Arc;

use batlehub_core::model::{LocalPackage, VersionRecord};
use batlehub_core::protocol::Cx;
use batlehub_core::{Error, Result};

use crate::handlers::compact::CompactDoc;
use crate::handlers::prepared::{Entry, Prepared};
use crate::wire::Stored;

/// What a local version keeps beside its row.
pub(crate) fn stored(record: &VersionRecord) -> Result<Stored> {
    serde_json::from_value(record.metadata.clone()).map_err(|e| {
        Error::internal(format!(
            "the stored gemspec of {} {} is unreadable: {e}",
            record.package, record.version
        ))
    })
}

/// The local gem `name`, prepared once per state of its index rows.
pub(crate) async fn prepared(cx: &Cx, name: &str) -> Result<Option<Arc<Prepared>>> {
    let Some(pkg) = cx.registry.local_package(name).await? else {
        return Ok(None);
    };
    let key = format!("gem-local:{}:{name}", cx.registry.name());
    let weight = pkg.versions.len().saturating_mul(320);
    let prepared = cx.registry.memo().derived(key, &pkg, weight, build)?;
    Ok(Some(prepared))
}

fn build(pkg: &LocalPackage) -> Result<Prepared> {
    let mut entries = Vec::new();
    for record in pkg.versions.iter().filter(|v| !v.yanked) {
        let s = stored(record)?;
        let sha256 = record.files.first().map(|f| f.sha256.clone());
        entries.push(Entry {
            number: s.spec.version,
            platform: s.spec.platform,
            line: s.info,
            sha256,
            published_at: Some(record.published_at),
        });
    }
    let plain = CompactDoc::new(crate::index::info_document(
        entries.iter().map(|e| e.line.as_str()),
    ));
    Ok(Prepared::new(entries, plain, 0))
}

/// The names of every local gem with at least one version, sorted.
pub(crate) async fn names(cx: &Cx) -> Result<Vec<String>> {
    const PAGE: u32 = 1000;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = cx.registry.local().search("", offset, PAGE).await?;
        let n = u32::try_from(page.len()).unwrap_or(PAGE);
        out.extend(page.into_iter().map(|p| p.name));
        if n < PAGE {
            break;
        }
        offset += PAGE;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The local version `number`/`platform` of `name`.
pub(crate) async fn record(
    cx: &Cx,
    name: &str,
    number: &str,
    platform: &str,
) -> Result<Option<VersionRecord>> {
    let key = crate::name::full_name("", number, platform);
    cx.registry
        .local()
        .version(name, key.trim_start_matches('-'))
        .await
}
