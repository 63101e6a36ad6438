//! Module paths and versions: the go command's validity rules, case escaping (`!x` for
//! upper case in URLs), and the major-version suffix rule that ties them together.

use std::fmt;

use batlehub_core::{Error, Result};

/// The longest module path accepted (the go command has no limit; names longer than this
/// are not real modules).
const MAX_PATH: usize = 1024;

/// A valid module path, as written in `go.mod` (not escaped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ModulePath(String);

impl ModulePath {
    /// Checks a module path the way the go command does: ASCII letters, digits and `-._~`
    /// in `/`-separated elements, none empty, `.`-only, starting or ending with `.`, or a
    /// Windows reserved name; a first element of lower case letters, digits, `-` and `.`
    /// holding a dot; and a valid major-version suffix (`/v2` and up, `gopkg.in/x.vN`).
    pub(crate) fn parse(path: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadRequest(format!("invalid module path {path:?}: {why}"));
        if path.is_empty() {
            return Err(bad("empty"));
        }
        if path.len() > MAX_PATH {
            return Err(bad("too long"));
        }
        if path.starts_with('-') {
            return Err(bad("leading dash"));
        }
        let mut elems = path.split('/');
        let first = elems.next().unwrap_or_default();
        if first.is_empty() {
            return Err(bad("leading slash"));
        }
        if !first.contains('.') {
            return Err(bad("missing dot in first path element"));
        }
        if !first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(bad(
                "the first path element holds only lower-case letters, digits, `.` and `-`",
            ));
        }
        for elem in path.split('/') {
            check_elem(elem).map_err(|why| bad(&why))?;
        }
        let m = Self(path.to_owned());
        m.major().map_err(|why| bad(&why))?;
        Ok(m)
    }

    /// Decodes a path as it appears in URLs (`!a` for `A`), then checks it.
    pub(crate) fn unescape(escaped: &str) -> Result<Self> {
        Self::parse(
            &unescape(escaped).ok_or_else(|| {
                Error::BadRequest(format!("invalid escaped module path {escaped:?}"))
            })?,
        )
    }

    /// The path as written in `go.mod`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as it appears in URLs: each upper-case letter as `!` and its lower case.
    pub(crate) fn escaped(&self) -> String {
        escape(&self.0)
    }

    /// The major-version suffix: `None` for none (`v0`/`v1` modules), `Some(n)` for `/vN`
    /// or `gopkg.in/x.vN`.
    pub(crate) fn major(&self) -> std::result::Result<Option<u64>, String> {
        let path = &self.0;
        if let Some(rest) = path.strip_prefix("gopkg.in/") {
            let rest = rest.strip_suffix("-unstable").unwrap_or(rest);
            let Some((_, n)) = rest.rsplit_once(".v") else {
                return Err("gopkg.in paths end in .vN".into());
            };
            return match parse_number(n) {
                Some(n) => Ok(Some(n)),
                None => Err("gopkg.in paths end in .vN".into()),
            };
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        let Some(n) = last.strip_prefix('v') else {
            return Ok(None);
        };
        if n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || !path.contains('/')
        {
            return Ok(None);
        }
        match parse_number(n) {
            Some(n) if n >= 2 => Ok(Some(n)),
            _ => Err(format!(
                "invalid major version suffix /{last}: a suffix is /v2 or higher"
            )),
        }
    }

    /// Whether `version` may be a version of this module (the major-version suffix rule).
    pub(crate) fn check_version(&self, version: &Version) -> Result<()> {
        let major = version.major();
        let fits = match self.major() {
            Ok(None) => major <= 1 || version.incompatible(),
            Ok(Some(n)) if self.0.starts_with("gopkg.in/") => {
                major == n || (n == 1 && major == 0 && version.is_pseudo())
            }
            Ok(Some(n)) => major == n && !version.incompatible(),
            Err(why) => return Err(Error::BadRequest(why)),
        };
        if fits {
            Ok(())
        } else {
            Err(Error::BadRequest(format!(
                "version {version} does not match the major version of module {self} (a v2+ module path ends in /vN; +incompatible marks v2+ versions of a module without go.mod)"
            )))
        }
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one element of a module path.
fn check_elem(elem: &str) -> std::result::Result<(), String> {
    if elem.is_empty() {
        return Err("empty path element".into());
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(format!("path element {elem:?} is only dots"));
    }
    if elem.starts_with('.') {
        return Err(format!("path element {elem:?} starts with a dot"));
    }
    if elem.ends_with('.') {
        return Err(format!("path element {elem:?} ends with a dot"));
    }
    if let Some(c) = elem
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
    {
        return Err(format!("invalid character {c:?} in path element {elem:?}"));
    }
    let stem = elem.split('.').next().unwrap_or_default();
    if is_reserved(stem) {
        return Err(format!("{elem:?} is a reserved file name on Windows"));
    }
    if let Some((_, digits)) = stem.rsplit_once('~')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "path element {elem:?} looks like a Windows short name"
        ));
    }
    Ok(())
}

/// Windows device names, which no file of a module may be named (before its first dot).
pub(crate) fn is_reserved(stem: &str) -> bool {
    const NAMES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    let upper = stem.to_ascii_uppercase();
    NAMES.contains(&upper.as_str())
        || ["COM", "LPT"].iter().any(|p| {
            upper
                .strip_prefix(p)
                .is_some_and(|d| d.len() == 1 && matches!(d.as_bytes()[0], b'1'..=b'9'))
        })
}

/// A decimal without leading zeros (`0` itself allowed).
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// `!x` for each upper-case `X`.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`escape`]: `None` for a bare upper-case letter, a `!` not followed by a
/// lower-case letter, or anything not ASCII.
pub(crate) fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if !c.is_ascii() || c.is_ascii_uppercase() {
            return None;
        }
        if bang {
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else {
            out.push(c);
        }
    }
    (!bang).then_some(out)
}

/// A canonical module version: `vMAJOR.MINOR.PATCH`, an optional pre-release, and no build
/// metadata but `+incompatible` (pseudo-versions are pre-releases).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Version(String);

impl Version {
    /// Checks that `v` is a canonical version (the go command's `module.CanonicalVersion`).
    pub(crate) fn parse(v: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::BadRequest(format!(
                "invalid version {v:?}: {why} (versions are canonical semver: v1.2.3, v1.2.3-pre, v2.0.0+incompatible)"
            ))
        };
        if v.len() > 128 {
            return Err(bad("too long"));
        }
        let Some(rest) = v.strip_prefix('v') else {
            return Err(bad("no leading v"));
        };
        let (rest, build) = match rest.split_once('+') {
            Some((r, "incompatible")) => (r, true),
            Some(_) => return Err(bad("build metadata other than +incompatible")),
            None => (rest, false),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.len() != 3 {
            return Err(bad("not MAJOR.MINOR.PATCH"));
        }
        if nums.iter().any(|n| parse_number(n).is_none()) {
            return Err(bad("a number is empty, not decimal or has a leading zero"));
        }
        if let Some(pre) = pre {
            for id in pre.split('.') {
                let ok = !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !(id.bytes().all(|b| b.is_ascii_digit())
                        && id.len() > 1
                        && id.starts_with('0'));
                if !ok {
                    return Err(bad("invalid pre-release"));
                }
            }
        }
        let _ = build;
        Ok(Self(v.to_owned()))
    }

    /// The version as stored in the index (and named by policy rules, blocks and the admin
    /// API): without the leading `v`, so that it is plain semver.
    pub(crate) fn stored(&self) -> &str {
        &self.0[1..]
    }

    /// The version from its stored form.
    pub(crate) fn from_stored(stored: &str) -> Result<Self> {
        Self::parse(&format!("v{stored}"))
    }

    /// The version as the go command writes it.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    fn major(&self) -> u64 {
        self.stored()
            .split('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn incompatible(&self) -> bool {
        self.0.ends_with("+incompatible")
    }

    /// Whether this is a pseudo-version (`v0.0.0-20191109021931-daa7c04131f5`, and the
    /// forms on a release or pre-release base).
    pub(crate) fn is_pseudo(&self) -> bool {
        let v = self.0.strip_suffix("+incompatible").unwrap_or(&self.0);
        let Some((_, pre)) = v.split_once('-') else {
            return false;
        };
        let Some((stamp, rev)) = pre.rsplit_once('-') else {
            return false;
        };
        let stamp = stamp.rsplit('.').next().unwrap_or(stamp);
        stamp.len() == 14
            && stamp.bytes().all(|b| b.is_ascii_digit())
            && !rev.is_empty()
            && rev.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// Whether this is a pre-release (pseudo-versions are).
    pub(crate) fn is_prerelease(&self) -> bool {
        self.0
            .strip_suffix("+incompatible")
            .unwrap_or(&self.0)
            .contains('-')
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        for good in [
            "example.com/m",
            "example.com/Org/Mod",
            "example.com/m/v2",
            "gopkg.in/yaml.v2",
            "gopkg.in/check.v1",
            "example.com/a_b~c/x.y",
            "my-host.example/x",
        ] {
            assert!(ModulePath::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/example.com/m",
            "example.com/m/",
            "example.com//m",
            "example.com/../m",
            "example.com/./m",
            "example.com/.hidden",
            "example.com/m.",
            "Example.com/m",
            "example/m",
            "-example.com/m",
            "example.com/m/v1",
            "example.com/m/v0",
            "example.com/m/v02",
            "example.com/a b",
            "example.com/a%2Fb",
            "example.com/a\0b",
            "example.com/con",
            "example.com/LPT1.txt",
            "example.com/abc~1",
            "gopkg.in/yaml",
            "example.com/ü",
        ] {
            assert!(ModulePath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let m = ModulePath::parse("example.com/Org/Mod").expect("valid");
        assert_eq!(m.escaped(), "example.com/!org/!mod");
        assert_eq!(
            ModulePath::unescape("example.com/!org/!mod").expect("valid"),
            m
        );
        for bad in [
            "example.com/Org",
            "example.com/!",
            "example.com/!1",
            "example.com/!!a",
        ] {
            assert!(ModulePath::unescape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for good in [
            "v1.2.3",
            "v0.0.0-20191109021931-daa7c04131f5",
            "v1.2.4-0.20191109021931-daa7c04131f5",
            "v2.0.0+incompatible",
            "v1.0.0-rc.1",
        ] {
            assert!(Version::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "1.0.0",
            "v1.0",
            "v1",
            "v01.0.0",
            "v1.0.0+meta",
            "v1.0.0-",
            "v1.0.0-01",
            "v1.0.0-a..b",
            "latest",
            "v1.0.0/x",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        let p = Version::parse("v0.0.0-20191109021931-daa7c04131f5").expect("valid");
        assert!(p.is_pseudo() && p.is_prerelease());
        assert!(!Version::parse("v1.0.0-rc.1").expect("valid").is_pseudo());
        assert_eq!(Version::parse("v1.2.3").expect("valid").stored(), "1.2.3");
    }

    #[test]
    fn major_version_suffixes() {
        let v = |s: &str| Version::parse(s).expect("valid");
        let m = |s: &str| ModulePath::parse(s).expect("valid");
        assert!(m("example.com/m").check_version(&v("v1.5.0")).is_ok());
        assert!(m("example.com/m").check_version(&v("v2.0.0")).is_err());
        assert!(
            m("example.com/m")
                .check_version(&v("v2.0.0+incompatible"))
                .is_ok()
        );
        assert!(m("example.com/m/v2").check_version(&v("v2.1.0")).is_ok());
        assert!(m("example.com/m/v2").check_version(&v("v3.0.0")).is_err());
        assert!(
            m("example.com/m/v2")
                .check_version(&v("v2.0.0+incompatible"))
                .is_err()
        );
        assert!(m("gopkg.in/yaml.v2").check_version(&v("v2.4.0")).is_ok());
        assert!(m("gopkg.in/yaml.v2").check_version(&v("v3.0.0")).is_err());
    }
}
