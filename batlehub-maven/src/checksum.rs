//! Checksum siblings (`.md5`, `.sha1`, `.sha256`, `.sha512`), computed by the server.

use batlehub_core::body::Body;
use batlehub_core::{Error, Result};
use http_body_util::BodyExt as _;
use md5::Digest as _;

/// A checksum algorithm Maven asks for with a file-name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    /// Splits a checksum suffix off a file name.
    pub(crate) fn split(file: &str) -> (&str, Option<Self>) {
        for (suffix, algo) in [
            (".md5", Algo::Md5),
            (".sha1", Algo::Sha1),
            (".sha256", Algo::Sha256),
            (".sha512", Algo::Sha512),
        ] {
            if let Some(base) = file.strip_suffix(suffix) {
                return (base, Some(algo));
            }
        }
        (file, None)
    }

    /// Hex length of a digest.
    fn hex_len(self) -> usize {
        match self {
            Algo::Md5 => 32,
            Algo::Sha1 => 40,
            Algo::Sha256 => 64,
            Algo::Sha512 => 128,
        }
    }

    /// Parses a checksum file as Maven tools write it (`HEX` or `HEX  filename`).
    pub(crate) fn parse_file(self, body: &[u8]) -> Result<String> {
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::BadRequest("checksum file is not UTF-8 text".into()))?;
        let hex = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if hex.len() != self.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadRequest(format!(
                "checksum file is not a {} hex digest",
                self.name()
            )));
        }
        Ok(hex)
    }

    /// The algorithm's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    /// The hex digest of `bytes`.
    pub(crate) fn of(self, bytes: &[u8]) -> String {
        let mut h = Hasher::new(self);
        h.update(bytes);
        h.finish()
    }

    /// The hex digest of a streamed body.
    pub(crate) async fn of_body(self, body: Body) -> Result<String> {
        self.of_body_checked(body, None, "").await
    }

    /// The digest of `body`, checking on the way that its sha256 is `sha256` (the digest
    /// the bytes were stored or verified under): a checksum is only ever served for bytes
    /// that are still the ones that were verified.
    ///
    /// # Errors
    /// [`Error::Integrity`] naming `key` when the bytes changed; storage errors.
    pub(crate) async fn of_body_checked(
        self,
        mut body: Body,
        sha256: Option<&str>,
        key: &str,
    ) -> Result<String> {
        let mut h = Hasher::new(self);
        let mut check = sha256.map(|_| sha2::Sha256::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::storage(format!("reading a blob: {e}")))?;
            if let Ok(data) = frame.into_data() {
                h.update(&data);
                if let Some(c) = check.as_mut() {
                    c.update(&data);
                }
            }
        }
        if let (Some(c), Some(want)) = (check, sha256)
            && !hex::encode(c.finalize()).eq_ignore_ascii_case(want)
        {
            tracing::error!(key, "stored bytes no longer match their digest");
            return Err(Error::Integrity {
                key: key.to_owned(),
            });
        }
        Ok(h.finish())
    }
}

enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algo: Algo) -> Self {
        match algo {
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_files() {
        assert_eq!(Algo::Md5.of(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            Algo::Sha1.of(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(Algo::split("a.jar.sha1"), ("a.jar", Some(Algo::Sha1)));
        assert_eq!(Algo::split("a.jar"), ("a.jar", None));
        assert_eq!(
            Algo::Sha1
                .parse_file(b"A9993E364706816ABA3E25717850C26C9CD0D89D  a.jar\n")
                .expect("ok"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert!(Algo::Sha1.parse_file(b"nope").is_err());
    }
}
