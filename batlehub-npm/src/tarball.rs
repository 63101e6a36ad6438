//! Reading `package/package.json` out of a published tarball, with bounded decompression.

use std::io::Read as _;

use batlehub_core::{Error, Result};
use serde_json::Value;

/// The most decompressed bytes scanned while looking for `package.json` (bomb guard).
const MAX_UNPACKED: u64 = 512 * 1024 * 1024;
/// The largest `package.json` read.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// The most archive entries scanned.
const MAX_ENTRIES: usize = 200_000;

/// Finds and parses the top-level `package.json` (`package/package.json` as `npm pack` writes
/// it; any single top-level folder is accepted, as npm does).
///
/// # Errors
/// [`Error::BadRequest`] for a broken gzip or tar stream, a bomb, or a missing or invalid
/// `package.json`.
pub(crate) fn read_package_json(tgz: &[u8]) -> Result<Value> {
    let broken = |what: &str| Error::BadRequest(format!("tarball is not a valid .tgz: {what}"));
    let decoder = flate2::read::GzDecoder::new(tgz).take(MAX_UNPACKED);
    let mut archive = tar::Archive::new(decoder);
    let entries = archive.entries().map_err(|e| broken(&e.to_string()))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(broken("too many entries"));
        }
        let entry = entry.map_err(|e| broken(&e.to_string()))?;
        let path = entry.path().map_err(|e| broken(&e.to_string()))?;
        let mut comps = path.components();
        let top = comps.next();
        let file = comps.next();
        if comps.next().is_none()
            && matches!(top, Some(std::path::Component::Normal(_)))
            && file.is_some_and(|f| f.as_os_str() == "package.json")
        {
            let mut buf = Vec::new();
            entry
                .take(MAX_MANIFEST + 1)
                .read_to_end(&mut buf)
                .map_err(|e| broken(&e.to_string()))?;
            if buf.len() as u64 > MAX_MANIFEST {
                return Err(broken("package.json is too large"));
            }
            return serde_json::from_slice(&buf).map_err(|e| {
                Error::BadRequest(format!(
                    "package.json in the tarball is not valid JSON: {e}"
                ))
            });
        }
    }
    Err(Error::BadRequest(
        "tarball has no package/package.json (or it is truncated, or it unpacks to more than 512 MiB)".into(),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a .tgz with `package/package.json` = `manifest` and a README.
    pub(crate) fn tgz(manifest: &Value) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in [
            (
                "package/package.json",
                serde_json::to_vec(manifest).expect("json"),
            ),
            ("package/README.md", b"# hello\n".to_vec()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, data.as_slice())
                .expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).expect("gz");
        gz.finish().expect("gz")
    }

    #[test]
    fn reads_manifest_and_refuses_garbage() {
        let m = serde_json::json!({"name": "a", "version": "1.0.0"});
        assert_eq!(read_package_json(&tgz(&m)).expect("ok"), m);
        assert!(read_package_json(b"not gzip").is_err());
        let good = tgz(&m);
        assert!(read_package_json(&good[..good.len() / 2]).is_err());
    }
}
