//! Gem names, versions and platforms, and the file names built from them
//! (`{name}-{version}[-{platform}].gem`).

use std::fmt;

/// The longest gem name accepted.
const MAX_NAME: usize = 128;

/// Why a name, version or platform is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Checks a gem name: ASCII letters, digits, `.`, `-` and `_`, with at least one letter, not
/// starting with `.` or `-` (so no `..`, no path, no option-looking name).
///
/// # Errors
/// [`Invalid`] with the reason.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    let bad = |why: &str| Err(Invalid(format!("invalid gem name {name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_NAME {
        return bad("empty or too long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return bad("only letters, digits, `.`, `-` and `_` are allowed");
    }
    if name.starts_with(['.', '-']) {
        return bad("it starts with `.` or `-`");
    }
    if !name.bytes().any(|b| b.is_ascii_alphabetic()) {
        return bad("it has no letter");
    }
    Ok(())
}

/// Checks a version as RubyGems normalizes it: dot-separated segments of ASCII letters and
/// digits (`1.2.3`, `2.0.0.rc1`, `1.0.pre.1`), starting with a digit; no `-`.
///
/// # Errors
/// [`Invalid`] with the reason.
pub fn check_version(version: &str) -> Result<(), Invalid> {
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .split('.')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid gem version {version:?} (dot-separated letters and digits, starting with a digit)"
        )))
    }
}

/// Whether a version is a pre-release (a segment holds a letter).
#[must_use]
pub fn is_prerelease(version: &str) -> bool {
    version.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Checks a platform (`ruby`, `java`, `x86_64-linux`, `universal-darwin-21`): one to three
/// `-`-separated parts of ASCII letters, digits, `_` and `.`.
///
/// # Errors
/// [`Invalid`] with the reason.
pub fn check_platform(platform: &str) -> Result<(), Invalid> {
    let parts: Vec<&str> = platform.split('-').collect();
    let ok = (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!("invalid gem platform {platform:?}")))
    }
}

/// Orders versions as `Gem::Version` does: segments (runs of digits or of letters)
/// compared in turn, numbers numerically, a letter segment before any number (so `1.0.a`
/// comes before `1.0`), missing segments as `0`.
#[must_use]
pub fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Seg<'a> {
        Str(&'a str),
        Num(u128),
    }
    fn segs(v: &str) -> Vec<Seg<'_>> {
        let mut out = Vec::new();
        for part in v.split('.') {
            let mut rest = part;
            while !rest.is_empty() {
                let digits = rest.starts_with(|c: char| c.is_ascii_digit());
                let end = rest
                    .find(|c: char| c.is_ascii_digit() != digits)
                    .unwrap_or(rest.len());
                let (seg, tail) = rest.split_at(end);
                out.push(if digits {
                    Seg::Num(seg.parse().unwrap_or(u128::MAX))
                } else {
                    Seg::Str(seg)
                });
                rest = tail;
            }
        }
        out
    }
    let (a, b) = (segs(a), segs(b));
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).unwrap_or(&Seg::Num(0));
        let y = b.get(i).unwrap_or(&Seg::Num(0));
        match x.cmp(y) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    std::cmp::Ordering::Equal
}

/// `name-version` or `name-version-platform` (no platform for `ruby`): what a `.gem` file and
/// a quick gemspec are named after.
#[must_use]
pub fn full_name(name: &str, version: &str, platform: &str) -> String {
    if platform.is_empty() || platform == "ruby" {
        format!("{name}-{version}")
    } else {
        format!("{name}-{version}-{platform}")
    }
}

/// The ways `full_name` (a file name without `.gem`) splits into name, version and platform:
/// at each `-` followed by a digit. Which one is meant only the index can say (names may
/// hold `-2`); longest name first.
#[must_use]
pub fn split_candidates(full_name: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    for (i, _) in full_name
        .match_indices('-')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let (name, rest) = (&full_name[..i], &full_name[i + 1..]);
        if !rest.starts_with(|c: char| c.is_ascii_digit()) || check_name(name).is_err() {
            continue;
        }
        let (version, platform) = match rest.split_once('-') {
            // A pure gem's file name has no platform part.
            Some((_, "ruby")) => continue,
            Some(split) => split,
            None => (rest, "ruby"),
        };
        if check_version(version).is_ok()
            && (platform == "ruby" || check_platform(platform).is_ok())
        {
            out.push((name, version, platform));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "rack",
            "net-http",
            "Foo_Bar.baz",
            "a1",
            "rails-html-sanitizer",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "..", ".hidden", "-x", "a/b", "a b", "a\0b", "123", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_and_platforms() {
        for good in ["1", "1.2.3", "2.0.0.rc1", "1.0.pre.1"] {
            assert!(check_version(good).is_ok(), "{good}");
        }
        for bad in ["", "v1", "1..2", "1.0-beta", "1.0/..", ".1"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
        assert!(is_prerelease("2.0.0.rc1") && !is_prerelease("2.0.0"));
        for good in [
            "ruby",
            "java",
            "x86_64-linux",
            "universal-darwin-21",
            "x64-mingw-ucrt",
        ] {
            assert!(check_platform(good).is_ok(), "{good}");
        }
        for bad in ["", "a-b-c-d", "../x", "x/y"] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordering() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0.0", Equal),
            ("1.0.a", "1.0", Less),
            ("1.10", "1.9", Greater),
            ("2.0.0.rc1", "2.0.0", Less),
            ("2.0.0.rc2", "2.0.0.rc10", Less),
            ("1.0.pre", "1.0.pre.1", Less),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(full_name("rack", "3.0.0", "ruby"), "rack-3.0.0");
        assert_eq!(
            full_name("nokogiri", "1.15.0", "x86_64-linux"),
            "nokogiri-1.15.0-x86_64-linux"
        );
        assert_eq!(
            split_candidates("nokogiri-1.15.0-x86_64-linux"),
            [("nokogiri", "1.15.0", "x86_64-linux")]
        );
        // A name holding `-2`: both splits are candidates, the longest name first.
        assert_eq!(
            split_candidates("foo-2-1.0.0"),
            [("foo-2", "1.0.0", "ruby"), ("foo", "2", "1.0.0")]
        );
    }
}
