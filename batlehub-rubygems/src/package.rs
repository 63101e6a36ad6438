//! `.gem` files: a tar of `metadata.gz` (the YAML gemspec), `data.tar.gz` (the files) and
//! `checksums.yaml.gz` (digests of the other two), read the way `gem install` checks them,
//! with every decompression bounded.

use std::collections::BTreeMap;
use std::io::Read;

use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use crate::gemspec::{self, GemSpec};
use crate::yaml::{self, Node};

/// Limits on what a `.gem` unpacks to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The gemspec YAML, unpacked.
    pub metadata: u64,
    /// `checksums.yaml`, unpacked.
    pub checksums: u64,
    /// `data.tar.gz`, unpacked (its member names are checked).
    pub data: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            metadata: 16 << 20,
            checksums: 1 << 20,
            data: 1 << 30,
        }
    }
}

/// What a valid `.gem` holds.
#[derive(Debug, Clone)]
pub struct Package {
    /// The gemspec.
    pub spec: GemSpec,
    /// Whether `checksums.yaml.gz` was present (and verified).
    pub checksummed: bool,
}

/// The digests of one member, as `checksums.yaml` names them.
#[derive(Debug, Default)]
struct MemberDigests {
    sha1: String,
    sha256: String,
    sha512: String,
}

impl MemberDigests {
    fn get(&self, algorithm: &str) -> Option<&str> {
        match algorithm {
            "SHA1" => Some(&self.sha1),
            "SHA256" => Some(&self.sha256),
            "SHA512" => Some(&self.sha512),
            _ => None,
        }
    }
}

/// Reads and checks a `.gem`.
///
/// # Errors
/// Why it is refused: not a tar, an unexpected or repeated member (`../x`), a missing
/// `metadata.gz` or `data.tar.gz`, a member that unpacks past `limits`, a `data.tar.gz`
/// member leaving the gem's directory, digests that do not match `checksums.yaml.gz`, an
/// invalid gemspec.
pub fn read(gem: impl Read, limits: Limits) -> Result<Package, String> {
    let mut archive = tar::Archive::new(gem);
    let mut digests: BTreeMap<String, MemberDigests> = BTreeMap::new();
    let mut metadata: Option<String> = None;
    let mut checksums: Option<String> = None;
    for entry in archive
        .entries()
        .map_err(|e| format!("the .gem is not a tar archive: {e}"))?
    {
        let mut entry = entry.map_err(|e| format!("the .gem is not a valid tar archive: {e}"))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let known = matches!(
            name.as_str(),
            "metadata.gz" | "data.tar.gz" | "checksums.yaml.gz"
        ) || name
            .strip_suffix(".sig")
            .is_some_and(|b| matches!(b, "metadata.gz" | "data.tar.gz" | "checksums.yaml.gz"));
        if !known {
            return Err(format!("unexpected member {name:?} in the .gem"));
        }
        if digests.contains_key(&name) {
            return Err(format!("the .gem holds {name:?} twice"));
        }
        let mut d = MemberDigests::default();
        match name.as_str() {
            "metadata.gz" => {
                let raw = read_bounded(&mut entry, limits.metadata, &name)?;
                d = digests_of(&raw);
                let text = gunzip(&raw, limits.metadata, "metadata.gz")?;
                metadata = Some(
                    String::from_utf8(text).map_err(|_| "the gemspec is not UTF-8".to_owned())?,
                );
            }
            "checksums.yaml.gz" => {
                let raw = read_bounded(&mut entry, limits.checksums, &name)?;
                let text = gunzip(&raw, limits.checksums, "checksums.yaml.gz")?;
                checksums = Some(
                    String::from_utf8(text)
                        .map_err(|_| "checksums.yaml is not UTF-8".to_owned())?,
                );
            }
            "data.tar.gz" => d = check_data(&mut entry, limits.data)?,
            _ => {
                // A signature: kept as it is, not checked here.
                read_bounded(&mut entry, 64 << 10, &name)?;
            }
        }
        digests.insert(name, d);
    }
    if !digests.contains_key("data.tar.gz") {
        return Err("the .gem has no data.tar.gz".into());
    }
    let metadata = metadata.ok_or("the .gem has no metadata.gz")?;
    let checksummed = match checksums {
        Some(text) => {
            verify_checksums(&text, &digests)?;
            true
        }
        None => false,
    };
    let spec = gemspec::parse(&metadata)?;
    Ok(Package { spec, checksummed })
}

fn digests_of(bytes: &[u8]) -> MemberDigests {
    MemberDigests {
        sha1: hex::encode(Sha1::digest(bytes)),
        sha256: hex::encode(Sha256::digest(bytes)),
        sha512: hex::encode(Sha512::digest(bytes)),
    }
}

fn read_bounded(r: &mut impl Read, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what} could not be read: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("{what} is larger than {limit} bytes"));
    }
    Ok(out)
}

fn gunzip(raw: &[u8], limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{what} is not valid gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("{what} unpacks to more than {limit} bytes"));
    }
    Ok(out)
}

/// Hashes `data.tar.gz` as it is read, and checks that its members stay inside the gem's
/// directory (no absolute paths, no `..`), unpacking at most `limit` bytes.
fn check_data(entry: &mut impl Read, limit: u64) -> Result<MemberDigests, String> {
    struct Tee<'a, R> {
        inner: R,
        sha1: &'a mut Sha1,
        sha256: &'a mut Sha256,
        sha512: &'a mut Sha512,
    }
    impl<R: Read> Read for Tee<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.sha1.update(&buf[..n]);
            self.sha256.update(&buf[..n]);
            self.sha512.update(&buf[..n]);
            Ok(n)
        }
    }
    let (mut sha1, mut sha256, mut sha512) = (Sha1::new(), Sha256::new(), Sha512::new());
    {
        let tee = Tee {
            inner: &mut *entry,
            sha1: &mut sha1,
            sha256: &mut sha256,
            sha512: &mut sha512,
        };
        let unpacked = flate2::read::GzDecoder::new(tee).take(limit + 1);
        let mut inner = tar::Archive::new(unpacked);
        for member in inner
            .entries()
            .map_err(|e| format!("data.tar.gz is not a tar archive: {e}"))?
        {
            let member = member.map_err(|e| format!("data.tar.gz is corrupt: {e}"))?;
            let path = String::from_utf8_lossy(&member.path_bytes()).into_owned();
            if path.starts_with('/') || path.contains('\\') || path.split('/').any(|p| p == "..") {
                return Err(format!(
                    "data.tar.gz member {path:?} leaves the gem's directory"
                ));
            }
        }
        let rest = inner.into_inner();
        if rest.limit() == 0 {
            return Err(format!("data.tar.gz unpacks to more than {limit} bytes"));
        }
        // The digests cover every byte of the member, past the tar's end too.
        let mut tee = rest.into_inner().into_inner();
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|e| format!("data.tar.gz could not be read: {e}"))?;
    }
    Ok(MemberDigests {
        sha1: hex::encode(sha1.finalize()),
        sha256: hex::encode(sha256.finalize()),
        sha512: hex::encode(sha512.finalize()),
    })
}

/// Checks `checksums.yaml` (`ALGORITHM: {member: hex}`) against the members' digests.
fn verify_checksums(text: &str, digests: &BTreeMap<String, MemberDigests>) -> Result<(), String> {
    let doc = yaml::parse(text).map_err(|e| format!("checksums.yaml: {e}"))?;
    let Node::Map(algorithms, _) = doc else {
        return Err("checksums.yaml is not a mapping".into());
    };
    let mut checked = 0;
    for (algorithm, members) in &algorithms {
        let Node::Map(members, _) = members else {
            return Err(format!("checksums.yaml: {algorithm} is not a mapping"));
        };
        for (member, expected) in members {
            let expected = expected
                .str()
                .ok_or_else(|| format!("checksums.yaml: no {algorithm} digest of {member}"))?;
            let Some(actual) = digests.get(member) else {
                return Err(format!(
                    "checksums.yaml names {member:?}, which the .gem lacks"
                ));
            };
            let Some(actual) = actual.get(algorithm) else {
                continue; // an algorithm not known here
            };
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(format!(
                    "the {algorithm} digest of {member} does not match checksums.yaml"
                ));
            }
            checked += 1;
        }
    }
    if checked == 0 {
        return Err("checksums.yaml checks nothing this registry can verify".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write as _;

    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o444);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("tar entry");
        }
        b.into_inner().expect("tar")
    }

    /// A tar entry whose name is written raw (the tar builder refuses `..`).
    fn raw_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    /// A `.gem` of `spec` with one file, its checksums as `gem build` writes them, or
    /// `checksums` instead.
    pub(crate) fn gem(spec: &str, checksums: Option<&str>) -> Vec<u8> {
        let metadata = gz(spec.as_bytes());
        let data = gz(&tar_of(&[("lib/demo.rb", b"puts 1\n")]));
        let sums = checksums.map_or_else(
            || {
                format!(
                    "---\nSHA256:\n  metadata.gz: {}\n  data.tar.gz: {}\nSHA512:\n  metadata.gz: {}\n  data.tar.gz: {}\n",
                    hex::encode(Sha256::digest(&metadata)),
                    hex::encode(Sha256::digest(&data)),
                    hex::encode(Sha512::digest(&metadata)),
                    hex::encode(Sha512::digest(&data)),
                )
            },
            str::to_owned,
        );
        tar_of(&[
            ("metadata.gz", &metadata),
            ("data.tar.gz", &data),
            ("checksums.yaml.gz", &gz(sums.as_bytes())),
        ])
    }

    #[test]
    fn reads_a_gem() {
        let got = read(&gem(gemspec::DEMO, None)[..], Limits::default()).expect("valid");
        assert_eq!(got.spec.name, "demo-gem");
        assert!(got.checksummed);
    }

    #[test]
    fn refuses_bad_gems() {
        let spec = gemspec::DEMO;
        let wrong = "---\nSHA256:\n  metadata.gz: 00\n  data.tar.gz: 00\n";
        let metadata = gz(spec.as_bytes());
        let evil_data = gz(&raw_tar("../../etc/x", b"x"));
        let bomb = gz(&vec![b' '; 17 << 20]);
        for (bytes, why) in [
            (b"not a tar".to_vec(), "tar"),
            (gem(spec, Some(wrong)), "does not match checksums.yaml"),
            (raw_tar("../metadata.gz", &metadata), "unexpected member"),
            (
                tar_of(&[("metadata.gz", &metadata), ("data.tar.gz", &evil_data)]),
                "leaves the gem's directory",
            ),
            (
                tar_of(&[("metadata.gz", &bomb), ("data.tar.gz", &gz(b""))]),
                "unpacks to more than",
            ),
            (tar_of(&[("metadata.gz", &metadata)]), "no data.tar.gz"),
            (
                gem(&spec.replace("name: demo-gem", "name: ../x"), None),
                "invalid gem name",
            ),
            (gem("--- &a [*a]\n", None), "not accepted"),
            (
                {
                    let mut g = gem(spec, None);
                    g.truncate(700);
                    g
                },
                "",
            ),
        ] {
            let err = read(&bytes[..], Limits::default()).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
