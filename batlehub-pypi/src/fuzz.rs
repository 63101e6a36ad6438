//! Fuzz targets for PyPI's parsers of untrusted bytes: uploaded wheels and sdists, core
//! metadata, multipart upload bodies, versions, names and file names, upstream Simple API
//! pages and request paths (`PROPTEST_CASES` sets the length of a run).

use std::io::{Cursor, Write as _};

use batlehub_test::fuzz::{mutated, mutated_str};
use bytes::Bytes;
use proptest::prelude::*;

use crate::name::{DistKind, ProjectName};
use crate::version::Version;

const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.post1\n\
Requires-Python: >=3.8\nRequires-Dist: requests (>=2); extra == 'http'\nSummary: a demo\n\
Description-Content-Type: text/markdown\n\n# Demo\nLong text.\n";

fn wheel() -> Vec<u8> {
    crate::archive::tests::wheel(&[
        ("demo_pkg/__init__.py", b"x = 1\n"),
        ("demo_pkg-1.0.post1.dist-info/METADATA", METADATA),
        (
            "demo_pkg-1.0.post1.dist-info/RECORD",
            b"demo_pkg/__init__.py,,\n",
        ),
    ])
}

fn sdist() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (path, data) in [
        ("demo_pkg-1.0.post1/PKG-INFO", METADATA),
        (
            "demo_pkg-1.0.post1/setup.py",
            b"from setuptools import setup\nsetup()\n",
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data).expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

const BOUNDARY: &str = "fuzzXbOuNdArY";

fn upload_body() -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", "demo-pkg"),
        ("version", "1.0.post1"),
        ("sha256_digest", "00"),
    ] {
        write!(
            body,
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .expect("write");
    }
    write!(
        body,
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; \
         filename=\"demo_pkg-1.0.post1.tar.gz\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .expect("write");
    body.extend_from_slice(b"\x1f\x8b not really gzip\r\n--fuzzXbOuN not the end");
    write!(body, "\r\n--{BOUNDARY}--\r\n").expect("write");
    body
}

/// Reads every part of a multipart body delivered in `chunk`-byte pieces; the parser must
/// end (with parts or an error) and never hand out more than the body held.
fn read_multipart(body: &[u8], chunk: usize) -> usize {
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = body
        .chunks(chunk.max(1))
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut mp = crate::multipart::Multipart::new(body, BOUNDARY);
        let mut seen = 0;
        loop {
            match mp.next_part().await {
                Ok(Some(part)) => {
                    if part.filename.is_some() {
                        while let Ok(Some(c)) = mp.chunk().await {
                            seen += c.len();
                        }
                    } else if let Ok(text) = mp.text(&part.name, 1024).await {
                        seen += text.len();
                    }
                }
                Ok(None) | Err(_) => return seen,
            }
        }
    })
}

const SIMPLE_JSON: &str = r#"{"meta":{"api-version":"1.1"},"name":"demo-pkg","versions":["1.0"],
"files":[{"filename":"demo_pkg-1.0.tar.gz","url":"../../packages/demo_pkg-1.0.tar.gz#sha256=00",
"hashes":{"sha256":"00"},"requires-python":">=3.8","yanked":"broken","core-metadata":{"sha256":"00"},
"size":10,"upload-time":"2025-01-01T00:00:00.000000Z"}]}"#;

const SIMPLE_HTML: &str = r#"<!DOCTYPE html><html><body><h1>Links for demo-pkg</h1>
<a href="../../packages/demo_pkg-1.0-py3-none-any.whl#sha256=00" data-requires-python="&gt;=3.8"
data-dist-info-metadata="sha256=00" data-yanked="">demo_pkg-1.0-py3-none-any.whl</a><br/>
<a href='/x/demo-pkg-1.0.tar.gz'>demo-pkg-1.0.tar.gz</a></body></html>"#;

proptest! {
    #[test]
    fn wheels(bytes in mutated(wheel())) {
        let _ = crate::archive::read_metadata(Cursor::new(bytes), DistKind::Wheel, "demo_pkg-1.0.post1");
    }

    #[test]
    fn sdists(bytes in mutated(sdist())) {
        let _ = crate::archive::read_metadata(Cursor::new(bytes), DistKind::Sdist, "demo_pkg-1.0.post1");
    }

    #[test]
    fn core_metadata(bytes in mutated(METADATA.to_vec())) {
        if let Ok(meta) = crate::metadata::CoreMetadata::parse(&bytes) {
            prop_assert!(!meta.name().is_empty() && !meta.version().is_empty());
            let _ = meta.to_info();
        }
    }

    #[test]
    fn multipart_bodies(body in mutated(upload_body()), chunk in 1usize..64) {
        let seen = read_multipart(&body, chunk);
        prop_assert!(seen <= body.len());
    }

    #[test]
    fn boundaries(ct in mutated_str("multipart/form-data; boundary=\"fuzzXbOuNdArY\"")) {
        if let Ok(b) = crate::multipart::boundary(Some(&ct)) {
            prop_assert!(!b.is_empty() && b.len() <= 200, "{:?}", b);
        }
    }

    #[test]
    fn versions(v in prop_oneof![mutated_str("1!2.0.0rc1.post2.dev3+local.7"), any::<String>()]) {
        if let Some(parsed) = Version::parse(&v) {
            // The normalized form is a version equal to the original, and normal already.
            let again = Version::parse(&parsed.normalized());
            prop_assert_eq!(again.as_ref(), Some(&parsed), "{:?}", v);
            prop_assert_eq!(again.map(|a| a.normalized()), Some(parsed.normalized()));
        }
    }

    #[test]
    fn names(name in prop_oneof![mutated_str("Demo_Pkg.Name-2"), any::<String>()]) {
        if let Ok(parsed) = ProjectName::parse(&name) {
            prop_assert_eq!(ProjectName::parse(parsed.as_str()).ok(), Some(parsed.clone()));
            prop_assert_eq!(crate::name::normalize(parsed.as_str()), parsed.as_str());
        }
    }

    #[test]
    fn filenames(file in prop_oneof![
        mutated_str("demo_pkg-1.0.post1-cp311-cp311-manylinux_2_17_x86_64.whl"),
        mutated_str("demo-pkg-1.0.post1.tar.gz"),
    ]) {
        let project = ProjectName::parse("demo-pkg").expect("name");
        let version = crate::name::version_of(&file, &project);
        // A file name that passes the check yields a version that is one path segment.
        if crate::name::check_filename(&file).is_ok()
            && let Some(v) = version
        {
            prop_assert!(!v.is_empty() && !v.contains('/') && v != "..", "{:?} -> {:?}", file, v);
        }
    }

    #[test]
    fn simple_pages(
        json in mutated(SIMPLE_JSON.as_bytes().to_vec()),
        html in mutated_str(SIMPLE_HTML),
    ) {
        let _ = crate::wire::parse_json(&json);
        let _ = crate::wire::parse_html(&html);
        let _ = crate::wire::parse_index(Some("application/vnd.pypi.simple.v1+json"), &json);
        let _ = crate::wire::parse_index(Some("text/html"), html.as_bytes());
    }

    #[test]
    fn paths(path in prop_oneof![
        mutated_str("/simple/demo-pkg/"),
        mutated_str("/packages/demo-pkg/demo_pkg-1.0-py3-none-any.whl"),
        mutated_str("/pypi/demo-pkg/1.0/json"),
    ]) {
        let _ = crate::routes::parse(&path);
    }
}
