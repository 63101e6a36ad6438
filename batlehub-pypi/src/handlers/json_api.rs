//! The JSON API: `/pypi/{project}/json` and `/pypi/{project}/{version}/json`, in the shape
//! the public index serves (`info`, `urls`, `releases`).

use batlehub_core::body::Body;
use batlehub_core::{Error, Permission, Result};
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::handlers::files;
use crate::handlers::project::{self, Listing, Release, file_url, not_found};
use crate::metadata::CoreMetadata;
use crate::name::{DistKind, ProjectName, parse_filename};
use crate::version::{self, Version};
use crate::wire::{DistFile, upload_time};
use batlehub_core::protocol::{Cx, json, mark_stale, redirect};

fn file_json(ctx: &Cx, name: &ProjectName, f: &DistFile) -> Value {
    let parsed = parse_filename(&f.filename, name);
    let kind = parsed.as_ref().map_or(DistKind::Other, |p| p.kind);
    let python = parsed.map_or_else(String::new, |p| p.python_tag);
    json!({
        "comment_text": "",
        "digests": f.hashes,
        "downloads": -1,
        "filename": f.filename,
        "has_sig": false,
        "md5_digest": f.hashes.get("md5"),
        "packagetype": kind.package_type(),
        "python_version": python,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": f.upload_time.map(|t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "upload_time_iso_8601": f.upload_time.map(upload_time),
        "url": file_url(&ctx.base, name, &f.filename),
        "yanked": f.yanked.is_some(),
        "yanked_reason": f.yanked.as_ref().filter(|r| !r.is_empty()),
    })
}

/// The release `info` describes: the highest stable release that is not yanked, else the
/// highest not yanked, else the highest.
fn latest(releases: &[Release]) -> Option<&Release> {
    let stable = |r: &&Release| Version::parse(&r.version).is_some_and(|v| !v.is_prerelease());
    let with_files = |r: &&Release| !r.files.is_empty();
    releases
        .iter()
        .rev()
        .filter(with_files)
        .find(|r| r.yanked().is_none() && stable(r))
        .or_else(|| {
            releases
                .iter()
                .rev()
                .filter(with_files)
                .find(|r| r.yanked().is_none())
        })
        .or_else(|| releases.last())
}

/// The largest core metadata file read.
const MAX_CORE_METADATA: usize = 4 * 1024 * 1024;

/// The core metadata of a release, when one is stored (local) or the upstream publishes a
/// `.metadata` file for one of its wheels (read through the artifact cache).
async fn core_metadata(ctx: &Cx, listing: &Listing, release: &Release) -> Option<CoreMetadata> {
    let body = if listing.local {
        let sha = release.metadata_blob.clone()?;
        ctx.registry.open_blob(&sha).await.ok()?.body
    } else {
        let file = release
            .files
            .iter()
            .find(|f| f.core_metadata.is_some())?
            .clone();
        match files::upstream_file(ctx, &listing.name, &file, true).await {
            Ok(a) => a.body,
            Err(e) => {
                tracing::debug!(project = %listing.name, error = %e, "no upstream core metadata for the JSON API");
                return None;
            }
        }
    };
    CoreMetadata::parse(&batlehub_core::body::read_small(body, MAX_CORE_METADATA).await?).ok()
}

fn info(ctx: &Cx, listing: &Listing, release: &Release, core: Option<CoreMetadata>) -> Value {
    let mut info: Map<String, Value> = match &release.info {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if let Some(core) = core {
        for (k, v) in core.to_info() {
            if listing.local && k != "description" {
                continue;
            }
            info.insert(k, v);
        }
    }
    let name = &listing.name;
    if !listing.local {
        // An upstream page carries no core metadata; what it implies is filled in.
        let requires_python = release.files.iter().find_map(|f| f.requires_python.clone());
        info.insert("requires_python".into(), json!(requires_python));
        for key in [
            "summary",
            "description",
            "author",
            "author_email",
            "license",
            "home_page",
            "requires_dist",
            "project_urls",
        ] {
            info.entry(key).or_insert(Value::Null);
        }
        info.entry("classifiers").or_insert_with(|| json!([]));
    }
    let yanked = release.yanked();
    let base = &ctx.base;
    info.insert("name".into(), json!(listing.display));
    info.insert("version".into(), json!(release.version));
    info.insert("yanked".into(), json!(yanked.is_some()));
    info.insert(
        "yanked_reason".into(),
        json!(yanked.filter(|r| !r.is_empty())),
    );
    info.insert(
        "package_url".into(),
        json!(format!("{base}/simple/{name}/")),
    );
    info.insert(
        "project_url".into(),
        json!(format!("{base}/simple/{name}/")),
    );
    info.insert(
        "release_url".into(),
        json!(format!("{base}/pypi/{name}/{}/json", release.version)),
    );
    info.insert("bugtrack_url".into(), Value::Null);
    info.insert("docs_url".into(), Value::Null);
    Value::Object(info)
}

async fn loaded(ctx: &Cx, name: &ProjectName) -> Result<Listing> {
    ctx.registry
        .check_package(&ctx.caller, Permission::ReleasesRead, name.as_str())
        .await?;
    let mut listing = project::load(ctx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    project::apply_policy(ctx, &mut listing).await?;
    Ok(listing)
}

/// `GET /pypi/{project}/json`.
pub(crate) async fn project(ctx: &Cx, raw: &str) -> Result<Response<Body>> {
    let name = ProjectName::parse(raw)?;
    if name.as_str() != raw {
        return Ok(redirect(&format!("{}/pypi/{name}/json", ctx.base)));
    }
    let listing = loaded(ctx, &name).await?;
    let visible = listing.visible(crate::denied::denied(ctx));
    let latest = latest(&visible).ok_or_else(|| not_found(&name))?;
    let mut releases = Map::new();
    for r in &visible {
        releases.insert(
            r.version.clone(),
            Value::Array(r.files.iter().map(|f| file_json(ctx, &name, f)).collect()),
        );
    }
    let core = core_metadata(ctx, &listing, latest).await;
    let info = info(ctx, &listing, latest, core);
    let doc = json!({
        "info": info,
        "last_serial": 0,
        "releases": releases,
        "urls": latest.files.iter().map(|f| file_json(ctx, &name, f)).collect::<Vec<_>>(),
        "vulnerabilities": [],
    });
    let mut resp = json(StatusCode::OK, &doc);
    mark_stale(&mut resp, listing.stale);
    Ok(resp)
}

/// `GET /pypi/{project}/{version}/json`.
pub(crate) async fn version(ctx: &Cx, raw: &str, wanted: &str) -> Result<Response<Body>> {
    let name = ProjectName::parse(raw)?;
    if name.as_str() != raw {
        return Ok(redirect(&format!(
            "{}/pypi/{name}/{}/json",
            ctx.base,
            project::encode_segment(wanted)
        )));
    }
    let listing = loaded(ctx, &name).await?;
    let release = listing
        .releases
        .iter()
        .rev()
        .find(|r| version::same_release(&r.version, wanted))
        .ok_or_else(|| Error::NotFound(format!("version `{wanted}` of `{name}` not found")))?;
    if let (Some(d), crate::denied::DeniedVersions::Hide) =
        (&release.denied, crate::denied::denied(ctx))
    {
        return Err(Error::Denied(d.clone()));
    }
    let release = listing
        .visible(crate::denied::denied(ctx))
        .into_iter()
        .find(|r| r.version == release.version)
        .ok_or_else(|| Error::internal("visible release vanished"))?;
    let core = core_metadata(ctx, &listing, &release).await;
    let info = info(ctx, &listing, &release, core);
    let doc = json!({
        "info": info,
        "last_serial": 0,
        "urls": release.files.iter().map(|f| file_json(ctx, &name, f)).collect::<Vec<_>>(),
        "vulnerabilities": [],
    });
    let mut resp = json(StatusCode::OK, &doc);
    mark_stale(&mut resp, listing.stale);
    Ok(resp)
}
