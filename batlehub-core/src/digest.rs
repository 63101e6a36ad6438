//! Digests: hashing while streaming, and the digests upstreams publish.

use base64::Engine as _;
use sha1::Digest as _;

/// A check of a downloaded artifact's whole content, for formats whose upstream publishes
/// no digest of the bytes but something about what is inside them (Go publishes an `h1:`
/// hash over a module zip's files, and the `go.mod` the zip must hold). See
/// [`Registry::upstream_artifact_checked`](crate::Registry::upstream_artifact_checked).
pub trait ContentCheck: Send + Sync + std::fmt::Debug + 'static {
    /// Checks the complete download in `file` (at its start), on a blocking thread.
    ///
    /// # Errors
    /// Why the content is refused (told to the client): it is neither served nor cached.
    fn check(&self, file: &mut std::fs::File) -> Result<(), String>;
}

/// A digest an upstream published for an artifact, checked while the artifact streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedDigest {
    /// sha256 (cargo `cksum`, PyPI `sha256`, Maven `.sha256`).
    Sha256(Vec<u8>),
    /// sha512 (npm `integrity`, Maven `.sha512`).
    Sha512(Vec<u8>),
    /// sha1 (npm `shasum`, Maven `.sha1`): weak, used only when nothing stronger is offered.
    Sha1(Vec<u8>),
}

impl ExpectedDigest {
    /// Parses a Subresource Integrity string (`sha512-<base64>`), taking the strongest
    /// algorithm listed.
    #[must_use]
    pub fn from_sri(sri: &str) -> Option<Self> {
        let mut best: Option<ExpectedDigest> = None;
        for part in sri.split_whitespace() {
            let Some((alg, b64)) = part.split_once('-') else {
                continue;
            };
            let b64 = b64.split('?').next().unwrap_or(b64);
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            let candidate = match (alg, raw.len()) {
                ("sha512", 64) => ExpectedDigest::Sha512(raw),
                ("sha256", 32) => ExpectedDigest::Sha256(raw),
                ("sha1", 20) => ExpectedDigest::Sha1(raw),
                _ => continue,
            };
            if best
                .as_ref()
                .is_none_or(|b| b.strength() < candidate.strength())
            {
                best = Some(candidate);
            }
        }
        best
    }

    /// Parses a hex digest of the given algorithm (`sha256`, `sha512`, `sha1`).
    #[must_use]
    pub fn from_hex(algorithm: &str, hex_digest: &str) -> Option<Self> {
        let raw = hex::decode(hex_digest.trim()).ok()?;
        match (algorithm, raw.len()) {
            ("sha256", 32) => Some(ExpectedDigest::Sha256(raw)),
            ("sha512", 64) => Some(ExpectedDigest::Sha512(raw)),
            ("sha1", 20) => Some(ExpectedDigest::Sha1(raw)),
            _ => None,
        }
    }

    fn strength(&self) -> u8 {
        match self {
            ExpectedDigest::Sha1(_) => 1,
            ExpectedDigest::Sha256(_) => 2,
            ExpectedDigest::Sha512(_) => 3,
        }
    }

    /// Whether `digests` satisfies this expectation.
    #[must_use]
    pub fn matches(&self, digests: &Digests) -> bool {
        match self {
            ExpectedDigest::Sha256(d) => d.as_slice() == digests.sha256.as_slice(),
            ExpectedDigest::Sha512(d) => d.as_slice() == digests.sha512.as_slice(),
            ExpectedDigest::Sha1(d) => d.as_slice() == digests.sha1.as_slice(),
        }
    }
}

/// The digests of a complete artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// sha256 (the content address).
    pub sha256: Vec<u8>,
    /// sha512.
    pub sha512: Vec<u8>,
    /// sha1.
    pub sha1: Vec<u8>,
    /// Byte count.
    pub size: u64,
}

impl Digests {
    /// Lowercase hex sha256.
    #[must_use]
    pub fn sha256_hex(&self) -> String {
        hex::encode(&self.sha256)
    }

    /// Lowercase hex sha1.
    #[must_use]
    pub fn sha1_hex(&self) -> String {
        hex::encode(&self.sha1)
    }

    /// `sha512-<base64>`, the npm `integrity` form.
    #[must_use]
    pub fn sha512_sri(&self) -> String {
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(&self.sha512)
        )
    }

    /// Digests of an in-memory buffer.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = MultiHasher::default();
        h.update(bytes);
        h.finish()
    }
}

/// Computes sha256, sha512 and sha1 in one pass over a stream.
#[derive(Debug, Default, Clone)]
pub struct MultiHasher {
    sha256: sha2::Sha256,
    sha512: sha2::Sha512,
    sha1: sha1::Sha1,
    size: u64,
}

impl MultiHasher {
    /// Feeds a chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.sha256.update(chunk);
        self.sha512.update(chunk);
        self.sha1.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Bytes seen so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The final digests.
    #[must_use]
    pub fn finish(self) -> Digests {
        Digests {
            sha256: self.sha256.finalize().to_vec(),
            sha512: self.sha512.finalize().to_vec(),
            sha1: self.sha1.finalize().to_vec(),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sri_takes_strongest_and_matches() {
        let d = Digests::of(b"hello");
        let sri = format!(
            "sha1-{} {}",
            base64::engine::general_purpose::STANDARD.encode(&d.sha1),
            d.sha512_sri()
        );
        let e = ExpectedDigest::from_sri(&sri).expect("parses");
        assert!(matches!(e, ExpectedDigest::Sha512(_)));
        assert!(e.matches(&d));
        assert!(!e.matches(&Digests::of(b"hellO")));
    }

    #[test]
    fn hex_digests() {
        let d = Digests::of(b"abc");
        assert!(
            ExpectedDigest::from_hex("sha1", &d.sha1_hex())
                .expect("hex")
                .matches(&d)
        );
        assert!(
            ExpectedDigest::from_hex("sha256", &d.sha256_hex())
                .expect("hex")
                .matches(&d)
        );
        assert!(ExpectedDigest::from_hex("sha256", "zz").is_none());
        assert!(ExpectedDigest::from_sri("md5-AAAA").is_none());
    }
}
