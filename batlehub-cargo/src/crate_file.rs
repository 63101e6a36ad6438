//! Reading `Cargo.toml` out of a `.crate` (gzip + tar) while it streams to storage, with
//! bounded decompression.
//!
//! The bytes are handed over a bounded channel to a blocking task that decompresses and
//! walks the archive, so the upload is inspected without being held in memory.

use std::io::Read;
use std::path::Component;

use batlehub_core::{Error, Result};
use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The most decompressed bytes read from one `.crate` (cargo's own unpack limit).
const MAX_UNPACKED: u64 = 512 * 1024 * 1024;
/// The largest `Cargo.toml` read.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// The most archive entries accepted.
const MAX_ENTRIES: usize = 100_000;
/// Chunks in flight between the upload and the inspector.
const CHANNEL_CHUNKS: usize = 16;

/// What the `.crate`'s own `Cargo.toml` says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// `package.name`.
    pub(crate) name: String,
    /// `package.version`.
    pub(crate) version: String,
}

/// A running inspection of one `.crate`.
#[derive(Debug)]
pub(crate) struct Inspector {
    handle: JoinHandle<Result<Manifest>>,
}

impl Inspector {
    /// Starts inspecting a `.crate` whose files must all sit in `dir/` (`{name}-{version}`,
    /// as `cargo package` writes it). Feed it through the returned sender; dropping the
    /// sender ends the input.
    pub(crate) fn spawn(dir: String) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let handle = tokio::task::spawn_blocking(move || {
            inspect(
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
                &dir,
            )
        });
        (tx, Self { handle })
    }

    /// The manifest, once the input has ended.
    ///
    /// # Errors
    /// [`Error::BadRequest`] explaining what is wrong with the archive.
    pub(crate) async fn finish(self) -> Result<Manifest> {
        self.handle
            .await
            .map_err(|e| Error::internal(format!("crate inspection task failed: {e}")))?
    }
}

/// A blocking reader over the chunks of an upload.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

fn broken(what: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("the .crate is not a valid crate archive: {what}"))
}

/// Walks the whole archive (so a corrupt or truncated tail is noticed), checks every path,
/// and reads `dir/Cargo.toml`.
pub(crate) fn inspect(reader: impl Read, dir: &str) -> Result<Manifest> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader).take(MAX_UNPACKED));
    let wanted = std::path::Path::new(dir).join("Cargo.toml");
    let mut manifest = None;
    let entries = archive.entries().map_err(broken)?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(broken(format!("more than {MAX_ENTRIES} files")));
        }
        let mut entry = entry.map_err(|e| {
            broken(format!(
                "{e} (truncated, or unpacks to more than {} MiB?)",
                MAX_UNPACKED >> 20
            ))
        })?;
        let path = entry.path().map_err(broken)?.into_owned();
        let mut comps = path.components();
        let top_ok = matches!(comps.next(), Some(Component::Normal(top)) if top == dir);
        if !top_ok || !comps.all(|c| matches!(c, Component::Normal(_))) {
            return Err(broken(format!(
                "it contains `{}`, which is not inside `{dir}/`",
                path.display()
            )));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(broken(format!(
                "`{}` is neither a file nor a directory",
                path.display()
            )));
        }
        if path == wanted {
            let mut buf = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST + 1)
                .read_to_end(&mut buf)
                .map_err(broken)?;
            if buf.len() as u64 > MAX_MANIFEST {
                return Err(broken("Cargo.toml is too large"));
            }
            manifest = Some(buf);
        }
    }
    // Read to the end: the gzip trailer's checksum catches corruption after the last entry.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(broken)?;
    if rest.limit() == 0 {
        return Err(broken(format!(
            "it unpacks to more than {} MiB",
            MAX_UNPACKED >> 20
        )));
    }
    let manifest = manifest.ok_or_else(|| broken(format!("it has no `{dir}/Cargo.toml`")))?;
    parse_manifest(&manifest)
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let text = std::str::from_utf8(bytes).map_err(|_| broken("Cargo.toml is not UTF-8"))?;
    let table: toml::Table =
        toml::from_str(text).map_err(|e| broken(format!("Cargo.toml does not parse: {e}")))?;
    let package = table
        .get("package")
        .or_else(|| table.get("project"))
        .and_then(toml::Value::as_table)
        .ok_or_else(|| broken("Cargo.toml has no [package] table"))?;
    let field = |key: &str| {
        package
            .get(key)
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| broken(format!("Cargo.toml has no package.{key}")))
    };
    Ok(Manifest {
        name: field("name")?,
        version: field("version")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.crate` holding `files` (paths relative to the archive root).
    pub(crate) fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).expect("gz");
        gz.finish().expect("gz")
    }

    fn run(bytes: &[u8], dir: &str) -> Result<Manifest> {
        inspect(bytes, dir)
    }

    #[test]
    fn reads_the_manifest() {
        let good = archive(&[
            (
                "foo-1.0.0/Cargo.toml",
                b"[package]\nname = \"foo\"\nversion = \"1.0.0\"\n",
            ),
            ("foo-1.0.0/src/lib.rs", b"pub fn x() {}\n"),
        ]);
        assert_eq!(
            run(&good, "foo-1.0.0").expect("ok"),
            Manifest {
                name: "foo".into(),
                version: "1.0.0".into()
            }
        );
        assert!(run(&good, "bar-1.0.0").is_err(), "files outside the folder");
        assert!(
            run(&good[..good.len() / 2], "foo-1.0.0").is_err(),
            "truncated"
        );
        assert!(
            run(&good[..good.len() - 4], "foo-1.0.0").is_err(),
            "no trailer"
        );
        assert!(run(b"not gzip at all", "foo-1.0.0").is_err());
        let none = archive(&[("foo-1.0.0/src/lib.rs", b"")]);
        assert!(run(&none, "foo-1.0.0").is_err(), "no Cargo.toml");
        let bad = archive(&[("foo-1.0.0/Cargo.toml", b"[package\n")]);
        assert!(run(&bad, "foo-1.0.0").is_err(), "bad toml");
    }

    #[tokio::test]
    async fn inspects_through_the_channel() {
        let good = archive(&[(
            "foo-1.0.0/Cargo.toml",
            b"[package]\nname = \"foo\"\nversion = \"1.0.0\"\n",
        )]);
        let (tx, inspector) = Inspector::spawn("foo-1.0.0".into());
        for chunk in good.chunks(7) {
            tx.send(Bytes::copy_from_slice(chunk)).await.expect("send");
        }
        drop(tx);
        assert_eq!(inspector.finish().await.expect("ok").name, "foo");
    }
}
