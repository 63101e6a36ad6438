//! A project's releases, from the local index or an upstream Simple API page, with policy
//! decisions attached: the one model every read endpoint renders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use batlehub_core::model::{Decision, LocalPackage};
use batlehub_core::policy::VersionFacts;
use batlehub_core::{Denial, Error, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::name::{ProjectName, version_of};
use crate::version;
use crate::wire::{self, DistFile, ProjectPage};
use batlehub_core::protocol::Cx;

/// One release (version) and its files.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// The version as stored or as the file names spell it (normalized when PEP 440).
    pub(crate) version: String,
    /// When it was published (local publish time; upstream: earliest `upload-time`).
    pub(crate) published_at: Option<DateTime<Utc>>,
    /// Its files; `url` is the upstream's absolute URL, empty for local files.
    pub(crate) files: Vec<DistFile>,
    /// Core metadata as JSON API `info` fields (local releases).
    pub(crate) info: Option<Value>,
    /// sha256 of a stored core metadata file of this release (local releases).
    pub(crate) metadata_blob: Option<String>,
    /// Why policy refuses it to this caller, if it does.
    pub(crate) denied: Option<Denial>,
}

impl Release {
    /// Whether every file is yanked (PEP 592 yanks releases, upstreams may yank files).
    pub(crate) fn yanked(&self) -> Option<String> {
        let mut reason = None;
        for f in &self.files {
            match &f.yanked {
                Some(r) => {
                    reason.get_or_insert_with(|| r.clone());
                }
                None => return None,
            }
        }
        reason
    }
}

/// A project as one request sees it.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// The normalized name.
    pub(crate) name: ProjectName,
    /// The display name (as published, or as the upstream spells it).
    pub(crate) display: String,
    /// Releases, lowest version first.
    pub(crate) releases: Vec<Release>,
    /// Built from a stale upstream copy.
    pub(crate) stale: bool,
    /// Served from the local index.
    pub(crate) local: bool,
}

/// The cache key of an upstream project page.
pub(crate) fn page_key(name: &ProjectName) -> String {
    format!("simple/{name}")
}

pub(crate) fn not_found(name: &ProjectName) -> Error {
    Error::NotFound(format!("project `{name}` not found"))
}

/// A project as loaded before policy, shared by every request that sees the same state.
pub(crate) struct Shared {
    /// The releases (without decisions).
    pub(crate) listing: Arc<Listing>,
    /// Names this state for caches of its renderings; never reused for another state.
    pub(crate) id: String,
    /// Built from a stale upstream copy.
    pub(crate) stale: bool,
}

/// A local project's listing built from one state of the package, reused while the index
/// hands out the same package (it hands out a new one after every change).
struct LocalListing {
    listing: Arc<Listing>,
    id: String,
}

/// Loads a project from wherever this registry gets it, before policy: parsed or built
/// once per state and kept in the registry's memory cache.
pub(crate) async fn load_shared(ctx: &Cx, name: &ProjectName) -> Result<Option<Shared>> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    if ctx.is_local(name.as_str()).await? {
        let Some(pkg) = ctx.registry.local_package(name.as_str()).await? else {
            return Ok(None);
        };
        let key = format!("pypi-local:{}:{name}", ctx.registry.name());
        let weight = pkg.versions.len().saturating_mul(4096);
        let local = ctx
            .registry
            .memo()
            .derived::<_, _, Error>(key, &pkg, weight, |pkg| {
                Ok(LocalListing {
                    listing: Arc::new(from_local(name, pkg)),
                    id: format!("pypi-local#{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                })
            })?;
        return Ok(Some(Shared {
            listing: local.listing.clone(),
            id: local.id.clone(),
            stale: false,
        }));
    }
    let Some(doc) = ctx
        .registry
        .upstream_document(&page_key(name), &format!("{name}/"), wire::UPSTREAM_ACCEPT)
        .await?
    else {
        return Ok(None);
    };
    // The listing holds absolute upstream URLs: the key names the registry (its upstreams)
    // as well as the bytes.
    let key = format!(
        "pypi-page:{}:{}:{}:{name}",
        ctx.registry.name(),
        doc.sha256,
        doc.upstream
    );
    let client = ctx
        .registry
        .upstream()
        .ok_or_else(|| Error::internal("proxy without upstream client"))?;
    let page_url = client.url_for(doc.upstream, &format!("{name}/"))?;
    let (body, content_type, project) = (doc.body.clone(), doc.content_type.clone(), name.clone());
    // Parsed once per burst of requests, off the async workers when large.
    let listing = ctx
        .registry
        .memo()
        .get_or_build(&key, doc.body.len(), move || {
            let weight = body.len().saturating_mul(4);
            let name = &project;
            let page = if wire::is_json(content_type.as_deref(), &body) {
                wire::parse_json(&body).map_err(|e| {
                    tracing::warn!(project = %name, error = %e, "upstream project page is not PEP 691 JSON");
                    Error::Upstream(format!("upstream sent an unreadable project page for {name}"))
                })?
            } else {
                wire::parse_html(&String::from_utf8_lossy(&body))
            };
            Ok((from_upstream(name, page, &page_url), weight))
        })
        .await?;
    Ok(Some(Shared {
        listing,
        id: key,
        stale: doc.stale,
    }))
}

/// Loads a project from wherever this registry gets it, before policy, as a copy this
/// request may change.
pub(crate) async fn load(ctx: &Cx, name: &ProjectName) -> Result<Option<Listing>> {
    Ok(load_shared(ctx, name).await?.map(|shared| {
        let mut listing = Listing::clone(&shared.listing);
        listing.stale = shared.stale;
        listing
    }))
}

fn from_local(name: &ProjectName, pkg: &LocalPackage) -> Listing {
    let mut releases: Vec<Release> = pkg
        .versions
        .iter()
        .map(|v| {
            let requires_python = v
                .metadata
                .get("requires_python")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let yanked = v.yanked.then(|| v.deprecated.clone().unwrap_or_default());
            let files = v
                .files
                .iter()
                .filter(|f| !f.filename.ends_with(".metadata"))
                .map(|f| {
                    let meta_name = format!("{}.metadata", f.filename);
                    DistFile {
                        filename: f.filename.clone(),
                        url: String::new(),
                        hashes: BTreeMap::from([("sha256".to_owned(), f.sha256.clone())]),
                        requires_python: requires_python.clone(),
                        yanked: yanked.clone(),
                        // PEP 658 files are advertised for wheels only: an sdist's PKG-INFO
                        // may not describe what building it produces.
                        core_metadata: v
                            .files
                            .iter()
                            .find(|m| m.filename == meta_name && f.filename.ends_with(".whl"))
                            .map(|m| BTreeMap::from([("sha256".to_owned(), m.sha256.clone())])),
                        size: Some(f.size),
                        upload_time: Some(v.published_at),
                    }
                })
                .collect();
            // The core metadata file the JSON API reads the description from: a wheel's
            // when there is one.
            let metadata_blob = v
                .files
                .iter()
                .filter(|m| m.filename.ends_with(".metadata"))
                .min_by_key(|m| !m.filename.ends_with(".whl.metadata"))
                .map(|m| m.sha256.clone());
            Release {
                version: v.version.clone(),
                published_at: Some(v.published_at),
                files,
                info: Some(v.metadata.clone()),
                metadata_blob,
                denied: None,
            }
        })
        .collect();
    releases.sort_by(|a, b| version::compare(&a.version, &b.version));
    let display = pkg
        .versions
        .last()
        .and_then(|v| v.metadata.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(name.as_str())
        .to_owned();
    Listing {
        name: name.clone(),
        display,
        releases,
        stale: false,
        local: true,
    }
}

fn from_upstream(name: &ProjectName, page: ProjectPage, page_url: &url::Url) -> Listing {
    let mut by_version: BTreeMap<String, Release> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for mut f in page.files {
        if crate::name::check_filename(&f.filename).is_err() || !seen.insert(f.filename.clone()) {
            continue;
        }
        let Some(version) = version_of(&f.filename, name) else {
            tracing::debug!(project = %name, file = %f.filename, "skipping a file whose version cannot be read from its name");
            continue;
        };
        match page_url.join(&f.url) {
            Ok(u) => f.url = u.to_string(),
            Err(_) => continue,
        }
        let release = by_version
            .entry(version.clone())
            .or_insert_with(|| Release {
                version,
                published_at: None,
                files: Vec::new(),
                info: None,
                metadata_blob: None,
                denied: None,
            });
        if let Some(t) = f.upload_time {
            release.published_at = Some(release.published_at.map_or(t, |p| p.min(t)));
        }
        release.files.push(f);
    }
    for v in page.versions {
        let v = version::Version::parse(&v).map_or(v, |p| p.normalized());
        by_version.entry(v.clone()).or_insert_with(|| Release {
            version: v,
            published_at: None,
            files: Vec::new(),
            info: None,
            metadata_blob: None,
            denied: None,
        });
    }
    let mut releases: Vec<Release> = by_version.into_values().collect();
    releases.sort_by(|a, b| version::compare(&a.version, &b.version));
    Listing {
        display: if page.name.is_empty() {
            name.as_str().to_owned()
        } else {
            page.name
        },
        name: name.clone(),
        releases,
        stale: false,
        local: false,
    }
}

/// This caller's policy decision on every release of `listing`.
pub(crate) async fn decisions(ctx: &Cx, listing: &Listing) -> Result<Vec<Decision>> {
    let facts: Vec<VersionFacts> = listing
        .releases
        .iter()
        .map(|r| VersionFacts {
            version: r.version.clone(),
            published_at: r.published_at,
        })
        .collect();
    ctx.registry
        .version_decisions(&ctx.caller, listing.name.as_str(), &facts)
        .await
}

/// Attaches this caller's policy decisions to every release.
pub(crate) async fn apply_policy(ctx: &Cx, listing: &mut Listing) -> Result<()> {
    let decisions = decisions(ctx, listing).await?;
    attach(listing, decisions);
    Ok(())
}

/// Attaches decisions (one per release, in order) to `listing`.
pub(crate) fn attach(listing: &mut Listing, decisions: Vec<Decision>) {
    for (release, decision) in listing.releases.iter_mut().zip(decisions) {
        release.denied = match decision {
            Decision::Deny(d) => Some(d),
            Decision::Allow => None,
        };
    }
}

/// Percent-encodes a file name for a URL path segment.
pub(crate) fn encode_segment(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'?')
        .add(b'<')
        .add(b'>')
        .add(b'\\')
        .add(b'^')
        .add(b'`')
        .add(b'{')
        .add(b'|')
        .add(b'}');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The URL this registry serves a file of `name` at.
pub(crate) fn file_url(base: &str, name: &ProjectName, filename: &str) -> String {
    format!("{base}/packages/{name}/{}", encode_segment(filename))
}

impl Listing {
    /// Releases the caller may see, with denied ones dropped or (with
    /// [`DeniedVersions::Yanked`](crate::denied::DeniedVersions::Yanked)) marked yanked.
    pub(crate) fn visible(&self, denied: crate::denied::DeniedVersions) -> Vec<Release> {
        self.releases
            .iter()
            .filter_map(|r| match (&r.denied, denied) {
                (None, _) => Some(r.clone()),
                (Some(d), crate::denied::DeniedVersions::Yanked) => {
                    let mut r = r.clone();
                    for f in &mut r.files {
                        f.yanked = Some(d.reason.clone());
                    }
                    Some(r)
                }
                (Some(_), _) => None,
            })
            .collect()
    }

    /// The project page this caller gets, file URLs under `base` (this registry's base URL,
    /// or the placeholder of a rendering shared across base URLs): `decisions` (one per
    /// release) hide releases or mark them yanked as `shown` says. Each file is copied
    /// once (a big page is not cloned whole first).
    pub(crate) fn page(
        &self,
        decisions: &[Decision],
        shown: crate::denied::DeniedVersions,
        base: &str,
    ) -> ProjectPage {
        let mut files = Vec::new();
        let mut versions = Vec::new();
        for (r, decision) in self.releases.iter().zip(decisions) {
            let yanked_by_policy = match (decision, shown) {
                (Decision::Allow, _) => None,
                (Decision::Deny(d), crate::denied::DeniedVersions::Yanked) => Some(&d.reason),
                (Decision::Deny(_), _) => continue,
            };
            files.extend(r.files.iter().map(|f| DistFile {
                url: file_url(base, &self.name, &f.filename),
                yanked: yanked_by_policy.cloned().or_else(|| f.yanked.clone()),
                ..f.clone()
            }));
            versions.push(r.version.clone());
        }
        ProjectPage {
            name: self.name.as_str().to_owned(),
            files,
            versions,
        }
    }

    /// The release holding `filename`, and the file.
    pub(crate) fn find_file(&self, filename: &str) -> Option<(&Release, &DistFile)> {
        self.releases.iter().find_map(|r| {
            r.files
                .iter()
                .find(|f| f.filename == filename)
                .map(|f| (r, f))
        })
    }
}
