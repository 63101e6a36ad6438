//! The checksum database's proofs: the signed tree note, the inclusion of a lookup's
//! record in that tree, and the consistency of two signed trees, read from the database's
//! tiles.
//!
//! A lookup answer is a record (`id`, the `go.sum` lines, a blank line) and a note signing
//! the tree it belongs to (`go.sum database tree`, the tree size, its root hash). The note's
//! Ed25519 signature is checked against the database's verifier key
//! (`name+hash+base64`, as `GOSUMDB` takes it), and the record's hash is proved to be leaf
//! `id` of the signed tree: the hashes of the subtrees beside its path to the root are read
//! from the database's tiles (height 8, `tile/8/{level}/{index}[.p/{width}]`) and the root
//! recomputed. The tree follows RFC 6962 (leaf `SHA-256(0x00 || record)`, node
//! `SHA-256(0x01 || left || right)`). Two signed trees agree when the smaller one's root is
//! recomputed from the larger one's tiles, beside the larger one's own root: the database
//! did not fork between them. All of this is pure: the caller fetches the tiles
//! [`Inclusion::tiles`] and [`Consistency::tiles`] name.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// A hash of the tree.
pub(crate) type Hash = [u8; 32];

/// Tile height: a tile holds 256 hashes of one level.
const HEIGHT: u32 = 8;
const TILE_WIDTH: u64 = 1 << HEIGHT;

/// The key a checksum database signs its tree with (`name+hash+base64(0x01 || key)`).
#[derive(Debug, Clone)]
pub(crate) struct VerifierKey {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses a verifier key as `GOSUMDB` takes it.
    ///
    /// # Errors
    /// When it is not `name+hash+base64`, the algorithm is not Ed25519, or the hash does not
    /// match the name and key.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("checksum_db_key `{text}`: {why}");
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+hash+key"));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(bad("the name is empty or holds spaces or +"));
        }
        let hash = (hash.len() == 8)
            .then(|| u32::from_str_radix(hash, 16).ok())
            .flatten()
            .ok_or_else(|| bad("the hash is not 8 hex digits"))?;
        let raw = STANDARD
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        let (Some(&1), Ok(bytes)) = (
            raw.first(),
            <[u8; 32]>::try_from(raw.get(1..).unwrap_or(&[])),
        ) else {
            return Err(bad("not an Ed25519 key (algorithm 1, 32 bytes)"));
        };
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 key"))?;
        if key_hash(name, &raw) != hash {
            return Err(bad("the hash does not match the name and key"));
        }
        Ok(Self {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// The database's name, as the go command and `/sumdb/{name}/` give it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The first four bytes of `SHA-256(name "\n" key)`, big-endian.
fn key_hash(name: &str, key: &[u8]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update(key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A tree the database signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tree {
    pub(crate) size: u64,
    pub(crate) hash: Hash,
}

/// A lookup answer, split: the record's id and text, and the signed tree note after it.
pub(crate) struct Record<'a> {
    pub(crate) id: u64,
    /// The `go.sum` lines, each ending in `\n`.
    pub(crate) text: &'a str,
    pub(crate) note: &'a str,
}

/// Splits a lookup answer (`id\n`, the record text, a blank line, the note).
pub(crate) fn parse_record(body: &[u8]) -> Option<Record<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    let (id, rest) = text.split_once('\n')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let end = rest.find("\n\n")?;
    Some(Record {
        id: id.parse().ok()?,
        text: &rest[..=end],
        note: &rest[end + 2..],
    })
}

/// Checks `note` is signed by `key` and reads the tree it names.
pub(crate) fn verify_tree(note: &str, key: &VerifierKey) -> Result<Tree, String> {
    let split = note
        .rfind("\n\n")
        .ok_or("the tree note has no signatures")?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let signed = signatures.lines().any(|line| {
        let Some((name, sig)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.split_once(' '))
        else {
            return false;
        };
        let Ok(sig) = STANDARD.decode(sig) else {
            return false;
        };
        name == key.name
            && sig.len() == 4 + 64
            && u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]) == key.hash
            && Signature::from_slice(&sig[4..])
                .is_ok_and(|s| key.key.verify_strict(text.as_bytes(), &s).is_ok())
    });
    if !signed {
        return Err(format!("the tree note is not signed by {}", key.name));
    }
    let mut lines = text.lines();
    let (Some("go.sum database tree"), Some(size), Some(hash)) =
        (lines.next(), lines.next(), lines.next())
    else {
        return Err("the signed note is not a go.sum database tree".into());
    };
    let size = size
        .parse()
        .map_err(|_| format!("tree size {size:?} is not a number"))?;
    let hash = STANDARD
        .decode(hash)
        .ok()
        .and_then(|h| Hash::try_from(h).ok())
        .ok_or("the tree hash is not 32 bytes of base64")?;
    Ok(Tree { size, hash })
}

/// The hash of a record, as a leaf.
pub(crate) fn record_hash(text: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0])
        .chain_update(text)
        .finalize()
        .into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The tile at `level`, `index`, holding `width` hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tile {
    level: u32,
    index: u64,
    width: u64,
}

impl Tile {
    /// Its path under the database (`tile/8/0/x001/234.p/5`).
    pub(crate) fn path(&self) -> String {
        let mut n = self.index;
        let mut index = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            index = format!("x{:03}/{index}", n % 1000);
        }
        let partial = if self.width < TILE_WIDTH {
            format!(".p/{}", self.width)
        } else {
            String::new()
        };
        format!("tile/{HEIGHT}/{}/{index}{partial}", self.level)
    }

    /// The number of bytes it holds.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.width).unwrap_or(usize::MAX) * 32
    }
}

/// The proof that leaf `id` is in `tree`, read from the tree's tiles.
pub(crate) struct Inclusion {
    id: u64,
    tree: Tree,
}

impl Inclusion {
    /// The proof of leaf `id` in `tree`.
    ///
    /// # Errors
    /// When `id` is not a leaf of the tree.
    pub(crate) fn new(id: u64, tree: Tree) -> Result<Self, String> {
        if id >= tree.size {
            return Err(format!(
                "record {id} is not in the signed tree of {} records",
                tree.size
            ));
        }
        Ok(Self { id, tree })
    }

    /// The tiles the proof reads.
    pub(crate) fn tiles(&self) -> Vec<Tile> {
        tiles_for(&[(self.tree.size, self.id)], self.tree.size)
    }

    /// Checks that `record` (the record's text) is leaf `id` of the signed tree, given the
    /// tiles [`Self::tiles`] named.
    pub(crate) fn check(
        &self,
        record: &[u8],
        tiles: &HashMap<Tile, Vec<u8>>,
    ) -> Result<(), String> {
        let leaf = record_hash(record);
        let root = root_from(self.tree.size, self.id, &leaf, self.tree.size, tiles)?;
        if root == self.tree.hash {
            Ok(())
        } else {
            Err(format!(
                "record {} does not prove into the signed tree of {} records",
                self.id, self.tree.size
            ))
        }
    }
}

/// The proof that tree `old` is a prefix of tree `new` (the database did not fork between
/// them): both roots recomputed from the stored hashes in `new`'s tiles.
pub(crate) struct Consistency {
    old: Tree,
    new: Tree,
}

impl Consistency {
    /// The proof for two signed trees, in either order.
    pub(crate) fn new(a: Tree, b: Tree) -> Self {
        let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
        Self { old, new }
    }

    /// The tiles the proof reads (none when one tree holds the other trivially).
    pub(crate) fn tiles(&self) -> Vec<Tile> {
        if self.old.size == 0 || self.old.size == self.new.size {
            return Vec::new();
        }
        tiles_for(
            &[(self.old.size, NO_LEAF), (self.new.size, NO_LEAF)],
            self.new.size,
        )
    }

    /// Checks the two trees agree, given the tiles [`Self::tiles`] named.
    pub(crate) fn check(&self, tiles: &HashMap<Tile, Vec<u8>>) -> Result<(), String> {
        let (old, new) = (self.old, self.new);
        if old.size == 0 || old == new {
            return Ok(());
        }
        let forked = || {
            Err(format!(
                "the signed trees of {} and {} records disagree: the database forked",
                old.size, new.size
            ))
        };
        if old.size == new.size {
            return forked();
        }
        let none = [0; 32];
        if root_from(new.size, NO_LEAF, &none, new.size, tiles)? != new.hash
            || root_from(old.size, NO_LEAF, &none, new.size, tiles)? != old.hash
        {
            return forked();
        }
        Ok(())
    }
}

/// A leaf id that is in no tree: every subtree is read from the tiles.
const NO_LEAF: u64 = u64::MAX;

/// Where stored hash `(level, index)` of a tree of `size` leaves is made from: its tile,
/// and the range of hashes within it.
fn tile_of(size: u64, level: u32, index: u64) -> (Tile, std::ops::Range<usize>) {
    let tile_level = level / HEIGHT;
    let sub = level % HEIGHT;
    let first = index << sub;
    let tile_index = first / TILE_WIDTH;
    let stored_here = size >> (tile_level * HEIGHT);
    let width = stored_here
        .saturating_sub(tile_index * TILE_WIDTH)
        .min(TILE_WIDTH);
    let start = usize::try_from(first % TILE_WIDTH).unwrap_or(0);
    (
        Tile {
            level: tile_level,
            index: tile_index,
            width,
        },
        start..start + (1 << sub),
    )
}

/// The tiles of a tree of `tiles_size` leaves that the roots of `roots` (the first `size`
/// leaves, leaf `id` on the path) are computed from.
fn tiles_for(roots: &[(u64, u64)], tiles_size: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for &(size, id) in roots.iter().filter(|(size, _)| *size > 0) {
        walk(0, size, id, &[0; 32], &mut |level, index| {
            tiles.push(tile_of(tiles_size, level, index).0);
            Some([0; 32])
        });
    }
    tiles.sort_by_key(|t| (t.level, t.index, t.width));
    tiles.dedup();
    tiles
}

/// The root of the first `size` leaves, leaf `id` hashing to `leaf` and every other
/// complete subtree read from the tiles of a tree of `tiles_size` leaves.
fn root_from(
    size: u64,
    id: u64,
    leaf: &Hash,
    tiles_size: u64,
    tiles: &HashMap<Tile, Vec<u8>>,
) -> Result<Hash, String> {
    if size == 0 {
        return Err("an empty tree has no root".into());
    }
    let mut missing = None;
    let root = walk(0, size, id, leaf, &mut |level, index| {
        let (tile, range) = tile_of(tiles_size, level, index);
        let Some(data) = tiles
            .get(&tile)
            .filter(|d| d.len() == tile.len())
            .and_then(|d| d.get(range.start * 32..range.end * 32))
        else {
            missing = Some(tile.path());
            return None;
        };
        let mut hashes: Vec<Hash> = data
            .chunks_exact(32)
            .map(|c| Hash::try_from(c).unwrap_or([0; 32]))
            .collect();
        while hashes.len() > 1 {
            hashes = hashes
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
        }
        hashes.pop()
    });
    match (root, missing) {
        (Some(root), None) => Ok(root),
        (_, Some(path)) => Err(format!("tile {path} is missing or of the wrong size")),
        (None, None) => Err("no root".into()),
    }
}

/// The hash of leaves `lo..hi` with leaf `id`'s hash `leaf`: complete subtrees beside the
/// leaf's path come from `stored(level, index)`; the rest is hashed here (RFC 6962).
fn walk(
    lo: u64,
    hi: u64,
    id: u64,
    leaf: &Hash,
    stored: &mut dyn FnMut(u32, u64) -> Option<Hash>,
) -> Option<Hash> {
    let n = hi - lo;
    let on_path = (lo..hi).contains(&id);
    if on_path && n == 1 {
        return Some(*leaf);
    }
    if !on_path && n.is_power_of_two() && lo % n == 0 {
        let level = n.trailing_zeros();
        return stored(level, lo >> level);
    }
    // The largest power of two below n (n >= 2 here).
    let k = 1u64 << (63 - (n - 1).leading_zeros());
    let left = walk(lo, lo + k, id, leaf, stored)?;
    let right = walk(lo + k, hi, id, leaf, stored)?;
    Some(node_hash(&left, &right))
}

#[cfg(test)]
mod tests {
    use super::*;
    use batlehub_test::sumdb::{FakeSumdb, SumdbEntry};

    /// Proves record `id` of a database of `size` records (its text replaced when
    /// `tamper`), reading the tiles the database serves.
    fn prove(size: usize, id: usize, tamper: bool) -> Result<(), String> {
        let db = FakeSumdb::new("sum.example.org", 7, size - 3, &[]);
        assert_eq!(db.size(), size);
        let key = VerifierKey::parse(&db.key())?;
        let body = db.lookup_of(id, tamper.then_some("example.net/x v1.0.0 h1:x=\n"));
        let record = parse_record(body.as_bytes()).ok_or("record")?;
        let tree = verify_tree(record.note, &key)?;
        let proof = Inclusion::new(record.id, tree)?;
        let tiles = proof
            .tiles()
            .into_iter()
            .filter_map(|t| Some((t, db.answer(&t.path())?)))
            .collect();
        proof.check(record.text.as_bytes(), &tiles)
    }

    #[test]
    fn records_prove_into_trees_of_every_shape() {
        for size in [3, 4, 5, 8, 255, 256, 257, 300, 513] {
            for id in [0, 1, size / 2, size - 2, size - 1] {
                assert_eq!(prove(size, id, false), Ok(()), "size {size} id {id}");
                assert!(prove(size, id, true).is_err(), "size {size} id {id}");
            }
        }
        let tree = Tree {
            size: 8,
            hash: [0; 32],
        };
        assert!(Inclusion::new(8, tree).is_err());
    }

    #[test]
    fn proofs_read_tiles_above_the_first_level() {
        // 70,000 leaves: level-1 and level-2 tiles, partial ones among them.
        let proof = Inclusion::new(
            69_999,
            Tree {
                size: 70_000,
                hash: [0; 32],
            },
        )
        .expect("proof");
        let paths: Vec<String> = proof.tiles().iter().map(Tile::path).collect();
        for path in [
            "tile/8/2/000.p/1",
            "tile/8/1/001.p/17",
            "tile/8/0/273.p/112",
        ] {
            assert!(paths.contains(&path.to_owned()), "{paths:?}");
        }
        assert_eq!(prove(70_000, 69_999, false), Ok(()));
        assert_eq!(prove(70_000, 12_345, false), Ok(()));
        assert!(prove(70_000, 12_345, true).is_err());
    }

    #[test]
    fn a_missing_or_short_tile_fails() {
        let db = FakeSumdb::new("sum.example.org", 7, 297, &[]);
        let key = VerifierKey::parse(&db.key()).expect("key");
        let body = db.lookup_of(10, None);
        let record = parse_record(body.as_bytes()).expect("record");
        let proof = Inclusion::new(record.id, verify_tree(record.note, &key).expect("tree"))
            .expect("proof");
        let mut tiles: HashMap<Tile, Vec<u8>> = proof
            .tiles()
            .into_iter()
            .filter_map(|t| Some((t, db.answer(&t.path())?)))
            .collect();
        assert_eq!(proof.check(record.text.as_bytes(), &tiles), Ok(()));
        tiles.values_mut().for_each(|t| {
            t.pop();
        });
        assert!(proof.check(record.text.as_bytes(), &tiles).is_err());
        assert!(
            proof
                .check(record.text.as_bytes(), &HashMap::new())
                .is_err()
        );
    }

    /// Checks the trees of `a` and `b` agree, reading the larger one's tiles.
    fn agree(a: &FakeSumdb, b: &FakeSumdb) -> Result<(), String> {
        let key = VerifierKey::parse(&a.key())?;
        let (ta, tb) = (
            verify_tree(&a.tree_note(), &key)?,
            verify_tree(&b.tree_note(), &key)?,
        );
        let larger = if ta.size >= tb.size { a } else { b };
        let proof = Consistency::new(ta, tb);
        let tiles = proof
            .tiles()
            .into_iter()
            .filter_map(|t| Some((t, larger.answer(&t.path())?)))
            .collect();
        proof.check(&tiles)
    }

    #[test]
    fn a_grown_tree_agrees_and_a_fork_does_not() {
        let entry = [("example.com/m", "v1.0.0", "h1:zip=", "h1:mod=")];
        for filler in [0, 1, 5, 252, 253, 300] {
            let old = FakeSumdb::new("sum.example.org", 7, filler, &entry);
            for more in [0, 1, 4, 300] {
                let extra: Vec<(String, String)> = (0..more)
                    .map(|i| (format!("example.com/n{i}"), "v1.0.0".to_owned()))
                    .collect();
                let extra: Vec<SumdbEntry<'_>> = extra
                    .iter()
                    .map(|(m, v)| (m.as_str(), v.as_str(), "h1:z=", "h1:m="))
                    .collect();
                let new = old.extended(&extra);
                assert_eq!(agree(&old, &new), Ok(()), "{filler} + {more}");
                assert_eq!(agree(&new, &old), Ok(()), "{filler} + {more}");
            }
            // The same size with another record, or a longer log with another past.
            let fork = FakeSumdb::new("sum.example.org", 7, filler + 1, &[]);
            assert_eq!(fork.size(), old.size());
            assert!(agree(&old, &fork).is_err(), "{filler}");
            let longer_fork = fork.extended(&entry);
            assert!(agree(&old, &longer_fork).is_err(), "{filler}");
            assert!(agree(&longer_fork, &old).is_err(), "{filler}");
        }
    }

    #[test]
    fn tile_paths_group_digits() {
        let tile = |level, index, width| Tile {
            level,
            index,
            width,
        };
        assert_eq!(tile(0, 5, 256).path(), "tile/8/0/005");
        assert_eq!(tile(2, 1_234_067, 256).path(), "tile/8/2/x001/x234/067");
        assert_eq!(tile(0, 1000, 3).path(), "tile/8/0/x001/000.p/3");
    }

    #[test]
    fn tree_notes_are_verified() {
        let db = FakeSumdb::new("sum.example.org", 7, 39, &[]);
        let key = VerifierKey::parse(&db.key()).expect("key");
        assert_eq!(key.name(), "sum.example.org");
        let note = db.tree_note();
        let tree = verify_tree(&note, &key).expect("signed");
        assert_eq!(tree.size, 42);
        // Another size under the same signature; another key of the same name; no
        // signature at all.
        assert!(verify_tree(&note.replacen("\n42\n", "\n43\n", 1), &key).is_err());
        let other = FakeSumdb::new("sum.example.org", 8, 39, &[]);
        assert!(verify_tree(&other.tree_note(), &key).is_err());
        let unsigned = &note[..note.rfind("\n\n").expect("blank") + 1];
        assert!(verify_tree(unsigned, &key).is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        let key = FakeSumdb::new("sum.example.org", 7, 1, &[]).key();
        assert!(VerifierKey::parse(&key).is_ok());
        let (name, rest) = key.split_once('+').expect("key");
        let (hash, raw) = rest.split_once('+').expect("key");
        assert!(VerifierKey::parse(&format!("other.example.org+{rest}")).is_err());
        assert!(VerifierKey::parse(&format!("{name}+00000000+{raw}")).is_err());
        assert!(VerifierKey::parse(&format!("{name}+{hash}+AAAA")).is_err());
        assert!(VerifierKey::parse(&format!("{name}+{hash}+not base64!")).is_err());
        assert!(VerifierKey::parse(name).is_err());
    }

    #[test]
    fn records_are_split() {
        let body = b"7\na v1 h1:x=\na v1/go.mod h1:y=\n\ngo.sum database tree\n8\nAAAA\n\n\xe2\x80\x94 s sig\n";
        let r = parse_record(body).expect("record");
        assert_eq!(r.id, 7);
        assert_eq!(r.text, "a v1 h1:x=\na v1/go.mod h1:y=\n");
        assert!(r.note.starts_with("go.sum database tree\n"));
        assert!(parse_record(b"x\na\n\n").is_none());
        assert!(parse_record(b"7\nno blank line\n").is_none());
    }
}
