//! A checksum database (`GOSUMDB`) in front of a proxy registry: its answers are passed
//! through at `/sumdb/{name}/...` (so `GOSUMDB` traffic can go through this registry, as the
//! go command does when `GOPROXY` says it supports it), and every upstream module zip and
//! `go.mod` is checked against the `h1:` lines it publishes before being served or cached.
//!
//! Lookups and complete tiles never change once published and are kept in the memory
//! cache; `latest` and partial tiles are passed through as they are. With the database's
//! verifier key ([`ChecksumDb::verified_by`]) the proxy checks each lookup as the go command
//! does: the tree note's signature, and the record's inclusion in that tree from the tiles
//! ([`crate::tlog`]). Without it, the `go.sum` lines are taken from the database over its own
//! TLS. Each verified tree must also agree with the largest one verified before (the
//! smaller one's root recomputed from the larger one's tiles): a database that forks is
//! refused. That memory is per process and starts empty. (The go command, asking through
//! this registry, verifies all of this itself either way.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use batlehub_core::upstream::{UpstreamClient, UpstreamOptions, read_limited};
use batlehub_core::{Error, MemoCache, Result};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use url::Url;

use crate::name::{ModulePath, Version, escape};
use crate::tlog::{self, Consistency, Inclusion, Tile, Tree, VerifierKey};

/// The largest answer read from the database (a lookup is a few hundred bytes, a tile 8 KiB).
const MAX_ANSWER: u64 = 1 << 20;

/// A checksum database: where it is, and which modules it is not asked about.
#[derive(Debug, Clone)]
pub struct ChecksumDb {
    name: String,
    client: UpstreamClient,
    root: Url,
    skip: Arc<Vec<String>>,
    key: Option<Arc<VerifierKey>>,
    /// The largest tree verified so far (with a key): every later one must agree with it.
    latest: Arc<Mutex<Option<Tree>>>,
}

/// The `go.sum` hashes of one module version, as the database published them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sums {
    /// `h1:` of the module zip.
    pub(crate) zip: String,
    /// `h1:` of its `go.mod`.
    pub(crate) go_mod: String,
}

impl ChecksumDb {
    /// The database at `url` (`https://host[/path]`; its name, as `GOSUMDB` and the
    /// `/sumdb/{name}/` URLs give it, is `host[/path]`). Modules matching a pattern of
    /// `skip` (`GONOSUMDB` globs: `example.com/private`, `*.corp.example`) are not looked up.
    ///
    /// # Errors
    /// When `url` is not an http(s) URL with a host, or a pattern is empty.
    pub fn new(
        url: &str,
        skip: impl IntoIterator<Item = impl Into<String>>,
    ) -> std::result::Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| format!("checksum_db `{url}`: {e}"))?;
        let host = parsed
            .host_str()
            .filter(|_| matches!(parsed.scheme(), "http" | "https"))
            .ok_or_else(|| format!("checksum_db `{url}` must be http(s) with a host"))?;
        let path = parsed.path().trim_end_matches('/');
        let name = match parsed.port() {
            Some(port) => format!("{host}:{port}{path}"),
            None => format!("{host}{path}"),
        };
        let mut options = UpstreamOptions::default();
        options.urls = vec![url.to_owned()];
        let client = UpstreamClient::new(&options)?;
        let root = client
            .roots()
            .first()
            .cloned()
            .ok_or_else(|| format!("checksum_db `{url}`: no URL"))?;
        let skip: Vec<String> = skip.into_iter().map(Into::into).collect();
        if skip.iter().any(String::is_empty) {
            return Err("checksum_db_skip: empty pattern".into());
        }
        Ok(Self {
            name,
            client,
            root,
            skip: Arc::new(skip),
            key: None,
            latest: Arc::default(),
        })
    }

    /// Verifies every lookup with the database's key (`name+hash+base64`, as `GOSUMDB`
    /// takes it): the tree note must carry its signature, the record must prove into that
    /// tree, and the tree must agree with the largest one verified before by this process
    /// (the tiles are read from the database); a lookup that fails is an upstream error and
    /// its hashes are not used. The database is then also passed through under the key's
    /// name, the one the go command asks for.
    ///
    /// # Errors
    /// When `key` is not an Ed25519 verifier key whose hash matches its name and key.
    pub fn verified_by(mut self, key: &str) -> std::result::Result<Self, String> {
        self.key = Some(Arc::new(VerifierKey::parse(key)?));
        Ok(self)
    }

    /// The database's name (`host[/path]`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether `name` (of `/sumdb/{name}/`) names this database: its URL's `host[/path]`,
    /// or its key's name.
    pub(crate) fn serves(&self, name: &str) -> bool {
        self.name == name || self.key.as_ref().is_some_and(|k| k.name() == name)
    }

    /// Whether `module` is one the database is not asked about.
    pub(crate) fn skips(&self, module: &str) -> bool {
        self.skip.iter().any(|p| matches_prefix(p, module))
    }

    /// The database's answer for `rest` (`lookup/...`, `tile/...`, `latest`): status and
    /// body. Lookups and complete tiles are remembered in `memo`.
    pub(crate) async fn get(&self, memo: &MemoCache, rest: &str) -> Result<(StatusCode, Bytes)> {
        let immutable =
            rest.starts_with("lookup/") || (rest.starts_with("tile/") && !rest.contains(".p/"));
        let key = format!("go-sumdb:{}:{rest}", self.name);
        if immutable && let Some(hit) = memo.get::<Bytes>(&key) {
            return Ok((StatusCode::OK, Bytes::clone(&hit)));
        }
        let url = self
            .root
            .join(rest)
            .map_err(|e| Error::BadRequest(format!("checksum database path {rest:?}: {e}")))?;
        let resp = self.client.get(url, HeaderMap::new()).await?;
        let status = resp.status();
        let body = read_limited(resp, MAX_ANSWER, "checksum database answer").await?;
        if status == StatusCode::OK && immutable {
            memo.insert(key, Arc::new(body.clone()), body.len());
        }
        Ok((status, body))
    }

    /// The hashes the database published for `m@v`; `None` when it has none (`404`/`410`).
    ///
    /// # Errors
    /// [`Error::Upstream`] when the database fails or answers something that is not a
    /// lookup of `m@v`.
    pub(crate) async fn sums(
        &self,
        memo: &MemoCache,
        m: &ModulePath,
        v: &Version,
    ) -> Result<Option<Sums>> {
        let rest = format!("lookup/{}@{}", m.escaped(), escape(v.as_str()));
        let (status, body) = self.get(memo, &rest).await?;
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(Error::Upstream(format!(
                "the checksum database answered {status} for {m}@{v}"
            )));
        }
        if let Some(key) = &self.key {
            self.verify(memo, key, &body).await.map_err(|why| {
                Error::Upstream(format!(
                    "the checksum database's answer for {m}@{v} failed verification: {why}"
                ))
            })?;
        }
        parse_lookup(&body, m.as_str(), v.as_str())
            .map(Some)
            .ok_or_else(|| {
                Error::Upstream(format!(
                    "the checksum database's answer for {m}@{v} holds no go.sum lines for it"
                ))
            })
    }

    /// Checks a lookup answer: its tree note signed by `key`, its record leaf `id` of that
    /// tree, and that tree consistent with the largest verified before (both proved from
    /// the database's tiles).
    async fn verify(
        &self,
        memo: &MemoCache,
        key: &VerifierKey,
        body: &[u8],
    ) -> std::result::Result<(), String> {
        let record = tlog::parse_record(body).ok_or("it is not a record and a tree note")?;
        let tree = tlog::verify_tree(record.note, key)?;
        let proof = Inclusion::new(record.id, tree)?;
        let mut tiles = HashMap::new();
        self.read_tiles(memo, &mut tiles, proof.tiles()).await?;
        proof.check(record.text.as_bytes(), &tiles)?;
        // The tree must agree with the largest one seen so far (compared again if that
        // changed meanwhile), and replaces it when larger. The tiles read for the inclusion
        // proof are mostly the ones the consistency proof needs: only the others are read.
        let mut proved = None;
        loop {
            let known = {
                let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
                match *latest {
                    Some(known) if known != tree && Some(known) != proved => known,
                    _ => {
                        if latest.is_none_or(|l| l.size < tree.size) {
                            *latest = Some(tree);
                        }
                        return Ok(());
                    }
                }
            };
            let proof = Consistency::new(known, tree);
            self.read_tiles(memo, &mut tiles, proof.tiles()).await?;
            proof.check(&tiles)?;
            proved = Some(known);
        }
    }

    /// Reads the tiles of `wanted` that `read` does not hold yet from the database
    /// (complete ones from the memory cache when there).
    async fn read_tiles(
        &self,
        memo: &MemoCache,
        read: &mut HashMap<Tile, Vec<u8>>,
        wanted: Vec<Tile>,
    ) -> std::result::Result<(), String> {
        for tile in wanted {
            if read.contains_key(&tile) {
                continue;
            }
            let path = tile.path();
            let (status, data) = self
                .get(memo, &path)
                .await
                .map_err(|e| format!("reading {path}: {e}"))?;
            if status != StatusCode::OK {
                return Err(format!("{path} answered {status}"));
            }
            read.insert(tile, data.to_vec());
        }
        Ok(())
    }
}

/// The `go.sum` lines of `module@version` in a lookup answer (the record: an id line, then
/// `module version h1:...` and `module version/go.mod h1:...`, then a blank line and the
/// signed tree).
pub(crate) fn parse_lookup(body: &[u8], module: &str, version: &str) -> Option<Sums> {
    let record = tlog::parse_record(body)?;
    let mut zip = None;
    let mut go_mod = None;
    for line in record.text.lines() {
        let mut fields = line.split(' ');
        let (Some(m), Some(v), Some(h), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if m != module || !h.starts_with("h1:") {
            continue;
        }
        if v == version {
            zip = Some(h.to_owned());
        } else if v.strip_suffix("/go.mod") == Some(version) {
            go_mod = Some(h.to_owned());
        }
    }
    Some(Sums {
        zip: zip?,
        go_mod: go_mod?,
    })
}

/// Whether glob `pattern` matches a prefix of `path` of as many elements as it has
/// (`GONOSUMDB` matching: `*` is any run of characters but `/`, `?` one of them).
pub(crate) fn matches_prefix(pattern: &str, path: &str) -> bool {
    let n = pattern.split('/').count();
    let elems: Vec<&str> = path.split('/').collect();
    if elems.len() < n {
        return false;
    }
    pattern
        .split('/')
        .zip(&elems[..n])
        .all(|(p, e)| glob(p.as_bytes(), e.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_parsed() {
        let body = b"42\nexample.com/m v1.0.0 h1:zip=\nexample.com/m v1.0.0/go.mod h1:mod=\n\ngo.sum database tree\n43\nroot=\n\n\xe2\x80\x94 sum.example.org sig=\n";
        assert_eq!(
            parse_lookup(body, "example.com/m", "v1.0.0"),
            Some(Sums {
                zip: "h1:zip=".into(),
                go_mod: "h1:mod=".into()
            })
        );
        assert_eq!(parse_lookup(body, "example.com/other", "v1.0.0"), None);
        assert_eq!(parse_lookup(body, "example.com/m", "v1.0.1"), None);
        assert_eq!(parse_lookup(b"\xff", "example.com/m", "v1.0.0"), None);
    }

    #[test]
    fn skip_patterns_match_path_prefixes() {
        assert!(matches_prefix(
            "example.com/private",
            "example.com/private/lib"
        ));
        assert!(matches_prefix("*.corp.example", "git.corp.example/x/y"));
        assert!(matches_prefix(
            "example.com/*/internal",
            "example.com/a/internal/b"
        ));
        assert!(!matches_prefix(
            "example.com/private",
            "example.com/privatex"
        ));
        assert!(!matches_prefix(
            "example.com/private/lib",
            "example.com/private"
        ));
        assert!(!matches_prefix("*.corp.example", "corp.example/x"));
    }

    #[test]
    fn names_come_from_the_url() {
        let db = ChecksumDb::new("https://sum.example.org/", ["example.com/private"]).expect("db");
        assert_eq!(db.name(), "sum.example.org");
        assert!(db.skips("example.com/private/x"));
        let db = ChecksumDb::new("http://127.0.0.1:9/db/", Vec::<String>::new()).expect("db");
        assert_eq!(db.name(), "127.0.0.1:9/db");
        assert!(ChecksumDb::new("ftp://x", Vec::<String>::new()).is_err());
    }
}
