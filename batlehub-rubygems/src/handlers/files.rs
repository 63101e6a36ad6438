//! Files: `.gem` downloads, quick gemspecs and the full index (`specs.4.8.gz`,
//! `latest_specs.4.8.gz`, `prerelease_specs.4.8.gz`).
//!
//! A local source writes the full index and the quick gemspecs from the stored gemspecs,
//! with what policy refuses left out; a proxy passes the upstream's through (the full index
//! unfiltered: it is what `gem` falls back to when the compact index fails, and filtering
//! it would mean reading every gem's push times), and refuses a quick gemspec or a `.gem`
//! of a version policy refuses, with the reason.

use batlehub_core::body::Body;
use batlehub_core::policy::VersionFacts;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Error, Permission, Result};
use bytes::Bytes;
use http::{Response, StatusCode};

use crate::handlers::{OCTET, local, proxy, unknown_file, view};
use crate::routes::Specs;

/// `GET /gems/{full_name}.gem`.
pub(crate) async fn gem(cx: &Cx, full_name: &str) -> Result<Response<Body>> {
    // Refuse anonymous callers before touching any upstream.
    cx.registry
        .authorize(cx.identity(), Permission::SourceRead, None)?;
    let (name, view, i) = view::resolve_file(cx, full_name).await?;
    let entry = &view.prepared.entries[i];
    let facts = VersionFacts {
        version: entry.number.clone(),
        published_at: view.facts[i].published_at,
    };
    cx.registry
        .check_download(&cx.caller, Permission::SourceRead, &name, &facts)
        .await?;
    let artifact = if view.local {
        let record = local::record(cx, &name, &entry.number, &entry.platform)
            .await?
            .ok_or_else(|| unknown_file(&format!("{full_name}.gem")))?;
        let file = record
            .files
            .first()
            .ok_or_else(|| Error::internal(format!("{full_name} has no file")))?;
        cx.registry.open_blob(&file.sha256).await?
    } else {
        proxy::gem(cx, full_name, entry, view.prepared.upstream).await?
    };
    Ok(protocol::artifact(artifact, OCTET, cx.audience()))
}

/// `GET /quick/Marshal.4.8/{full_name}.gemspec.rz`.
pub(crate) async fn quick(cx: &Cx, full_name: &str) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    let (name, view, i) = view::resolve_file(cx, full_name).await?;
    let entry = &view.prepared.entries[i];
    if view.local {
        let record = local::record(cx, &name, &entry.number, &entry.platform)
            .await?
            .ok_or_else(|| unknown_file(&format!("{full_name}.gemspec.rz")))?;
        let stored = local::stored(&record)?;
        let date = record.published_at.format("%Y-%m-%d").to_string();
        let rz = crate::index::quick_spec(&stored.spec, &date);
        return Ok(protocol::typed(StatusCode::OK, OCTET, Bytes::from(rz)));
    }
    let path = format!("quick/Marshal.4.8/{full_name}.gemspec.rz");
    let (body, _, stale) = proxy::document(cx, &path, OCTET)
        .await?
        .ok_or_else(|| unknown_file(&format!("{full_name}.gemspec.rz")))?;
    let mut resp = protocol::typed(StatusCode::OK, OCTET, body);
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// `GET /specs.4.8.gz`, `/latest_specs.4.8.gz`, `/prerelease_specs.4.8.gz`.
pub(crate) async fn specs(cx: &Cx, which: Specs) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    let file = match which {
        Specs::All => "specs.4.8.gz",
        Specs::Latest => "latest_specs.4.8.gz",
        Specs::Prerelease => "prerelease_specs.4.8.gz",
    };
    if cx.registry.mode() == batlehub_core::Mode::Proxy {
        let (body, sha256, stale) = proxy::document(cx, file, OCTET)
            .await?
            .ok_or_else(|| unknown_file(file))?;
        let mut resp = protocol::conditional(&cx.parts, OCTET, body, Some(format!("\"{sha256}\"")));
        protocol::mark_stale(&mut resp, stale);
        return Ok(resp);
    }
    let mut tuples: Vec<(String, String, String)> = Vec::new();
    for (name, view) in view::local_views(cx).await? {
        let visible = view
            .prepared
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| view.visible(*i))
            .map(|(_, e)| e);
        let pre = |e: &&view::Entry| crate::name::is_prerelease(&e.number);
        match which {
            Specs::All => tuples.extend(
                visible
                    .filter(|e| !pre(e))
                    .map(|e| (name.clone(), e.number.clone(), e.platform.clone())),
            ),
            Specs::Prerelease => tuples.extend(
                visible
                    .filter(pre)
                    .map(|e| (name.clone(), e.number.clone(), e.platform.clone())),
            ),
            Specs::Latest => {
                // The newest release of each platform.
                let mut newest: Vec<&view::Entry> = Vec::new();
                for e in visible.filter(|e| !pre(e)) {
                    match newest.iter_mut().find(|n| n.platform == e.platform) {
                        Some(n) if crate::name::compare(&e.number, &n.number).is_gt() => *n = e,
                        Some(_) => {}
                        None => newest.push(e),
                    }
                }
                tuples.extend(
                    newest
                        .into_iter()
                        .map(|e| (name.clone(), e.number.clone(), e.platform.clone())),
                );
            }
        }
    }
    let body = Bytes::from(crate::index::specs_index(&tuples));
    Ok(protocol::conditional(&cx.parts, OCTET, body, None))
}
