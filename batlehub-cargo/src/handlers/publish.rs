//! `cargo publish`: `PUT /api/v1/crates/new`.
//!
//! The body is `u32 LE` JSON length, the JSON metadata, `u32 LE` `.crate` length, the
//! `.crate`. The metadata is read into memory (bounded); the `.crate` streams into a
//! temporary blob while a blocking task reads its `Cargo.toml`, and only a crate whose
//! archive agrees with its metadata, and that policy accepts, is committed.

use batlehub_core::body::Body;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::PublishFacts;
use batlehub_core::{Error, Permission, Result, Staged};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::crate_file::Inspector;
use crate::name::{CrateName, check_version};
use crate::wire::{IndexLine, PublishMetadata, publish_ok, split_features};
use batlehub_core::protocol::{BodyStream, Cx, content_length, json};

/// The largest JSON metadata accepted (it carries the README).
pub(crate) const MAX_METADATA: u32 = 4 * 1024 * 1024;

/// Reads the length-prefixed frames of a publish body.
struct Frames {
    body: BodyStream,
    buf: BytesMut,
}

impl Frames {
    async fn fill(&mut self, n: usize, what: &str) -> Result<()> {
        while self.buf.len() < n {
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(Error::BadRequest(format!(
                        "the publish body could not be read: {e}"
                    )));
                }
                None => {
                    return Err(Error::BadRequest(format!(
                        "the publish body is truncated: it ends inside the {what}"
                    )));
                }
            }
        }
        Ok(())
    }

    async fn u32(&mut self, what: &str) -> Result<u32> {
        self.fill(4, what).await?;
        let raw = self.buf.split_to(4);
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    async fn exact(&mut self, n: usize, what: &str) -> Result<Bytes> {
        self.fill(n, what).await?;
        Ok(self.buf.split_to(n).freeze())
    }

    /// The remaining body as exactly `declared` bytes of `.crate`, copied to `tap`: a
    /// shorter body (truncated upload) or a longer one fails the stream.
    fn into_crate(
        self,
        declared: u64,
        tap: mpsc::Sender<Bytes>,
    ) -> futures::stream::BoxStream<'static, std::result::Result<Bytes, String>> {
        struct State {
            first: Option<Bytes>,
            body: BodyStream,
            remaining: u64,
            declared: u64,
            tap: Option<mpsc::Sender<Bytes>>,
            done: bool,
        }
        let state = State {
            first: Some(self.buf.freeze()).filter(|b| !b.is_empty()),
            body: self.body,
            remaining: declared,
            declared,
            tap: Some(tap),
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.done {
                    return None;
                }
                let next = match s.first.take() {
                    Some(b) => Some(Ok(b)),
                    None => s.body.next().await,
                };
                let chunk = match next {
                    None => {
                        s.done = true;
                        s.tap = None;
                        if s.remaining == 0 {
                            return None;
                        }
                        let msg = format!(
                            "the .crate is truncated: the body ended after {} of its {} declared bytes",
                            s.declared - s.remaining,
                            s.declared
                        );
                        return Some((Err(msg), s));
                    }
                    Some(Err(e)) => {
                        s.done = true;
                        s.tap = None;
                        return Some((Err(format!("the request body broke: {e}")), s));
                    }
                    Some(Ok(chunk)) => chunk,
                };
                if chunk.is_empty() {
                    continue;
                }
                if chunk.len() as u64 > s.remaining {
                    s.done = true;
                    s.tap = None;
                    let msg = format!(
                        "the publish body has more bytes than the {} the .crate declared",
                        s.declared
                    );
                    return Some((Err(msg), s));
                }
                s.remaining -= chunk.len() as u64;
                if let Some(tap) = &s.tap
                    && tap.send(chunk.clone()).await.is_err()
                {
                    // The inspector already has its answer (usually an error); keep storing.
                    s.tap = None;
                }
                if s.remaining == 0 {
                    s.tap = None;
                }
                return Some((Ok(chunk), s));
            }
        })
        .boxed()
    }
}

/// Checks the metadata's own fields: names, version, dependency requirements.
fn validate(meta: &PublishMetadata) -> Result<CrateName> {
    let name = CrateName::parse(&meta.name)?;
    check_version(&meta.vers)?;
    for dep in &meta.deps {
        CrateName::parse(&dep.name)?;
        if let Some(rename) = &dep.explicit_name_in_toml {
            CrateName::parse(rename)?;
        }
        semver::VersionReq::parse(&dep.version_req).map_err(|e| {
            Error::BadRequest(format!(
                "dependency `{}` has an invalid version requirement `{}`: {e}",
                dep.name, dep.version_req
            ))
        })?;
        if let Some(kind) = &dep.kind
            && !matches!(kind.as_str(), "normal" | "dev" | "build")
        {
            return Err(Error::BadRequest(format!(
                "dependency `{}` has an unknown kind `{kind}`",
                dep.name
            )));
        }
    }
    if let Some(rv) = &meta.rust_version
        && (rv.is_empty() || !rv.chars().all(|c| c.is_ascii_digit() || c == '.'))
    {
        return Err(Error::BadRequest(format!(
            "invalid rust_version `{}`",
            rv.escape_default()
        )));
    }
    Ok(name)
}

/// The name a stored crate was published under (its index lines keep it).
fn stored_name(pkg: &batlehub_core::model::LocalPackage) -> Option<String> {
    pkg.versions
        .first()
        .and_then(|v| v.metadata.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `PUT /api/v1/crates/new`.
pub(crate) async fn publish(ctx: &Cx, body: BodyStream) -> Result<Response<Body>> {
    ctx.registry.ensure_publishable()?;
    ctx.registry
        .authorize(ctx.identity(), Permission::Publish, None)?;
    let max = ctx.registry.config().max_upload_bytes;
    let too_large = |n: u64| {
        Error::PayloadTooLarge(format!(
            "the .crate is {n} bytes; this registry accepts at most {max} bytes"
        ))
    };
    if let Some(len) = content_length(&ctx.parts)
        && len > max.saturating_add(u64::from(MAX_METADATA) + 8)
    {
        return Err(Error::PayloadTooLarge(format!(
            "the publish body is {len} bytes; this registry accepts .crate files up to {max} bytes"
        )));
    }
    let mut frames = Frames {
        body,
        buf: BytesMut::new(),
    };
    let json_len = frames.u32("metadata length").await?;
    if json_len > MAX_METADATA {
        return Err(Error::PayloadTooLarge(format!(
            "the publish metadata is {json_len} bytes; the limit is {MAX_METADATA}"
        )));
    }
    let raw = frames.exact(json_len as usize, "metadata").await?;
    let meta: PublishMetadata = serde_json::from_slice(&raw)
        .map_err(|e| Error::BadRequest(format!("the publish metadata is not valid: {e}")))?;
    let name = validate(&meta)?;
    let crate_len = u64::from(frames.u32(".crate length").await?);
    if crate_len > max {
        return Err(too_large(crate_len));
    }
    if crate_len == 0 {
        return Err(Error::BadRequest("the .crate is empty".into()));
    }

    let key = name.key();
    let existing = ctx.registry.local().package(&key).await?;
    let exists = existing.as_ref().is_some_and(|p| !p.versions.is_empty());
    if let Some(pkg) = existing.as_ref().filter(|_| exists) {
        if let Some(stored) = stored_name(pkg)
            && stored != meta.name
        {
            return Err(Error::Conflict(format!(
                "crate `{}` conflicts with the existing crate `{stored}`: names are compared ignoring case and `-`/`_`; publish it as `{stored}`",
                meta.name
            )));
        }
        let wanted = semver::Version::parse(&meta.vers).map_err(Error::internal)?;
        if pkg.versions.iter().any(|v| {
            semver::Version::parse(&v.version)
                .is_ok_and(|have| have.cmp_precedence(&wanted).is_eq())
        }) {
            return Err(already_uploaded(&meta));
        }
    } else {
        name.check_new()?;
    }

    let (tap, inspector) = Inspector::spawn(format!("{}-{}", meta.name, meta.vers));
    let staged = ctx.registry.stage(frames.into_crate(crate_len, tap)).await;
    let manifest = inspector.finish().await;
    let staged = staged?;
    match commit(ctx, &name, &meta, manifest, exists, staged.clone()).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            ctx.registry.discard(staged).await;
            Err(e)
        }
    }
}

fn already_uploaded(meta: &PublishMetadata) -> Error {
    Error::Conflict(format!(
        "crate version `{}@{}` is already uploaded",
        meta.name, meta.vers
    ))
}

/// Checks the staged `.crate` against the metadata and policy, then commits it.
async fn commit(
    ctx: &Cx,
    name: &CrateName,
    meta: &PublishMetadata,
    manifest: Result<crate::crate_file::Manifest>,
    exists: bool,
    staged: Staged,
) -> Result<Response<Body>> {
    let manifest = manifest?;
    if manifest.name != meta.name || manifest.version != meta.vers {
        return Err(Error::BadRequest(format!(
            "the .crate's Cargo.toml is `{}@{}`, but the publish metadata says `{}@{}`",
            manifest.name, manifest.version, meta.name, meta.vers
        )));
    }
    let digests = staged.digests.clone();
    let cksum = digests.sha256_hex();
    if let Some(declared) = &meta.cksum
        && !declared.eq_ignore_ascii_case(&cksum)
    {
        return Err(Error::BadRequest(format!(
            "the .crate does not match the declared cksum {declared} (its sha256 is {cksum})"
        )));
    }
    let key = name.key();
    let facts = PublishFacts {
        package: key.clone(),
        version: meta.vers.clone(),
        size: digests.size,
        sha256: digests.sha256.clone(),
        package_exists: exists,
        signature: None,
    };
    let outcome = ctx.check_publish(&facts).await?;

    let (features, features2) = split_features(&meta.features);
    let line = IndexLine {
        name: meta.name.clone(),
        vers: meta.vers.clone(),
        deps: meta
            .deps
            .iter()
            .map(crate::wire::PublishDep::to_index)
            .collect(),
        cksum: cksum.clone(),
        features,
        v: features2.as_ref().map(|_| 2),
        features2,
        yanked: false,
        links: meta.links.clone(),
        rust_version: meta.rust_version.clone(),
        pubtime: None,
    };
    let mut metadata = serde_json::to_value(&line).map_err(Error::internal)?;
    if let (Some(obj), Some(d)) = (metadata.as_object_mut(), &meta.description) {
        // Not part of the index line (rendering drops it); `cargo search` shows it.
        obj.insert("description".into(), Value::String(d.clone()));
    }
    let publisher = ctx.identity().key().into_owned();
    let new = NewVersion {
        registry: ctx.registry.name().to_owned(),
        version: VersionRecord {
            package: key,
            version: meta.vers.clone(),
            published_at: ctx.registry.now(),
            yanked: false,
            deprecated: None,
            publisher: Some(publisher),
            metadata,
            files: vec![FileRecord {
                filename: format!("{}-{}.crate", meta.name, meta.vers),
                sha256: cksum,
                size: digests.size,
                signature: None,
                signature_type: None,
            }],
        },
        tags: Vec::new(),
    };
    match ctx.registry.publish(&ctx.caller, new, vec![staged]).await {
        Ok(()) => {
            tracing::info!(registry = ctx.registry.name(), krate = %meta.name, version = %meta.vers, "published");
            let mut resp = json(StatusCode::OK, &publish_ok());
            resp.headers_mut().extend(outcome.headers);
            Ok(resp)
        }
        Err(Error::Conflict(_)) => Err(already_uploaded(meta)),
        Err(e) => Err(e),
    }
}
