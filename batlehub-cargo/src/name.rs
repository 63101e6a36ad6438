//! Crate names: validation, the case- and `-`/`_`-insensitive key, index file paths.

use batlehub_core::{Error, Result};

/// The longest crate name accepted.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Names Windows reserves for devices: a crate with such a name cannot be unpacked there.
const RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// A validated crate name, as spelled by whoever sent it.
///
/// Two names that differ only in case or in `-` versus `_` are the same crate: they share a
/// [`CrateName::key`], under which the crate is stored, owned and checked by policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CrateName(String);

impl CrateName {
    /// Validates a (decoded) name: 1 to 64 ASCII alphanumeric, `-` or `_` characters.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the rule that is broken.
    pub(crate) fn parse(name: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::BadRequest(format!(
                "invalid crate name `{}`: {why}",
                name.escape_default()
            )))
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > MAX_NAME_LEN {
            return bad("longer than 64 characters");
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return bad(&format!(
                "`{}` is not allowed (only ASCII letters, digits, `-` and `_`)",
                c.escape_default()
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The extra rules for the name of a new crate: it starts with a letter and is not a
    /// name Windows reserves.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the rule.
    pub(crate) fn check_new(&self) -> Result<()> {
        if !self.0.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(Error::BadRequest(format!(
                "invalid crate name `{}`: the first character must be a letter",
                self.0
            )));
        }
        if RESERVED.contains(&self.0.to_ascii_lowercase().as_str()) {
            return Err(Error::BadRequest(format!(
                "invalid crate name `{}`: it is a reserved Windows file name",
                self.0
            )));
        }
        Ok(())
    }

    /// The storage and policy key: lowercase, `_` written as `-`.
    #[must_use]
    pub(crate) fn key(&self) -> String {
        self.0.to_ascii_lowercase().replace('_', "-")
    }

    /// The lowercase name: the file name of its index file.
    #[must_use]
    pub(crate) fn lower(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The index file path of this name (`1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd`), lowercase.
    #[must_use]
    pub(crate) fn index_path(&self) -> String {
        let lower = self.lower();
        format!("{}/{lower}", prefix(&lower))
    }
}

impl std::fmt::Display for CrateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The index directory of a name (`{prefix}` in a `dl` template), in the name's own case.
#[must_use]
///
/// Counted in characters, not bytes: crate names are ASCII, but an upstream's index line is
/// untrusted input and must not be able to make this panic.
pub(crate) fn prefix(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let part = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
    match chars.len() {
        0 => String::new(),
        1 => "1".into(),
        2 => "2".into(),
        3 => format!("3/{}", part(0..1)),
        _ => format!("{}/{}", part(0..2), part(2..4)),
    }
}

/// Validates a version as cargo requires (semver 2.0).
pub(crate) use batlehub_core::coords::check_semver as check_version;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths() {
        let n = CrateName::parse("Serde_JSON").expect("valid");
        assert_eq!(n.key(), "serde-json");
        assert_eq!(n.lower(), "serde_json");
        assert_eq!(n.index_path(), "se/rd/serde_json");
        assert_eq!(CrateName::parse("a").expect("a").index_path(), "1/a");
        assert_eq!(CrateName::parse("ab").expect("ab").index_path(), "2/ab");
        assert_eq!(
            CrateName::parse("Abc").expect("abc").index_path(),
            "3/a/abc"
        );
        assert_eq!(prefix("MyCrate"), "My/Cr");
        // Untrusted upstream names never panic, whatever their bytes.
        assert_eq!(prefix("ñandú"), "ña/nd");
        assert_eq!(prefix("éab"), "3/é");
        assert_eq!(prefix("xéyz"), "xé/yz");
        assert_eq!(
            CrateName::parse("foo-bar").expect("x").key(),
            CrateName::parse("FOO_bar").expect("y").key()
        );
    }

    #[test]
    fn bad_names() {
        for bad in [
            "",
            "../x",
            "a/b",
            "a\\b",
            "a.b",
            "a b",
            "caf\u{e9}",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(CrateName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CrateName::parse("1abc").expect("ok").check_new().is_err());
        assert!(CrateName::parse("Nul").expect("ok").check_new().is_err());
        assert!(CrateName::parse("ok_name").expect("ok").check_new().is_ok());
    }

    #[test]
    fn segments_and_versions() {
        assert!(check_version("1.0.0+build.1").is_ok());
        assert!(check_version("1.0").is_err());
        assert!(check_version("../1").is_err());
    }
}
