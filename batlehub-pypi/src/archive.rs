//! Reading core metadata out of uploaded distributions, with bounded decompression: a
//! wheel's `*.dist-info/METADATA` (zip) or an sdist's `{name}-{version}/PKG-INFO` (tar.gz).
//!
//! Only the metadata entry is decompressed, and never past [`MAX_METADATA`] bytes. A wheel
//! whose central directory promises more than a client could sanely unpack (an entry over
//! [`MAX_ENTRY`], a total over [`MAX_TOTAL`], or an implausible compression ratio) is refused
//! as a zip bomb, because pip and uv would expand it at install time.

use std::io::{Read, Seek};

use batlehub_core::{Error, Result};

use crate::name::DistKind;

/// The largest metadata file read (bytes).
pub(crate) const MAX_METADATA: u64 = 4 * 1024 * 1024;
/// The largest declared uncompressed size of one wheel entry.
pub(crate) const MAX_ENTRY: u64 = 4 * 1024 * 1024 * 1024;
/// The largest declared uncompressed size of a whole wheel.
pub(crate) const MAX_TOTAL: u64 = 16 * 1024 * 1024 * 1024;
/// Above this uncompressed total, the compression ratio is checked.
pub(crate) const RATIO_FLOOR: u64 = 64 * 1024 * 1024;
/// The highest plausible ratio of uncompressed to compressed bytes (deflate of real code and
/// data stays well under 20; a bomb of zeros reaches 150 to 1000).
pub(crate) const MAX_RATIO: u64 = 100;
/// The most entries in a wheel.
pub(crate) const MAX_ENTRIES: usize = 500_000;
/// The most decompressed bytes scanned in an sdist while looking for `PKG-INFO`.
pub(crate) const MAX_SDIST_SCAN: u64 = 512 * 1024 * 1024;

fn bomb(why: &str) -> Error {
    Error::BadRequest(format!(
        "the wheel looks like a zip bomb and was refused: {why}"
    ))
}

/// Reads the core metadata file of a distribution.
///
/// `expected_dir` is the `{name}-{version}` prefix the file name announces (the wheel's
/// `.dist-info` directory stem, the sdist's top directory); an archive whose metadata lives
/// elsewhere is still accepted when it holds exactly one candidate.
///
/// # Errors
/// [`Error::BadRequest`] for a broken or hostile archive, or no metadata.
pub(crate) fn read_metadata<R: Read + Seek>(
    reader: R,
    kind: DistKind,
    expected_dir: &str,
) -> Result<Vec<u8>> {
    match kind {
        DistKind::Wheel => wheel_metadata(reader, expected_dir),
        DistKind::Sdist => sdist_metadata(reader, expected_dir),
        DistKind::Other => Err(Error::BadRequest(
            "only wheels (.whl) and sdists (.tar.gz) can be uploaded".into(),
        )),
    }
}

fn wheel_metadata<R: Read + Seek>(reader: R, expected_dir: &str) -> Result<Vec<u8>> {
    let broken = |e: &dyn std::fmt::Display| {
        Error::BadRequest(format!("the wheel is not a valid zip archive: {e}"))
    };
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| broken(&e))?;
    if zip.len() > MAX_ENTRIES {
        return Err(bomb(&format!("more than {MAX_ENTRIES} entries")));
    }
    let (mut total, mut compressed) = (0u64, 0u64);
    let mut candidates = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| broken(&e))?;
        let size = entry.size();
        if size > MAX_ENTRY {
            return Err(bomb(&format!("an entry unpacks to {size} bytes")));
        }
        total = total.saturating_add(size);
        compressed = compressed.saturating_add(entry.compressed_size());
        let name = entry.name().map_err(|e| broken(&e))?;
        if let Some(dir) = name.strip_suffix(".dist-info/METADATA")
            && !dir.is_empty()
            && !dir.contains('/')
        {
            candidates.push((i, dir.to_owned()));
        }
    }
    if total > MAX_TOTAL {
        return Err(bomb(&format!("it unpacks to {total} bytes")));
    }
    if total > RATIO_FLOOR && total / compressed.max(1) > MAX_RATIO {
        return Err(bomb(&format!(
            "{compressed} compressed bytes unpack to {total} bytes"
        )));
    }
    let index = match candidates.iter().find(|(_, d)| d == expected_dir) {
        Some((i, _)) => *i,
        None if candidates.len() == 1 => candidates[0].0,
        None => {
            return Err(Error::BadRequest(format!(
                "the wheel has no {expected_dir}.dist-info/METADATA"
            )));
        }
    };
    let entry = zip.by_index(index).map_err(|e| broken(&e))?;
    if entry.size() > MAX_METADATA {
        return Err(bomb("METADATA is larger than 4 MiB"));
    }
    read_bounded(entry, "METADATA").map_err(|e| match e {
        Error::BadRequest(m) if m.contains("larger than") => bomb(&m),
        other => other,
    })
}

fn read_bounded<R: Read>(reader: R, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader
        .take(MAX_METADATA + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::BadRequest(format!("{what} could not be read: {e}")))?;
    if buf.len() as u64 > MAX_METADATA {
        return Err(Error::BadRequest(format!("{what} is larger than 4 MiB")));
    }
    Ok(buf)
}

fn sdist_metadata<R: Read>(reader: R, expected_dir: &str) -> Result<Vec<u8>> {
    let broken = |e: &dyn std::fmt::Display| {
        Error::BadRequest(format!("the sdist is not a valid .tar.gz: {e}"))
    };
    let decoder = flate2::read::GzDecoder::new(reader).take(MAX_SDIST_SCAN);
    let mut archive = tar::Archive::new(decoder);
    let entries = archive.entries().map_err(|e| broken(&e))?;
    let mut fallback: Option<Vec<u8>> = None;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(broken(&"too many entries"));
        }
        let entry = entry.map_err(|e| broken(&e))?;
        let path = entry.path().map_err(|e| broken(&e))?.into_owned();
        let mut comps = path.components();
        let (top, file) = (comps.next(), comps.next());
        let Some(std::path::Component::Normal(top)) = top else {
            continue;
        };
        if comps.next().is_some() || file.is_none_or(|f| f.as_os_str() != "PKG-INFO") {
            continue;
        }
        let data = read_bounded(entry, "PKG-INFO")?;
        if top == expected_dir {
            return Ok(data);
        }
        fallback.get_or_insert(data);
    }
    fallback.ok_or_else(|| {
        Error::BadRequest(format!(
            "the sdist has no {expected_dir}/PKG-INFO (or it is truncated, or it unpacks to more than 512 MiB)"
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Cursor, Write as _};

    use super::*;

    pub(crate) fn wheel(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated),
            )
            .expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn reads_wheel_metadata_and_refuses_bombs() {
        let meta = b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\n";
        let whl = wheel(&[("a/__init__.py", b""), ("a-1.0.dist-info/METADATA", meta)]);
        assert_eq!(
            read_metadata(Cursor::new(&whl), DistKind::Wheel, "a-1.0").expect("meta"),
            meta
        );
        // One candidate elsewhere is still found.
        assert_eq!(
            read_metadata(Cursor::new(&whl), DistKind::Wheel, "b-2.0").expect("meta"),
            meta
        );
        let none = wheel(&[("a/__init__.py", b"")]);
        assert!(read_metadata(Cursor::new(&none), DistKind::Wheel, "a-1.0").is_err());
        assert!(read_metadata(Cursor::new(b"not a zip"), DistKind::Wheel, "a-1.0").is_err());

        let huge_meta = vec![b'x'; (MAX_METADATA + 10) as usize];
        let whl = wheel(&[("a-1.0.dist-info/METADATA", &huge_meta)]);
        let err = read_metadata(Cursor::new(&whl), DistKind::Wheel, "a-1.0").expect_err("bomb");
        assert!(err.to_string().contains("zip bomb"), "{err}");
    }

    #[test]
    fn reads_sdist_pkg_info() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("a-1.0/setup.py", &b"print()"[..]),
            ("a-1.0/a.egg-info/PKG-INFO", b"wrong"),
            (
                "a-1.0/PKG-INFO",
                b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\n",
            ),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, path, data).expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gz");
        let tgz = gz.finish().expect("gz");
        let got = read_metadata(Cursor::new(&tgz), DistKind::Sdist, "a-1.0").expect("pkg-info");
        assert!(got.starts_with(b"Metadata-Version"));
        assert!(read_metadata(Cursor::new(&tgz[..20]), DistKind::Sdist, "a-1.0").is_err());
    }
}
