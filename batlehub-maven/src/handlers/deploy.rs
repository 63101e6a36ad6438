//! `PUT`: deploy as `mvn deploy` (wagon or the resolver transport) does it.
//!
//! Per artifact file the client sends the file, then its checksums; after all files the
//! artifact-level `maven-metadata.xml` (SNAPSHOTs: the version-level one too) and its
//! checksums. The main jar usually arrives before the POM, so a version is created with
//! its first file and stays hidden until its POM is stored; from then on a release is
//! immutable. Checksums are verified against the stored file and not kept (the server
//! computes them); metadata is validated and ignored, since the server generates it.

use batlehub_core::body::Body;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::PublishFacts;
use batlehub_core::{Error, Permission, Result, Staged};
use http::{Response, StatusCode};

use crate::checksum::Algo;
use crate::handlers::version_visible;
use crate::name::{Coords, is_snapshot, parse_file};
use crate::routes::Route;
use crate::wire;
use batlehub_core::protocol::{Cx, RequestBody, typed};

/// How long after a release's first file its deployer may still add new files to it
/// (classifiers, signatures) once its POM is stored; existing files never change.
const DEPLOY_WINDOW_SECS: i64 = 3600;

/// The largest checksum file read.
const MAX_CHECKSUM: usize = 1024;

fn created() -> Response<Body> {
    typed(StatusCode::CREATED, "text/plain", "")
}

/// `PUT` of any repository path.
pub(crate) async fn put(ctx: &Cx, route: Route, body: RequestBody) -> Result<Response<Body>> {
    ctx.registry.ensure_publishable()?;
    let coords = match &route {
        Route::Metadata { coords, .. } | Route::File { coords, .. } => coords.clone(),
    };
    // Before reading the body: an anonymous deploy gets the Basic challenge at once.
    ctx.registry
        .authorize(ctx.identity(), Permission::Publish, Some(&coords.key()))?;
    match route {
        Route::Metadata {
            checksum: Some(algo),
            ..
        } => {
            // The client's checksum of its own metadata, which is not what is served.
            algo.parse_file(&body.read_to_bytes(&ctx.parts, MAX_CHECKSUM).await?)?;
            Ok(created())
        }
        Route::Metadata { version, .. } => {
            let xml = body.read_to_bytes(&ctx.parts, wire::MAX_METADATA).await?;
            let meta = wire::parse_metadata(&xml)?;
            let names_other = meta.group.as_deref().is_some_and(|g| g != coords.group)
                || meta
                    .artifact
                    .as_deref()
                    .is_some_and(|a| a != coords.artifact)
                || (version.is_some() && meta.version.is_some() && meta.version != version);
            if names_other {
                return Err(Error::BadRequest(format!(
                    "maven-metadata.xml names {}:{}{} but was uploaded to {coords}{}",
                    meta.group.unwrap_or_default(),
                    meta.artifact.unwrap_or_default(),
                    meta.version.map(|v| format!(":{v}")).unwrap_or_default(),
                    version.map(|v| format!(":{v}")).unwrap_or_default(),
                )));
            }
            // Accepted and merged: the served metadata is generated from the index,
            // which already holds every version this upload could name.
            Ok(created())
        }
        Route::File {
            version,
            file,
            checksum: Some(algo),
            ..
        } => verify_checksum(ctx, &coords, &version, &file, algo, body).await,
        Route::File {
            version,
            file,
            checksum: None,
            ..
        } => store_file(ctx, &coords, &version, &file, body).await,
    }
}

async fn stored_version(ctx: &Cx, coords: &Coords, version: &str) -> Result<Option<VersionRecord>> {
    ctx.registry.local().version(&coords.key(), version).await
}

async fn verify_checksum(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    algo: Algo,
    body: RequestBody,
) -> Result<Response<Body>> {
    let sent = algo.parse_file(&body.read_to_bytes(&ctx.parts, MAX_CHECKSUM).await?)?;
    let record = stored_version(ctx, coords, version)
        .await?
        .and_then(|v| v.files.into_iter().find(|f| f.filename == file))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{file}.{} uploaded, but {file} was not uploaded to {coords}:{version}",
                algo.name()
            ))
        })?;
    let actual = algo
        .of_body(ctx.registry.open_blob(&record.sha256).await?.body)
        .await?;
    if actual != sent {
        return Err(Error::BadRequest(format!(
            "checksum mismatch: the uploaded {} of {file} is {sent}, the stored file's is {actual}",
            algo.name()
        )));
    }
    Ok(created())
}

async fn store_file(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    body: RequestBody,
) -> Result<Response<Body>> {
    let name = parse_file(&coords.artifact, version, file).ok_or_else(|| {
        Error::BadRequest(format!("`{file}` is not a file of {coords}:{version}"))
    })?;
    let staged = if name.extension == "pom" && name.classifier.is_empty() {
        let xml = body.read_to_bytes(&ctx.parts, wire::MAX_POM).await?;
        if xml.is_empty() {
            return Err(Error::BadRequest(format!("{file} is empty")));
        }
        let pom = wire::parse_pom(&xml)?;
        if pom.group != coords.group || pom.artifact != coords.artifact || pom.version != version {
            return Err(Error::BadRequest(format!(
                "the POM declares {}:{}:{} but was uploaded as {coords}:{version}",
                pom.group, pom.artifact, pom.version
            )));
        }
        ctx.registry.stage_bytes(xml).await?
    } else {
        let staged = ctx.registry.stage(body.into_stream()).await?;
        if staged.digests.size == 0 {
            ctx.registry.discard(staged).await;
            return Err(Error::BadRequest(format!("{file} is empty (0 bytes)")));
        }
        staged
    };
    match commit(ctx, coords, version, file, &staged).await {
        Ok(()) => Ok(created()),
        Err(e) => {
            ctx.registry.discard(staged).await;
            Err(e)
        }
    }
}

async fn commit(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    file: &str,
    staged: &Staged,
) -> Result<()> {
    let key = coords.key();
    let record = FileRecord {
        filename: file.to_owned(),
        sha256: staged.digests.sha256_hex(),
        size: staged.digests.size,
        signature: None,
        signature_type: None,
    };
    let existing = stored_version(ctx, coords, version).await?;
    let Some(existing) = existing else {
        let package_exists = ctx.registry.local().package_exists(&key).await?;
        let facts = PublishFacts {
            package: key.clone(),
            version: version.to_owned(),
            size: staged.digests.size,
            sha256: staged.digests.sha256.clone(),
            package_exists,
            signature: None,
        };
        ctx.check_publish(&facts).await?;
        let new = NewVersion {
            registry: ctx.registry.name().to_owned(),
            version: VersionRecord {
                package: key.clone(),
                version: version.to_owned(),
                published_at: ctx.registry.now(),
                yanked: false,
                deprecated: None,
                publisher: Some(ctx.identity().key().into_owned()),
                metadata: serde_json::json!({
                    "groupId": coords.group,
                    "artifactId": coords.artifact,
                }),
                files: vec![record.clone()],
            },
            tags: Vec::new(),
        };
        // A concurrent upload creating the same version makes this a conflict (the engine
        // has already dropped this upload's blob); mvn uploads one file at a time.
        return ctx
            .registry
            .publish(&ctx.caller, new, vec![staged.clone()])
            .await
            .map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(format!(
                    "{coords}:{version} was created by a concurrent upload; upload {file} again"
                )),
                other => other,
            });
    };
    match existing_allows(ctx, coords, &existing, file, Some(&record.sha256))? {
        Existing::Add => add(ctx, coords, version, record, staged).await,
        // The same bytes again (a retried upload): nothing to do.
        Existing::Same => {
            ctx.registry.discard(staged.clone()).await;
            Ok(())
        }
        Existing::Restart => {
            // A release whose earlier deploy never stored its POM, deployed again by the
            // same deployer: start the version over with this file.
            add_check(ctx, coords, version, staged).await?;
            ctx.registry.local().delete_version(&key, version).await?;
            Box::pin(commit(ctx, coords, version, file, staged)).await
        }
    }
}

/// What an existing version allows a `PUT` of `file` to do.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    /// Add the file.
    Add,
    /// The file is there with the same content.
    Same,
    /// Drop the incomplete version and start again.
    Restart,
}

/// Decides a `PUT` of `file` into `existing`; `sha256` is `None` before the body is read
/// (so that a re-deploy is refused before it is uploaded).
fn existing_allows(
    ctx: &Cx,
    coords: &Coords,
    existing: &VersionRecord,
    file: &str,
    sha256: Option<&str>,
) -> Result<Existing> {
    let version = existing.version.as_str();
    let same_deployer = existing.publisher.as_deref() == Some(&*ctx.identity().key());
    // A yanked release was published: it stays immutable (hidden, not in progress).
    let release_visible =
        !is_snapshot(version) && (existing.yanked || version_visible(coords, existing));
    if let Some(stored) = existing.files.iter().find(|f| f.filename == file) {
        if release_visible {
            return Err(immutable(coords, version));
        }
        return match sha256 {
            None => Ok(Existing::Add),
            Some(sha) if sha == stored.sha256 => Ok(Existing::Same),
            Some(_) if !is_snapshot(version) && same_deployer => Ok(Existing::Restart),
            Some(_) if is_snapshot(version) => Err(Error::Conflict(format!(
                "{file} already exists in {coords}:{version} with other content; SNAPSHOT deploys use timestamped file names"
            ))),
            Some(_) => Err(Error::Conflict(format!(
                "{file} of {coords}:{version} was uploaded by another deployer whose deploy did not finish"
            ))),
        };
    }
    if release_visible {
        let age = ctx.registry.now() - existing.published_at;
        if existing.yanked || !same_deployer || age.num_seconds() > DEPLOY_WINDOW_SECS {
            return Err(immutable(coords, version));
        }
    }
    Ok(Existing::Add)
}

fn immutable(coords: &Coords, version: &str) -> Error {
    Error::Conflict(format!(
        "release {coords}:{version} is already deployed and immutable; deploy a new version"
    ))
}

async fn add(
    ctx: &Cx,
    coords: &Coords,
    version: &str,
    record: FileRecord,
    staged: &Staged,
) -> Result<()> {
    add_check(ctx, coords, version, staged).await?;
    ctx.registry
        .add_file(&ctx.caller, &coords.key(), version, record, staged.clone())
        .await
}

/// The publish check for changing an existing version (ownership, namespaces, quota).
async fn add_check(ctx: &Cx, coords: &Coords, version: &str, staged: &Staged) -> Result<()> {
    let facts = PublishFacts {
        package: coords.key(),
        version: version.to_owned(),
        size: staged.digests.size,
        sha256: staged.digests.sha256.clone(),
        package_exists: true,
        signature: None,
    };
    ctx.check_publish(&facts).await?;
    Ok(())
}
