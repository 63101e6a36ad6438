//! Module zips: the checks the go command makes before it trusts one (`CheckZip` of the Go
//! team's `x/mod/zip` package), the `h1:` hash that `go.sum` and the checksum database
//! record for it, and the `go.mod` inside.
//!
//! Everything is bounded: the declared sizes are checked from the central directory before
//! a byte is inflated, an entry that inflates past its declared size is refused, and
//! `go.mod` is the only content held in memory (at most 16 MiB).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::name::{ModulePath, Version, is_reserved};

/// The largest module zip, and the most its files may hold unpacked (the go command's).
pub(crate) const MAX_ZIP: u64 = 500 << 20;
/// The largest `go.mod` (and `LICENSE`) at the module root.
pub(crate) const MAX_GO_MOD: u64 = 16 << 20;
/// The most entries a module zip may have.
const MAX_ENTRIES: usize = 100_000;

/// What a valid module zip holds.
#[derive(Debug, Clone)]
pub(crate) struct ModuleZip {
    /// `h1:` of the zip, as `go.sum` records it.
    pub(crate) h1: String,
    /// The root `go.mod`, or the one the go command synthesizes for a module without one.
    pub(crate) go_mod: Bytes,
    /// Whether the zip has a root `go.mod`.
    pub(crate) has_go_mod: bool,
}

/// Checks `zip` as a module zip of `module@version` and hashes it.
///
/// # Errors
/// Why it is not one (told to the uploader, or logged for an upstream's).
pub(crate) fn inspect<R: Read + Seek>(
    zip: R,
    module: &ModulePath,
    version: &Version,
) -> Result<ModuleZip, String> {
    let mut archive =
        zip::ZipArchive::new(zip).map_err(|e| format!("the body is not a zip file: {e}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!("the zip has more than {MAX_ENTRIES} entries"));
    }
    let prefix = format!("{module}@{version}/");
    // Every name and declared size first, from the central directory.
    let mut total: u64 = 0;
    let mut files: HashMap<String, ()> = HashMap::new();
    let mut folded_files: HashSet<String> = HashSet::new();
    let mut folded_dirs: HashSet<String> = HashSet::new();
    let mut go_mod_index = None;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| format!("unreadable zip entry: {e}"))?;
        let name = entry_name(&entry)?;
        let size = entry.size();
        drop(entry);
        let Some(rest) = name.strip_prefix(&prefix) else {
            return Err(format!("zip entry {name:?} is not under {prefix}"));
        };
        if rest.is_empty() {
            continue;
        }
        if let Some(dir) = rest.strip_suffix('/') {
            check_file_path(dir)?;
            folded_dirs.insert(fold(dir));
            continue;
        }
        check_file_path(rest)?;
        if files.insert(rest.to_owned(), ()).is_some() {
            return Err(format!("zip entry {rest:?} appears twice"));
        }
        if !folded_files.insert(fold(rest)) {
            return Err(format!(
                "zip entry {rest:?} differs from another only in letter case"
            ));
        }
        let base = rest.rsplit('/').next().unwrap_or(rest);
        if base.eq_ignore_ascii_case("go.mod") {
            if rest != "go.mod" {
                return Err(format!(
                    "{rest}: go.mod files are allowed only as go.mod in the module root"
                ));
            }
            if size > MAX_GO_MOD {
                return Err(format!("go.mod is larger than {MAX_GO_MOD} bytes"));
            }
            go_mod_index = Some(i);
        }
        if rest == "LICENSE" && size > MAX_GO_MOD {
            return Err(format!("LICENSE is larger than {MAX_GO_MOD} bytes"));
        }
        total = total.saturating_add(size);
        if total > MAX_ZIP {
            return Err(format!("the module's files hold more than {MAX_ZIP} bytes"));
        }
    }
    // A file may not also be a directory (its parents are directories).
    for file in &folded_files {
        let mut dir = file.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            folded_dirs.insert(parent.to_owned());
            dir = parent;
        }
    }
    if let Some(both) = folded_files.iter().find(|f| folded_dirs.contains(*f)) {
        return Err(format!("{both:?} is both a file and a directory"));
    }
    // Then the content: hashed, each entry bounded by its declared size.
    let mut lines: Vec<(String, String)> = Vec::with_capacity(archive.len());
    let mut go_mod = None;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("unreadable zip entry: {e}"))?;
        let name = entry_name(&entry)?;
        if name.contains('\n') {
            return Err(format!("zip entry name {name:?} holds a newline"));
        }
        let declared = entry.size();
        let mut hasher = Sha256::new();
        let mut kept = (Some(i) == go_mod_index).then(Vec::new);
        let mut buf = vec![0u8; 64 * 1024];
        let mut got: u64 = 0;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("zip entry {name:?} is corrupt: {e}"))?;
            if n == 0 {
                break;
            }
            got += n as u64;
            if got > declared {
                return Err(format!(
                    "zip entry {name:?} holds more than its declared {declared} bytes"
                ));
            }
            hasher.update(&buf[..n]);
            if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&buf[..n]);
            }
        }
        if let Some(k) = kept {
            go_mod = Some(Bytes::from(k));
        }
        lines.push((name, hex::encode(hasher.finalize())));
    }
    let h1 = hash1(lines);
    let (go_mod, has_go_mod) = match go_mod {
        Some(_) if version.as_str().ends_with("+incompatible") => {
            return Err(format!(
                "{version} is an +incompatible version, which is for a module without go.mod, but the zip has one (publish it as {module}/v{} instead)",
                version
                    .as_str()
                    .trim_start_matches('v')
                    .split('.')
                    .next()
                    .unwrap_or("N")
            ));
        }
        Some(bytes) => {
            let declared = module_directive(&bytes)
                .ok_or_else(|| "go.mod has no module directive".to_owned())?;
            if declared != module.as_str() {
                return Err(format!(
                    "go.mod declares module {declared:?}, not {:?}",
                    module.as_str()
                ));
            }
            (bytes, true)
        }
        None => (Bytes::from(format!("module {module}\n")), false),
    };
    if !has_go_mod && module.major().ok().flatten().is_some() {
        return Err(format!(
            "module {module} has a major-version suffix, so its zip needs a go.mod"
        ));
    }
    Ok(ModuleZip {
        h1,
        go_mod,
        has_go_mod,
    })
}

fn entry_name<R: Read>(entry: &zip::read::ZipFile<'_, R>) -> Result<String, String> {
    entry
        .name()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| format!("a zip entry's name is not valid: {e}"))
}

/// The `h1:` hash of `(name, hex sha256)` pairs: the sha256 of their `sha256sum`-style
/// lines in name order, in standard base64.
pub(crate) fn hash1(mut lines: Vec<(String, String)>) -> String {
    lines.sort_unstable();
    let mut summary = Sha256::new();
    for (name, hex) in &lines {
        summary.update(hex.as_bytes());
        summary.update(b"  ");
        summary.update(name.as_bytes());
        summary.update(b"\n");
    }
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(summary.finalize())
    )
}

/// The `h1:` hash of a `go.mod` (the `/go.mod` line of `go.sum`).
pub(crate) fn go_mod_hash(go_mod: &[u8]) -> String {
    hash1(vec![("go.mod".into(), hex::encode(Sha256::digest(go_mod)))])
}

/// The module path a `go.mod` declares (`module path`, `module "path"`, or a
/// parenthesized block).
pub(crate) fn module_directive(go_mod: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(go_mod).ok()?;
    let mut in_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        let value = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if let Some(rest) = line.strip_prefix("module") {
            if !rest.starts_with([' ', '\t', '(', '"', '`']) {
                continue;
            }
            let rest = rest.trim_start();
            if rest == "(" {
                in_block = true;
                continue;
            }
            rest
        } else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('`').and_then(|v| v.strip_suffix('`')))
            .unwrap_or(value);
        return Some(value.to_owned());
    }
    None
}

/// Checks a file's path inside a module (`CheckFilePath`): clean, relative, elements of
/// letters, digits, spaces and `!#$%&()+,-.=@[]^_{}~`, none `.`-only or ending in a dot, no
/// Windows device names.
fn check_file_path(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid file path {path:?} in the zip: {why}"));
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') || path.contains("//") {
        return bad("not a clean relative path");
    }
    for elem in path.split('/') {
        if elem.bytes().all(|b| b == b'.') {
            return bad("an element is `.` or `..`");
        }
        if elem.ends_with('.') {
            return bad("an element ends with a dot");
        }
        if let Some(c) = elem.chars().find(|c| {
            !(c.is_alphabetic() || c.is_ascii_digit() || " !#$%&()+,-.=@[]^_{}~".contains(*c))
        }) {
            return bad(&format!("character {c:?} is not allowed"));
        }
        if is_reserved(elem.split('.').next().unwrap_or_default()) {
            return bad("a Windows device name");
        }
    }
    Ok(())
}

/// A case-folded form of a path, for collisions on case-insensitive file systems.
fn fold(path: &str) -> String {
    path.to_lowercase()
}

/// A zip of `entries` (names as stored), for tests.
#[cfg(test)]
pub(crate) fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn m(s: &str) -> ModulePath {
        ModulePath::parse(s).expect("path")
    }
    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    #[test]
    fn hash1_matches_the_go_command() {
        // The x/mod dirhash test vector.
        let lines = vec![
            (
                "xyz".to_owned(),
                hex::encode(Sha256::digest(b"data for xyz")),
            ),
            (
                "abc".to_owned(),
                hex::encode(Sha256::digest(b"data for abc")),
            ),
        ];
        assert_eq!(
            hash1(lines),
            "h1:EP6WfDoQTSk9klnxcjriWJOGztueJUywHNmWeq+efB8="
        );
        assert_eq!(
            go_mod_hash(b"module example.com/m\n"),
            "h1:flS2VctbRrTv+sBE+VKgxx6hlkMGPVz9MGOmzMYFg3k="
        );
    }

    #[test]
    fn a_valid_zip_is_hashed_and_its_go_mod_kept() {
        let z = make_zip(&[
            (
                "example.com/m@v1.0.0/go.mod",
                b"module example.com/m\n\ngo 1.19\n",
            ),
            ("example.com/m@v1.0.0/m.go", b"package m\n"),
            ("example.com/m@v1.0.0/sub/s.go", b"package sub\n"),
        ]);
        let got = inspect(Cursor::new(z), &m("example.com/m"), &v("v1.0.0")).expect("valid");
        assert_eq!(&got.go_mod[..], b"module example.com/m\n\ngo 1.19\n");
        let expect = hash1(vec![
            (
                "example.com/m@v1.0.0/go.mod".into(),
                hex::encode(Sha256::digest(b"module example.com/m\n\ngo 1.19\n")),
            ),
            (
                "example.com/m@v1.0.0/m.go".into(),
                hex::encode(Sha256::digest(b"package m\n")),
            ),
            (
                "example.com/m@v1.0.0/sub/s.go".into(),
                hex::encode(Sha256::digest(b"package sub\n")),
            ),
        ]);
        assert_eq!(got.h1, expect);
        // Without go.mod, the go command's synthesized one.
        let z = make_zip(&[("example.com/m@v1.0.0/m.go", b"package m\n")]);
        let got = inspect(Cursor::new(z), &m("example.com/m"), &v("v1.0.0")).expect("valid");
        assert_eq!(&got.go_mod[..], b"module example.com/m\n");
        assert!(!got.has_go_mod);
    }

    #[test]
    fn bad_zips_are_refused_with_the_reason() {
        let module = m("example.com/m");
        let version = v("v1.0.0");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not a zip".to_vec(), "not a zip"),
            (
                make_zip(&[("example.com/m@v1.0.0/../evil.go", b"x")]),
                "invalid file path",
            ),
            (
                make_zip(&[("example.com/other@v1.0.0/x.go", b"x")]),
                "is not under",
            ),
            (
                make_zip(&[("example.com/m@v1.0.0/go.mod", b"module example.com/other\n")]),
                "declares module",
            ),
            (
                make_zip(&[(
                    "example.com/m@v1.0.0/sub/go.mod",
                    b"module example.com/m/sub\n",
                )]),
                "only as go.mod",
            ),
            (
                make_zip(&[
                    ("example.com/m@v1.0.0/A.go", b"x"),
                    ("example.com/m@v1.0.0/a.go", b"y"),
                ]),
                "letter case",
            ),
            (
                make_zip(&[
                    ("example.com/m@v1.0.0/x", b"x"),
                    ("example.com/m@v1.0.0/x/y", b"y"),
                ]),
                "both a file and a directory",
            ),
            (
                make_zip(&[("example.com/m@v1.0.0/a\"b", b"x")]),
                "not allowed",
            ),
            (
                make_zip(&[("example.com/m@v1.0.0/nul.txt", b"x")]),
                "device name",
            ),
        ];
        for (zip, why) in cases {
            let err = inspect(Cursor::new(zip), &module, &version).expect_err(why);
            assert!(err.contains(why), "{err} / {why}");
        }
    }

    /// Rewrites the uncompressed size of entry `name` in its local and central headers.
    fn declare_size(mut zip: Vec<u8>, name: &str, size: u32) -> Vec<u8> {
        let name = name.as_bytes();
        for i in 0..zip.len().saturating_sub(46) {
            if zip[i..i + 4] == [0x50, 0x4b, 0x03, 0x04] && zip[i + 30..].starts_with(name) {
                zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
            }
            if zip[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && zip[i + 46..].starts_with(name) {
                zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
            }
        }
        zip
    }

    #[test]
    fn sizes_are_bounded_before_and_while_inflating() {
        let module = m("example.com/m");
        let version = v("v1.0.0");
        let name = "example.com/m@v1.0.0/zeros.txt";
        let zip = make_zip(&[(name, &vec![0u8; 1 << 20])]);
        // Declared past the limit: refused from the central directory.
        let err = inspect(
            Cursor::new(declare_size(zip.clone(), name, 600 << 20)),
            &module,
            &version,
        )
        .expect_err("too large");
        assert!(err.contains("more than"), "{err}");
        // Declared small, inflating to more: refused at the declared size.
        let err = inspect(
            Cursor::new(declare_size(zip, name, 1024)),
            &module,
            &version,
        )
        .expect_err("lying size");
        assert!(err.contains("declared") || err.contains("corrupt"), "{err}");
        // A go.mod past 16 MiB.
        let big = make_zip(&[("example.com/m@v1.0.0/go.mod", b"module example.com/m\n")]);
        let err = inspect(
            Cursor::new(declare_size(big, "example.com/m@v1.0.0/go.mod", 17 << 20)),
            &module,
            &version,
        )
        .expect_err("big go.mod");
        assert!(err.contains("go.mod is larger"), "{err}");
    }

    #[test]
    fn module_directives() {
        assert_eq!(
            module_directive(b"// c\nmodule example.com/m // x\n").as_deref(),
            Some("example.com/m")
        );
        assert_eq!(
            module_directive(b"module \"example.com/m\"\n").as_deref(),
            Some("example.com/m")
        );
        assert_eq!(
            module_directive(b"module (\n\texample.com/m\n)\n").as_deref(),
            Some("example.com/m")
        );
        assert_eq!(module_directive(b"modulex example.com/m\n"), None);
        assert_eq!(module_directive(b"go 1.19\n"), None);
    }
}
