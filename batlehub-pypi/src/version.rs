//! PEP 440 versions: parsing, normalization and ordering.
//!
//! Enough of PEP 440 for a registry: pip and uv compare the versions they find in file names
//! with these rules, so the registry sorts and deduplicates releases the same way
//! (`1.0 == 1.0.0`, `1.0.dev0 < 1.0a1 < 1.0 < 1.0.post1`, `1.0 < 1.0+local`).

use std::cmp::Ordering;
use std::fmt;

/// A pre-release phase, in PEP 440 order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Phase {
    Alpha,
    Beta,
    Rc,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Alpha => "a",
            Phase::Beta => "b",
            Phase::Rc => "rc",
        }
    }
}

/// One segment of a local version label (`+ubuntu.1`): numbers sort above strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LocalSegment {
    Text(String),
    Number(u64),
}

/// A valid PEP 440 version.
///
/// Equality and ordering follow PEP 440, so `1.0` equals `1.0.0`; [`Version::normalized`]
/// is the canonical spelling (`1.0-RC1` becomes `1.0rc1`).
///
/// # Examples
/// ```
/// use batlehub_pypi::version::Version;
/// let v = Version::parse("1.0-RC1").expect("valid");
/// assert_eq!(v.normalized(), "1.0rc1");
/// assert!(v < Version::parse("1.0").expect("valid"));
/// assert_eq!(Version::parse("1.0").expect("valid"), Version::parse("1.0.0").expect("valid"));
/// ```
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(Phase, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Option<Vec<LocalSegment>>,
}

/// A cursor over the lowercased version string.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, word: &str) -> bool {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn eat_sep(&mut self) -> bool {
        matches!(self.peek(), Some(b'-' | b'_' | b'.')) && {
            self.i += 1;
            true
        }
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
}

impl Version {
    /// Parses a version string; `None` when it is not valid PEP 440.
    #[must_use]
    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.trim().to_ascii_lowercase();
        if lower.is_empty() || lower.len() > 256 {
            return None;
        }
        let mut c = Cursor {
            s: lower.as_bytes(),
            i: 0,
        };
        c.eat(b'v');
        let start = c.i;
        let mut epoch = 0;
        if let Some(n) = c.number() {
            if c.eat(b'!') {
                epoch = n;
            } else {
                c.i = start;
            }
        }
        let mut release = vec![c.number()?];
        loop {
            let save = c.i;
            if c.eat(b'.')
                && let Some(n) = c.number()
            {
                release.push(n);
                continue;
            }
            c.i = save;
            break;
        }
        let pre = {
            let save = c.i;
            c.eat_sep();
            let phase = if c.eat_str("alpha") || c.eat_str("a") {
                Some(Phase::Alpha)
            } else if c.eat_str("beta") || c.eat_str("b") {
                Some(Phase::Beta)
            } else if c.eat_str("preview") || c.eat_str("pre") || c.eat_str("rc") || c.eat_str("c")
            {
                Some(Phase::Rc)
            } else {
                None
            };
            match phase {
                Some(p) => {
                    let save_n = c.i;
                    c.eat_sep();
                    let n = c.number();
                    if n.is_none() {
                        c.i = save_n;
                    }
                    Some((p, n.unwrap_or(0)))
                }
                None => {
                    c.i = save;
                    None
                }
            }
        };
        let post = {
            let save = c.i;
            if c.eat(b'-')
                && let Some(n) = c.number()
            {
                Some(n)
            } else {
                c.i = save;
                c.eat_sep();
                if c.eat_str("post") || c.eat_str("rev") || c.eat_str("r") {
                    let save_n = c.i;
                    c.eat_sep();
                    let n = c.number();
                    if n.is_none() {
                        c.i = save_n;
                    }
                    Some(n.unwrap_or(0))
                } else {
                    c.i = save;
                    None
                }
            }
        };
        let dev = {
            let save = c.i;
            c.eat_sep();
            if c.eat_str("dev") {
                let save_n = c.i;
                c.eat_sep();
                let n = c.number();
                if n.is_none() {
                    c.i = save_n;
                }
                Some(n.unwrap_or(0))
            } else {
                c.i = save;
                None
            }
        };
        let local = if c.eat(b'+') {
            let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
            c.i = c.s.len();
            let mut segs = Vec::new();
            for seg in rest.split(['-', '_', '.']) {
                if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                segs.push(match seg.parse::<u64>() {
                    Ok(n) if seg.bytes().all(|b| b.is_ascii_digit()) => LocalSegment::Number(n),
                    _ => LocalSegment::Text(seg.to_owned()),
                });
            }
            Some(segs)
        } else {
            None
        };
        if c.i != c.s.len() {
            return None;
        }
        Some(Self {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The canonical spelling (PEP 440 "normalization").
    #[must_use]
    pub fn normalized(&self) -> String {
        self.to_string()
    }

    /// Whether this is a pre-release or a development release.
    #[must_use]
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    fn key(&self) -> impl Ord + '_ {
        let mut release: &[u64] = &self.release;
        while let [rest @ .., 0] = release {
            release = rest;
        }
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (0, 0),
            (None, _, _) => (4, 0),
            (Some((Phase::Alpha, n)), _, _) => (1, n),
            (Some((Phase::Beta, n)), _, _) => (2, n),
            (Some((Phase::Rc, n)), _, _) => (3, n),
        };
        let post = self.post.map_or((0, 0), |n| (1, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (self.epoch, release, pre, post, dev, self.local.as_ref())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&release.join("."))?;
        if let Some((phase, n)) = self.pre {
            write!(f, "{}{n}", phase.as_str())?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if let Some(local) = &self.local {
            let segs: Vec<String> = local
                .iter()
                .map(|s| match s {
                    LocalSegment::Text(t) => t.clone(),
                    LocalSegment::Number(n) => n.to_string(),
                })
                .collect();
            write!(f, "+{}", segs.join("."))?;
        }
        Ok(())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Orders version strings: valid PEP 440 versions by PEP 440, after every invalid (legacy)
/// one, which sort by their text.
#[must_use]
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// Whether two version strings name the same release (PEP 440 equality, else equal text).
#[must_use]
pub fn same_release(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn normalizes() {
        for (raw, norm) in [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            ("1.0-RC1", "1.0rc1"),
            ("1.0.alpha.2", "1.0a2"),
            ("1.0c1", "1.0rc1"),
            ("1.0-preview-3", "1.0rc3"),
            ("1.0b", "1.0b0"),
            ("1.0-1", "1.0.post1"),
            ("1.0.rev2", "1.0.post2"),
            ("1.0-r", "1.0.post0"),
            ("1.0.DEV", "1.0.dev0"),
            ("1!2.0_post3.dev4", "1!2.0.post3.dev4"),
            ("1.0+Ubuntu-1", "1.0+ubuntu.1"),
            (" 2.1.0 ", "2.1.0"),
        ] {
            assert_eq!(v(raw).normalized(), norm, "{raw}");
        }
        for bad in [
            "", "x", "1.", "1..0", "1.0+", "1.0+a..b", "1.0 beta", "../1", "1.0/x",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn orders_like_pep_440() {
        let ordered = [
            "0.9",
            "1.0.dev0",
            "1.0a1.dev1",
            "1.0a1",
            "1.0b2",
            "1.0rc1",
            "1.0",
            "1.0+abc",
            "1.0+5",
            "1.0.post1.dev0",
            "1.0.post1",
            "1.1",
            "2.0",
            "1!0.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0-RC1"), v("1.0rc1"));
        assert!(v("1.0rc1").is_prerelease());
        assert!(!v("1.0.post1").is_prerelease());
        assert_eq!(compare("legacy-thing", "0.1"), Ordering::Less);
        assert!(same_release("1.0", "1.0.0"));
    }
}
