//! A Go checksum database for tests: records of `go.sum` lines in a transparency log built
//! by brute force (every level of the tree kept), its tree note signed with a fixed Ed25519
//! key, and the database's HTTP answers (`lookup/`, `tile/`, `latest`) served to wiremock.
//!
//! It is the oracle the proxy's verification is tested against, and the go command checks
//! it too in the end-to-end tests: what both accept is built the way the protocol says.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest as _, Sha256};
use wiremock::{Request, Respond, ResponseTemplate};

type Hash = [u8; 32];

/// A checksum database holding a fixed set of records.
#[derive(Debug, Clone)]
pub struct FakeSumdb {
    name: String,
    signing: SigningKey,
    key_hash: u32,
    records: Vec<String>,
    /// `module@version` (case-encoded, as lookups ask for it) -> record id.
    ids: HashMap<String, usize>,
    /// Every level of complete subtree hashes, leaves first.
    levels: Vec<Vec<Hash>>,
    root: Hash,
}

/// A module version the database vouches for: `(module, version, zip h1, go.mod h1)`.
pub type SumdbEntry<'a> = (&'a str, &'a str, &'a str, &'a str);

impl FakeSumdb {
    /// A database named `name` (signing with key seed `seed`) holding `filler` records of
    /// other modules, then `entries`, then a few more other records.
    #[must_use]
    pub fn new(name: &str, seed: u8, filler: usize, entries: &[SumdbEntry<'_>]) -> Self {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let digest = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update(b"\n")
            .chain_update(public_key(&signing))
            .finalize();
        let mut db = Self {
            name: name.to_owned(),
            key_hash: u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]),
            signing,
            records: (0..filler).map(other).collect(),
            ids: HashMap::new(),
            levels: Vec::new(),
            root: [0; 32],
        };
        db.append(entries);
        db
    }

    /// The same database later: `entries` and a few more other records appended to the
    /// same log (so its tree holds this one's as a prefix).
    #[must_use]
    pub fn extended(&self, entries: &[SumdbEntry<'_>]) -> Self {
        let mut db = self.clone();
        db.append(entries);
        db
    }

    fn append(&mut self, entries: &[SumdbEntry<'_>]) {
        for (module, version, zip, go_mod) in entries {
            self.ids.insert(
                format!("{}@{}", escape(module), escape(version)),
                self.records.len(),
            );
            self.records.push(format!(
                "{module} {version} {zip}\n{module} {version}/go.mod {go_mod}\n"
            ));
        }
        let n = self.records.len();
        self.records.extend((n..n + 3).map(other));

        let leaves: Vec<Hash> = self.records.iter().map(|r| leaf(r.as_bytes())).collect();
        self.root = root_of(&leaves);
        self.levels = vec![leaves];
        while self.levels.last().unwrap().len() > 1 {
            let next = self
                .levels
                .last()
                .unwrap()
                .chunks_exact(2)
                .map(|p| node(&p[0], &p[1]))
                .collect();
            self.levels.push(next);
        }
    }

    /// Its verifier key, as `GOSUMDB` and `checksum_db_key` take it.
    #[must_use]
    pub fn key(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_hash,
            STANDARD.encode(public_key(&self.signing))
        )
    }

    /// The number of records.
    #[must_use]
    pub fn size(&self) -> usize {
        self.records.len()
    }

    /// The text of record `id` (its `go.sum` lines).
    #[must_use]
    pub fn record(&self, id: usize) -> &str {
        &self.records[id]
    }

    /// The signed tree note.
    #[must_use]
    pub fn tree_note(&self) -> String {
        let text = format!(
            "go.sum database tree\n{}\n{}\n",
            self.records.len(),
            STANDARD.encode(self.root)
        );
        let mut sig = self.key_hash.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.signing.sign(text.as_bytes()).to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.name, STANDARD.encode(sig))
    }

    /// The lookup answer of record `id`, its text replaced by `text` when given.
    #[must_use]
    pub fn lookup_of(&self, id: usize, text: Option<&str>) -> String {
        let text = text.unwrap_or(&self.records[id]);
        format!("{id}\n{text}\n{}", self.tree_note())
    }

    /// The answer to `path` (below the database's root): `lookup/{m}@{v}`, `tile/...`,
    /// `latest`.
    #[must_use]
    pub fn answer(&self, path: &str) -> Option<Vec<u8>> {
        if path == "latest" {
            return Some(self.tree_note().into_bytes());
        }
        if let Some(key) = path.strip_prefix("lookup/") {
            let id = *self.ids.get(key)?;
            return Some(self.lookup_of(id, None).into_bytes());
        }
        self.tile(path.strip_prefix("tile/8/")?)
    }

    /// A tile: `{level}/{index}` (digits in groups of three, `x` before all but the last)
    /// and `.p/{width}` when partial.
    fn tile(&self, rest: &str) -> Option<Vec<u8>> {
        let (rest, width) = match rest.split_once(".p/") {
            Some((rest, w)) => (rest, Some(w.parse::<usize>().ok()?)),
            None => (rest, None),
        };
        let (level, index) = rest.split_once('/')?;
        let level: usize = level.parse().ok()?;
        let index: usize = index
            .split('/')
            .map(|g| g.trim_start_matches('x'))
            .collect::<String>()
            .parse()
            .ok()?;
        let hashes = self.levels.get(level * 8)?;
        let start = index * 256;
        let available = hashes.len().checked_sub(start)?.min(256);
        let width = width.unwrap_or(256);
        if width == 0 || width > available {
            return None;
        }
        Some(hashes[start..start + width].concat())
    }
}

impl Respond for FakeSumdb {
    /// Serves the database at any prefix ending in `/`, e.g. `/db/`: the path after the
    /// first segment is the database path.
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().trim_start_matches('/');
        let rest = path.split_once('/').map_or("", |(_, rest)| rest);
        match self.answer(rest) {
            Some(body) => ResponseTemplate::new(200).set_body_bytes(body),
            None => ResponseTemplate::new(404).set_body_string("not found"),
        }
    }
}

/// Record `i` of the modules nobody asks about.
fn other(i: usize) -> String {
    format!(
        "example.net/filler{i} v1.0.{i} h1:{}\nexample.net/filler{i} v1.0.{i}/go.mod h1:{}\n",
        STANDARD.encode(Sha256::digest(format!("zip{i}"))),
        STANDARD.encode(Sha256::digest(format!("mod{i}")))
    )
}

fn public_key(signing: &SigningKey) -> Vec<u8> {
    let mut raw = vec![1];
    raw.extend_from_slice(signing.verifying_key().as_bytes());
    raw
}

/// `!x` for each upper-case `X`: a Go module path or version as it appears in URLs.
#[must_use]
pub fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['!', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn leaf(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0])
        .chain_update(data)
        .finalize()
        .into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// RFC 6962's tree hash of `leaves`, by its definition.
fn root_of(leaves: &[Hash]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let mut k = 1;
    while k * 2 < leaves.len() {
        k *= 2;
    }
    node(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
}
