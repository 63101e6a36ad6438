//! `POST /legacy/`: uploads as twine sends them (multipart/form-data with `:action`,
//! `name`, `version`, `filetype`, `sha256_digest`, ... and the file as `content`).
//!
//! A release holds many files (an sdist and wheels), uploaded one request each: the first
//! file creates the version (`publish`), later ones are added to it (`add_file`). The file
//! streams into a staged blob while being copied to an anonymous temporary file, which is
//! then read (random access, bounded decompression) for the archive's own metadata, which is
//! stored beside the file as `{file}.metadata` (served for wheels, PEP 658).

use std::collections::HashMap;
use std::io::{Seek as _, SeekFrom};
use std::pin::Pin;

use batlehub_core::body::Body;
use batlehub_core::digest::Digests;
use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::PublishFacts;
use batlehub_core::{Error, Permission, Result, Staged};
use bytes::Bytes;
use http::{Response, StatusCode};
use md5::Digest as _;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::archive;
use crate::metadata::CoreMetadata;
use crate::multipart::{self, Multipart};
use crate::name::{DistKind, ProjectName, check_filename, normalize, parse_filename};
use crate::version::{Version, same_release};
use batlehub_core::protocol::{Cx, RequestBody, text};

/// The largest text field (the long description travels in `description`).
const FIELD_LIMIT: usize = 4 * 1024 * 1024;
/// The most bytes of text fields in one upload.
const FIELDS_TOTAL: usize = 16 * 1024 * 1024;

/// The largest upload body: the file, the form fields and the multipart framing.
pub(crate) fn body_limit(max_upload: u64) -> u64 {
    max_upload.saturating_add(FIELDS_TOTAL as u64 + 64 * 1024)
}
/// The largest extra file part (a detached signature) accepted and ignored.
const EXTRA_FILE_LIMIT: usize = 1024 * 1024;
/// The most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// The uploaded file: staged in storage, and spooled to a temporary file for inspection.
struct Spooled {
    filename: String,
    staged: Staged,
    file: std::fs::File,
    md5: Vec<u8>,
}

/// `POST /legacy/`.
pub(crate) async fn upload(ctx: &Cx, body: RequestBody) -> Result<Response<Body>> {
    ctx.registry.ensure_publishable()?;
    ctx.registry
        .authorize(ctx.identity(), Permission::Publish, None)?;
    let boundary = multipart::boundary(
        ctx.parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let limit = ctx.registry.config().max_upload_bytes;
    if let Some(len) = ctx
        .parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > body_limit(limit)
    {
        return Err(Error::PayloadTooLarge(format!(
            "the upload exceeds the limit of {limit} bytes"
        )));
    }
    let mut mp = Multipart::new(body, &boundary);
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    let mut content: Option<Spooled> = None;
    let read: Result<()> = async {
        let (mut parts, mut total) = (0usize, 0usize);
        while let Some(part) = mp.next_part().await? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Error::BadRequest("too many form fields".into()));
            }
            if part.name == "content" {
                if content.is_some() {
                    return Err(Error::BadRequest(
                        "the upload carries more than one `content` file".into(),
                    ));
                }
                let filename = part.filename.ok_or_else(|| {
                    Error::BadRequest("the `content` field has no file name".into())
                })?;
                check_filename(&filename)?;
                content = Some(spool(ctx, &mut mp, filename).await?);
            } else if part.filename.is_some() {
                // gpg_signature and the like: accepted, bounded, not kept.
                let mut size = 0;
                while let Some(c) = mp.chunk().await? {
                    size += c.len();
                    if size > EXTRA_FILE_LIMIT {
                        return Err(Error::BadRequest(format!(
                            "form file `{}` is too large",
                            part.name.escape_default()
                        )));
                    }
                }
            } else {
                let text = mp.text(&part.name, FIELD_LIMIT).await?;
                total += text.len();
                if total > FIELDS_TOTAL {
                    return Err(Error::BadRequest("the form fields are too large".into()));
                }
                fields.entry(part.name).or_default().push(text);
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = read {
        if let Some(c) = content {
            ctx.registry.discard(c.staged).await;
        }
        return Err(e);
    }
    let Some(content) = content else {
        return Err(Error::BadRequest(
            "the upload carries no file (`content` field)".into(),
        ));
    };
    let staged = content.staged.clone();
    let out = publish_file(ctx, &fields, content).await;
    if out.is_err() {
        // Publishing consumes staged blobs; discarding one already gone is harmless.
        ctx.registry.discard(staged).await;
    }
    out
}

/// Streams the `content` part into a staged blob and a temporary file.
async fn spool(ctx: &Cx, mp: &mut Multipart<RequestBody>, filename: String) -> Result<Spooled> {
    let std_file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(Error::internal)?
        .map_err(Error::storage)?;
    let mut file = tokio::fs::File::from_std(std_file);
    let mut md5 = md5::Md5::new();
    let mut io_error: Option<std::io::Error> = None;
    let stream = futures::stream::unfold(
        (&mut *mp, &mut file, &mut md5, &mut io_error),
        |(mp, file, md5, io_error)| async move {
            match mp.chunk().await {
                Ok(Some(chunk)) => {
                    md5.update(&chunk);
                    if let Err(e) = file.write_all(&chunk).await {
                        let msg = e.to_string();
                        *io_error = Some(e);
                        return Some((Err(msg), (mp, file, md5, io_error)));
                    }
                    Some((Ok(chunk), (mp, file, md5, io_error)))
                }
                Ok(None) => None,
                Err(e) => Some((Err(e.to_string()), (mp, file, md5, io_error))),
            }
        },
    );
    let staged = ctx.registry.stage(Box::pin(stream)).await;
    if let Some(e) = io_error {
        if let Ok(s) = staged {
            ctx.registry.discard(s).await;
        }
        return Err(Error::storage(format!("spooling an upload failed: {e}")));
    }
    let staged = staged?;
    let done: Result<std::fs::File> = async {
        file.flush().await.map_err(Error::storage)?;
        Ok(file.into_std().await)
    }
    .await;
    match done {
        Ok(file) => Ok(Spooled {
            filename,
            staged,
            file,
            md5: md5.finalize().to_vec(),
        }),
        Err(e) => {
            ctx.registry.discard(staged).await;
            Err(e)
        }
    }
}

fn single<'a>(fields: &'a HashMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .and_then(|v| v.first())
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// A file's core metadata (`METADATA`, `PKG-INFO`), stored beside it as `{file}.metadata`.
struct MetaFile {
    record: FileRecord,
    staged: Staged,
    bytes: Bytes,
}

/// Everything the upload needs before anything is committed.
struct Checked {
    name: ProjectName,
    version: Version,
    metadata: Vec<u8>,
    core: CoreMetadata,
}

/// Validates the form against the file name, the digests and the archive's own metadata.
async fn check(fields: &HashMap<String, Vec<String>>, content: &mut Spooled) -> Result<Checked> {
    match single(fields, ":action") {
        Some("file_upload") => {}
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "unsupported :action `{}`: only file_upload is served",
                other.escape_default()
            )));
        }
        None => return Err(Error::BadRequest("missing form field `:action`".into())),
    }
    if let Some(v) = single(fields, "protocol_version")
        && v != "1"
    {
        return Err(Error::BadRequest(format!(
            "unsupported protocol_version `{}`",
            v.escape_default()
        )));
    }
    let form_name = single(fields, "name")
        .ok_or_else(|| Error::BadRequest("missing form field `name`".into()))?;
    let name = ProjectName::parse(form_name)?;
    let form_version = single(fields, "version")
        .ok_or_else(|| Error::BadRequest("missing form field `version`".into()))?;
    let version = Version::parse(form_version).ok_or_else(|| {
        Error::BadRequest(format!(
            "invalid version `{}`: not PEP 440",
            form_version.escape_default()
        ))
    })?;
    let filename = content.filename.clone();
    let parsed = parse_filename(&filename, &name).ok_or_else(|| {
        Error::BadRequest(format!(
            "`{filename}` is not a wheel or sdist file name of `{name}` (expected {}-{version}-*.whl or {}-{version}.tar.gz)",
            name.file_prefix(),
            name.file_prefix()
        ))
    })?;
    match parsed.kind {
        DistKind::Wheel => {}
        DistKind::Sdist if filename.ends_with(".tar.gz") => {}
        _ => {
            return Err(Error::BadRequest(format!(
                "`{filename}`: only wheels (.whl) and sdists (.tar.gz) can be uploaded"
            )));
        }
    }
    if normalize(&parsed.name) != name.as_str() {
        return Err(Error::BadRequest(format!(
            "the file name `{filename}` names project `{}`, but the upload is for `{name}`",
            parsed.name
        )));
    }
    if Version::parse(&parsed.version).as_ref() != Some(&version) {
        return Err(Error::BadRequest(format!(
            "the file name `{filename}` names version `{}`, but the upload is for version {version}",
            parsed.version
        )));
    }
    let expected_type = match parsed.kind {
        DistKind::Wheel => "bdist_wheel",
        _ => "sdist",
    };
    if let Some(t) = single(fields, "filetype")
        && t != expected_type
    {
        return Err(Error::BadRequest(format!(
            "filetype `{}` does not match `{filename}` ({expected_type})",
            t.escape_default()
        )));
    }
    let digests = &content.staged.digests;
    if digests.size == 0 {
        return Err(Error::BadRequest(format!("`{filename}` is empty")));
    }
    let sha256 = single(fields, "sha256_digest");
    let md5 = single(fields, "md5_digest");
    if sha256.is_none() && md5.is_none() {
        return Err(Error::BadRequest(
            "the upload carries no sha256_digest (or md5_digest)".into(),
        ));
    }
    if let Some(s) = sha256
        && !s.eq_ignore_ascii_case(&digests.sha256_hex())
    {
        return Err(Error::BadRequest(format!(
            "sha256_digest does not match the uploaded `{filename}` (corrupted upload?)"
        )));
    }
    if let Some(m) = md5
        && !m.eq_ignore_ascii_case(&hex::encode(&content.md5))
    {
        return Err(Error::BadRequest(format!(
            "md5_digest does not match the uploaded `{filename}` (corrupted upload?)"
        )));
    }
    let expected_dir = match parsed.kind {
        DistKind::Wheel => format!("{}-{}", parsed.name, parsed.version),
        _ => filename.trim_end_matches(".tar.gz").to_owned(),
    };
    let mut file = content
        .file
        .try_clone()
        .map_err(|e| Error::storage(format!("reopening a spooled upload: {e}")))?;
    let kind = parsed.kind;
    let metadata = tokio::task::spawn_blocking(move || {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::storage(format!("rewinding a spooled upload: {e}")))?;
        archive::read_metadata(std::io::BufReader::new(file), kind, &expected_dir)
    })
    .await
    .map_err(Error::internal)??;
    let what = if kind == DistKind::Wheel {
        "METADATA"
    } else {
        "PKG-INFO"
    };
    let core = CoreMetadata::parse(&metadata)
        .map_err(|e| Error::BadRequest(format!("{what} of `{filename}`: {e}")))?;
    if normalize(core.name()) != name.as_str() {
        return Err(Error::BadRequest(format!(
            "{what} of `{filename}` names project `{}`, but the upload is for `{name}`",
            core.name().escape_default()
        )));
    }
    if Version::parse(core.version()).as_ref() != Some(&version) {
        return Err(Error::BadRequest(format!(
            "{what} of `{filename}` names version `{}`, but the upload is for version {version}",
            core.version().escape_default()
        )));
    }
    Ok(Checked {
        name,
        version,
        metadata,
        core,
    })
}

/// Validates and commits one file.
async fn publish_file(
    ctx: &Cx,
    fields: &HashMap<String, Vec<String>>,
    mut content: Spooled,
) -> Result<Response<Body>> {
    let c = check(fields, &mut content).await?;
    let reg = ctx.registry.name();
    let name = c.name.as_str();
    let filename = content.filename.clone();
    let pkg = ctx.registry.local().package(name).await?;
    if pkg
        .iter()
        .flat_map(|p| p.versions.iter())
        .flat_map(|v| v.files.iter())
        .any(|f| f.filename == filename)
    {
        return Err(file_exists(&filename));
    }
    let normalized = c.version.normalized();
    let existing = pkg.as_ref().and_then(|p| {
        p.versions
            .iter()
            .find(|v| same_release(&v.version, &normalized))
            .map(|v| v.version.clone())
    });
    let digests = content.staged.digests.clone();
    let facts = PublishFacts {
        package: name.to_owned(),
        version: existing.clone().unwrap_or_else(|| normalized.clone()),
        size: digests.size,
        sha256: digests.sha256.clone(),
        package_exists: pkg.is_some(),
        signature: None,
    };
    let outcome = ctx.check_publish(&facts).await?;

    let file_record = FileRecord {
        filename: filename.clone(),
        sha256: digests.sha256_hex(),
        size: digests.size,
        signature: None,
        signature_type: None,
    };
    // Every file's core metadata is kept beside it as `{file}.metadata`: a wheel's is served
    // (PEP 658); any gives the JSON API its description, which the index does not hold.
    let meta = {
        let d = Digests::of(&c.metadata);
        let bytes = Bytes::from(c.metadata);
        let staged = ctx.registry.stage_bytes(bytes.clone()).await?;
        Some(MetaFile {
            record: FileRecord {
                filename: format!("{filename}.metadata"),
                sha256: d.sha256_hex(),
                size: d.size,
                signature: None,
                signature_type: None,
            },
            staged,
            bytes,
        })
    };

    let committed = match existing {
        Some(v) => add_files(ctx, name, &v, file_record, content.staged.clone(), meta).await,
        None => {
            let mut info = c.core.to_info();
            // Long descriptions stay in the `.metadata` blob: the index row stays small, and
            // so do project lists and pages, which read every row.
            info.remove("description");
            info.insert("name".into(), Value::String(c.core.name().to_owned()));
            info.insert("version".into(), Value::String(normalized.clone()));
            let mut files = vec![file_record.clone()];
            let mut staged = vec![content.staged.clone()];
            if let Some(m) = &meta {
                files.push(m.record.clone());
                staged.push(m.staged.clone());
            }
            let new = NewVersion {
                registry: reg.to_owned(),
                version: VersionRecord {
                    package: name.to_owned(),
                    version: normalized.clone(),
                    published_at: ctx.registry.now(),
                    yanked: false,
                    deprecated: None,
                    publisher: Some(ctx.identity().key().into_owned()),
                    metadata: Value::Object(info),
                    files,
                },
                tags: Vec::new(),
            };
            match ctx.registry.publish(&ctx.caller, new, staged).await {
                Ok(()) => Ok(()),
                // Another file of this release won the race to create it (twine uploads
                // an sdist and wheels in parallel when asked): add this one to it. The
                // staged blobs were consumed, so stage them again from the spooled copy.
                Err(Error::Conflict(_)) => {
                    retry_as_added(ctx, name, &normalized, &mut content, file_record, meta).await
                }
                Err(e) => Err(e),
            }
        }
    };
    match committed {
        Ok(()) => {
            tracing::info!(registry = reg, project = name, version = %normalized, file = %filename, "uploaded");
            let mut resp = text(StatusCode::OK, "OK\n");
            resp.headers_mut().extend(outcome.headers);
            Ok(resp)
        }
        Err(e) => Err(e),
    }
}

fn file_exists(filename: &str) -> Error {
    Error::Conflict(format!(
        "File already exists: `{filename}` was uploaded before; files are immutable (upload a new version)"
    ))
}

async fn add_files(
    ctx: &Cx,
    name: &str,
    version: &str,
    file: FileRecord,
    staged: Staged,
    meta: Option<MetaFile>,
) -> Result<()> {
    let filename = file.filename.clone();
    if let Err(e) = ctx
        .registry
        .add_file(&ctx.caller, name, version, file, staged)
        .await
    {
        if let Some(m) = meta {
            ctx.registry.discard(m.staged).await;
        }
        return Err(match e {
            Error::Conflict(_) => file_exists(&filename),
            e => e,
        });
    }
    if let Some(m) = meta
        && let Err(e) = ctx
            .registry
            .add_file(&ctx.caller, name, version, m.record, m.staged)
            .await
    {
        // The file is in; it is served without a PEP 658 file.
        tracing::warn!(project = name, version, file = %filename, error = %e, "could not store the wheel's .metadata");
    }
    Ok(())
}

async fn retry_as_added(
    ctx: &Cx,
    name: &str,
    normalized: &str,
    content: &mut Spooled,
    file: FileRecord,
    meta: Option<MetaFile>,
) -> Result<()> {
    let pkg = ctx.registry.local().package(name).await?;
    let existing = pkg.as_ref().and_then(|p| {
        p.versions
            .iter()
            .find(|v| same_release(&v.version, normalized))
            .map(|v| v.version.clone())
    });
    let Some(version) = existing else {
        return Err(file_exists(&file.filename));
    };
    let mut reader = content
        .file
        .try_clone()
        .map_err(|e| Error::storage(format!("reopening a spooled upload: {e}")))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::storage(format!("rewinding a spooled upload: {e}")))?;
    let staged = ctx.registry.stage(file_stream(reader)).await?;
    let meta = match meta {
        Some(m) => match ctx.registry.stage_bytes(m.bytes.clone()).await {
            Ok(staged) => Some(MetaFile { staged, ..m }),
            Err(e) => {
                ctx.registry.discard(staged).await;
                return Err(e);
            }
        },
        None => None,
    };
    add_files(ctx, name, &version, file, staged, meta).await
}

/// Streams a file in 64 KiB chunks.
fn file_stream(
    file: std::fs::File,
) -> Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>> {
    let file = tokio::fs::File::from_std(file);
    Box::pin(futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    }))
}
