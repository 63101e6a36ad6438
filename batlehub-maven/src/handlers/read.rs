//! Reads: artifacts, their checksums, and generated `maven-metadata.xml`, with policy
//! applied on the way out.

use std::sync::{Arc, OnceLock};

use batlehub_core::body::Body;
use batlehub_core::model::{Decision, LocalPackage};
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Artifact, Error, Mode, Permission, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Response, StatusCode};

use crate::checksum::Algo;
use crate::handlers::{complete_builds, file_visible, last_updated, proxy, version_visible};
use crate::name::{Coords, is_snapshot, parse_file};
use crate::version;
use crate::wire::{self, SnapshotFile};
use batlehub_core::protocol::{self, Cx, typed};

/// `GET {group}/{artifact}[/{version}]/maven-metadata.xml[.checksum]`.
pub(crate) async fn metadata(
    ctx: &Cx,
    coords: &Coords,
    version: Option<&str>,
    checksum: Option<Algo>,
) -> Result<Response<Body>> {
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, &coords.key())
        .await?;
    let (xml, stale): (Bytes, bool) = match version {
        None => artifact_metadata(ctx, coords).await?,
        Some(v) => (snapshot_metadata(ctx, coords, v).await?, false),
    };
    let mut resp = match checksum {
        Some(algo) => typed(StatusCode::OK, "text/plain", algo.of(&xml)),
        None => {
            let mut resp = typed(StatusCode::OK, "text/xml", xml);
            resp.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            resp
        }
    };
    protocol::mark_stale(&mut resp, stale);
    Ok(resp)
}

/// One version of artifact-level metadata, before policy.
struct MetaEntry {
    version: String,
    /// Publish time when known without a lookup (local versions).
    at: Option<DateTime<Utc>>,
    local: bool,
}

/// The versions of an artifact before policy, built from one state of the local package
/// and one upstream document and sorted; kept in the memory cache and reused while both
/// are unchanged.
struct PreparedMeta {
    local: Option<Arc<LocalPackage>>,
    upstream_sha: Option<String>,
    entries: Vec<MetaEntry>,
    upstream_updated: Option<String>,
    found: bool,
    /// The document when policy denies nothing and no publish time is looked up.
    all: OnceLock<Bytes>,
}

impl PreparedMeta {
    fn build(
        coords: &Coords,
        local: Option<Arc<LocalPackage>>,
        upstream: Option<(Arc<wire::Metadata>, String)>,
    ) -> Self {
        let mut entries: Vec<MetaEntry> = Vec::new();
        if let Some(pkg) = &local {
            for v in pkg.versions.iter().filter(|v| version_visible(coords, v)) {
                entries.push(MetaEntry {
                    version: v.version.clone(),
                    at: Some(v.published_at),
                    local: true,
                });
            }
        }
        // A package whose versions all lack their POM is not there yet.
        let mut found = !entries.is_empty();
        let mut upstream_updated = None;
        let mut upstream_sha = None;
        if let Some((meta, sha)) = upstream {
            found = true;
            upstream_sha = Some(sha);
            upstream_updated = meta.last_updated.clone().filter(|s| s.len() == 14);
            let known: std::collections::HashSet<String> =
                entries.iter().map(|e| e.version.clone()).collect();
            let mut seen = std::collections::HashSet::new();
            for v in &meta.versions {
                if crate::name::check_version(v).is_err() || known.contains(v) || !seen.insert(v) {
                    continue;
                }
                entries.push(MetaEntry {
                    version: v.clone(),
                    at: None,
                    local: false,
                });
            }
        }
        entries.sort_by(|a, b| version::order(&a.version, &b.version));
        Self {
            local,
            upstream_sha,
            entries,
            upstream_updated,
            found,
            all: OnceLock::new(),
        }
    }

    /// The document listing the entries `allowed` keeps (`facts` give their publish times).
    fn render(&self, coords: &Coords, facts: &[VersionFacts], allowed: &[bool]) -> Bytes {
        let mut newest: Option<DateTime<Utc>> = None;
        let mut versions = Vec::new();
        for ((e, f), keep) in self.entries.iter().zip(facts).zip(allowed) {
            if *keep {
                if self.local.is_some() {
                    newest = newest.max(f.published_at);
                }
                versions.push(e.version.clone());
            }
        }
        let local_updated = newest.map(last_updated);
        let updated = match (local_updated, self.upstream_updated.clone()) {
            (Some(a), Some(b)) => a.max(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => "19700101000000".to_owned(),
        };
        wire::render_artifact_metadata(&coords.group, &coords.artifact, &versions, &updated).into()
    }
}

/// Artifact-level metadata: local versions (complete ones) or, in proxy and hybrid modes
/// for an artifact not deployed here, the upstream's; versions policy denies are removed and `latest`/`release`
/// recomputed from what is left. The flag says the upstream part is a stale copy.
pub(crate) async fn artifact_metadata(ctx: &Cx, coords: &Coords) -> Result<(Bytes, bool)> {
    let key = coords.key();
    let mode = ctx.registry.mode();
    let local = if mode == Mode::Proxy {
        None
    } else {
        ctx.registry.local().package_shared(&key).await?
    };
    // An artifact deployed here lists only its own versions: upstream versions never merge
    // into it (dependency-confusion guard).
    let upstream = if mode.has_upstreams() && !ctx.is_local(&key).await? {
        match proxy::upstream_metadata(ctx, coords).await {
            Ok(m) => m,
            // A hybrid registry still serves its own versions when the upstream fails.
            Err(e) if local.is_some() => {
                tracing::warn!(error = %e, %coords, "upstream metadata failed; serving local versions");
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let stale = upstream.as_ref().is_some_and(|u| u.2);
    let upstream = upstream.map(|(meta, sha, _)| (meta, sha));
    let memo_key = format!("maven-artifact:{}:{}", ctx.registry.name(), coords.path());
    let upstream_sha = upstream.as_ref().map(|(_, sha)| sha.as_str());
    let prepared = match ctx.registry.memo().get::<PreparedMeta>(&memo_key) {
        Some(hit)
            if hit.upstream_sha.as_deref() == upstream_sha
                && match (&hit.local, &local) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                } =>
        {
            hit
        }
        _ => {
            let prepared = Arc::new(PreparedMeta::build(coords, local, upstream));
            let weight = prepared.entries.len().saturating_mul(256);
            ctx.registry
                .memo()
                .insert(memo_key, prepared.clone(), weight);
            prepared
        }
    };
    if !prepared.found {
        return Err(Error::NotFound(format!("no artifact {coords} here")));
    }
    let mut facts: Vec<VersionFacts> = prepared
        .entries
        .iter()
        .map(|e| VersionFacts {
            version: e.version.clone(),
            published_at: e.at,
        })
        .collect();
    // Upstream publish times matter only to a policy that decides on them (an age gate).
    let times = ctx.registry.uses_publish_times();
    if times {
        for (f, e) in facts.iter_mut().zip(&prepared.entries) {
            if !e.local {
                f.published_at = proxy::pom_time(ctx, coords, &e.version).await?;
            }
        }
        learn_times(ctx, coords, &mut facts).await?;
    }
    let decisions = ctx
        .registry
        .version_decisions(&ctx.caller, &key, &facts)
        .await?;
    let allowed: Vec<bool> = decisions
        .iter()
        .map(|d| matches!(d, Decision::Allow))
        .collect();
    if allowed.iter().all(|a| *a) && (!times || prepared.local.is_none()) {
        let xml = prepared
            .all
            .get_or_init(|| prepared.render(coords, &facts, &allowed))
            .clone();
        return Ok((xml, stale));
    }
    Ok((prepared.render(coords, &facts, &allowed), stale))
}

/// The most upstream POMs fetched for one metadata request to learn publish times.
const MAX_TIME_LOOKUPS: usize = 8;

/// For upstream versions of unknown publish time that policy would refuse if they had just
/// been published (a release-age gate is in force), fetches their POMs (newest first, at
/// most [`MAX_TIME_LOOKUPS`]) so the gate sees their `Last-Modified`.
async fn learn_times(ctx: &Cx, coords: &Coords, entries: &mut [VersionFacts]) -> Result<()> {
    ctx.registry
        .learn_publish_times(
            &ctx.caller,
            &coords.key(),
            entries,
            MAX_TIME_LOOKUPS,
            version::compare,
            |v| async move { proxy::fetch_pom_time(ctx, coords, &v).await },
        )
        .await
}

/// Version-level metadata of a SNAPSHOT: the newest complete build and, per
/// classifier and extension, its newest file.
async fn snapshot_metadata(ctx: &Cx, coords: &Coords, version: &str) -> Result<Bytes> {
    let key = coords.key();
    let local = if ctx.registry.mode() == Mode::Proxy {
        None
    } else {
        ctx.registry.local().version(&key, version).await?
    };
    let Some(v) = local else {
        if ctx.registry.mode().has_upstreams() && !ctx.is_local(&key).await? {
            return proxy::upstream_snapshot_metadata(ctx, coords, version)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no {coords}:{version} here")));
        }
        return Err(Error::NotFound(format!("no {coords}:{version} here")));
    };
    let builds = complete_builds(coords, &v);
    if builds.is_empty() || v.yanked {
        return Err(Error::NotFound(format!("no {coords}:{version} here")));
    }
    let facts = VersionFacts::of(&v);
    if let Some(Decision::Deny(d)) = ctx
        .registry
        .version_decisions(&ctx.caller, &key, std::slice::from_ref(&facts))
        .await?
        .into_iter()
        .next()
    {
        return Err(Error::Denied(d));
    }
    let latest = builds
        .iter()
        .flatten()
        .max_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)))
        .cloned();
    let mut files: Vec<(Option<(String, u32)>, SnapshotFile)> = Vec::new();
    for f in &v.files {
        let Some(name) = parse_file(&coords.artifact, version, &f.filename) else {
            continue;
        };
        if !builds.contains(&name.build) {
            continue;
        }
        let entry = SnapshotFile {
            classifier: name.classifier.clone(),
            extension: name.extension.clone(),
            value: name.value(version),
            updated: name.build.as_ref().map_or_else(
                || last_updated(v.published_at),
                |(ts, _)| ts.replace('.', ""),
            ),
        };
        let rank = |b: &Option<(String, u32)>| b.as_ref().map(|(ts, n)| (*n, ts.clone()));
        match files
            .iter_mut()
            .find(|(_, e)| e.classifier == entry.classifier && e.extension == entry.extension)
        {
            Some(slot) if rank(&slot.0) < rank(&name.build) => *slot = (name.build, entry),
            Some(_) => {}
            None => files.push((name.build, entry)),
        }
    }
    let mut files: Vec<SnapshotFile> = files.into_iter().map(|(_, f)| f).collect();
    files.sort_by(|a, b| (&a.extension, &a.classifier).cmp(&(&b.extension, &b.classifier)));
    let updated = latest.as_ref().map_or_else(
        || last_updated(v.published_at),
        |(ts, _)| ts.replace('.', ""),
    );
    Ok(wire::render_snapshot_metadata(
        &coords.group,
        &coords.artifact,
        version,
        latest.as_ref().map(|(ts, n)| (ts.as_str(), *n)),
        &files,
        &updated,
    )
    .into())
}

/// `GET {group}/{artifact}/{version}/{file}[.checksum]`.
pub(crate) async fn file(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    checksum: Option<Algo>,
) -> Result<Response<Body>> {
    let name = parse_file(&coords.artifact, version, file)
        .ok_or_else(|| Error::NotFound(format!("no file {file} in {coords}:{version}")))?;
    let permission = if name.classifier == "sources" {
        Permission::SourceRead
    } else {
        Permission::ReleasesRead
    };
    ctx.registry
        .check_package(&ctx.caller, permission, &coords.key())
        .await?;
    let (artifact, modified, local) = open(ctx, coords, version, file, permission).await?;
    if let Some(algo) = checksum {
        // A proxied file's checksum is the upstream's own (so a client can tell when the
        // bytes served differ from the upstream's); without one, and for local files, it is
        // computed from bytes checked against the digest they were verified under.
        let path = format!("{}/{version}/{file}", coords.path());
        let upstream = if local {
            None
        } else {
            proxy::upstream_checksum(ctx, &path, algo).await
        };
        let hex = match upstream {
            Some(hex) => hex,
            None => {
                algo.of_body_checked(artifact.body, artifact.sha256.as_deref(), &path)
                    .await?
            }
        };
        return Ok(typed(StatusCode::OK, "text/plain", hex));
    }
    let content_type = match name.extension.as_str() {
        "pom" => "text/xml",
        "jar" => "application/java-archive",
        e if e.ends_with(".asc") => "text/plain",
        _ => "application/octet-stream",
    };
    let mut resp = protocol::artifact(artifact, content_type, ctx.audience());
    let h = resp.headers_mut();
    if is_snapshot(version) {
        // A SNAPSHOT version's files may be deployed again: revalidate them.
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    if let Some(lm) = modified.and_then(|at| {
        HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
    }) {
        h.insert(http::header::LAST_MODIFIED, lm);
    }
    Ok(resp)
}

/// Opens a file: a stored one (visible and allowed), else, with upstreams, the upstream's.
async fn open(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    permission: Permission,
) -> Result<(Artifact, Option<DateTime<Utc>>, bool)> {
    let key = coords.key();
    let mode = ctx.registry.mode();
    let not_found = || Error::NotFound(format!("no file {file} in {coords}:{version}"));
    if mode != Mode::Proxy {
        let stored = ctx.registry.local().version(&key, version).await?;
        if let Some(v) = stored {
            if let Some(f) = v.files.iter().find(|f| f.filename == file)
                && file_visible(coords, &v, file)
            {
                let facts = VersionFacts::of(&v);
                ctx.registry
                    .check_download(&ctx.caller, permission, &key, &facts)
                    .await?;
                return Ok((
                    ctx.registry.open_blob(&f.sha256).await?,
                    Some(v.published_at),
                    true,
                ));
            }
            // A local version never falls through to an upstream.
            return Err(not_found());
        }
    }
    // An artifact deployed here never falls through to an upstream (dependency-confusion
    // guard), not even for versions it does not have.
    if mode.has_upstreams() && !ctx.is_local(&key).await? {
        let (artifact, modified) = proxy::file(ctx, coords, version, file, permission).await?;
        return Ok((artifact, modified, false));
    }
    Err(not_found())
}
