//! npm package names: parsing from URL segments, validation, URL forms.

use batlehub_core::{Error, Result};

/// The longest npm package name.
pub(crate) const MAX_NAME_LEN: usize = 214;

/// A validated npm package name, scoped (`@scope/name`) or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PackageName {
    full: String,
    slash: Option<usize>,
}

impl PackageName {
    /// Parses and validates a (decoded) name, applying the rules every npm name obeys.
    /// Names that only legacy packages may have (uppercase, `~'!()*`) are accepted here;
    /// [`PackageName::check_new`] refuses them for new packages.
    ///
    /// # Errors
    /// [`Error::BadRequest`] explaining which rule is broken.
    pub(crate) fn parse(name: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::BadRequest(format!(
                "invalid package name `{}`: {why}",
                name.escape_default()
            )))
        };
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > MAX_NAME_LEN {
            return bad("longer than 214 characters");
        }
        let (scope, base, slash) = if let Some(rest) = name.strip_prefix('@') {
            let Some((scope, base)) = rest.split_once('/') else {
                return bad("a scoped name needs the form @scope/name");
            };
            (Some(scope), base, Some(scope.len() + 1))
        } else {
            (None, name, None)
        };
        for (what, part) in scope.iter().map(|s| ("scope", *s)).chain([("name", base)]) {
            if part.is_empty() {
                return bad(&format!("empty {what}"));
            }
            if part.starts_with('.') || part.starts_with('_') {
                return bad(&format!("the {what} must not start with `.` or `_`"));
            }
            if let Some(c) = part.chars().find(|c| !is_url_safe(*c)) {
                return bad(&format!(
                    "the {what} contains `{}`, which is not URL-safe",
                    c.escape_default()
                ));
            }
        }
        Ok(Self {
            full: name.to_owned(),
            slash,
        })
    }

    /// The extra rules for names of new packages: lowercase, no `~'!()*`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] explaining the rule.
    pub(crate) fn check_new(&self) -> Result<()> {
        if self.full.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::BadRequest(format!(
                "invalid package name `{}`: new packages must be lowercase",
                self.full
            )));
        }
        if let Some(c) = self.full.chars().find(|c| "~'!()*".contains(*c)) {
            return Err(Error::BadRequest(format!(
                "invalid package name `{}`: new packages must not contain `{c}`",
                self.full
            )));
        }
        Ok(())
    }

    /// `@scope/name` or `name`.
    #[must_use]
    pub(crate) fn as_str(&self) -> &str {
        &self.full
    }

    /// The part after the scope: the tarball file name's prefix.
    #[must_use]
    pub(crate) fn basename(&self) -> &str {
        match self.slash {
            Some(i) => &self.full[i + 1..],
            None => &self.full,
        }
    }

    /// The name as one URL path segment (`@scope%2fname`), as npm requests packuments.
    #[must_use]
    pub(crate) fn escaped(&self) -> String {
        match self.slash {
            Some(i) => format!("{}%2f{}", &self.full[..i], &self.full[i + 1..]),
            None => self.full.clone(),
        }
    }

    /// The tarball file name for `version`.
    #[must_use]
    pub(crate) fn tarball_file(&self, version: &str) -> String {
        format!("{}-{version}.tgz", self.basename())
    }

    /// The version named by a tarball file name of this package, if it is one.
    #[must_use]
    pub(crate) fn version_of_file<'a>(&self, file: &'a str) -> Option<&'a str> {
        file.strip_prefix(self.basename())?
            .strip_prefix('-')?
            .strip_suffix(".tgz")
            .filter(|v| !v.is_empty())
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// Characters `encodeURIComponent` leaves alone: npm's test for URL-safe names.
fn is_url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c)
}

/// Validates a version string as npm requires (semver 2.0).
pub(crate) use batlehub_core::coords::check_semver as check_version;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = PackageName::parse("@acme/left-pad").expect("scoped");
        assert_eq!(n.basename(), "left-pad");
        assert_eq!(n.escaped(), "@acme%2fleft-pad");
        assert_eq!(
            n.version_of_file("left-pad-1.0.0-beta.1.tgz"),
            Some("1.0.0-beta.1")
        );
        assert_eq!(n.version_of_file("other-1.0.0.tgz"), None);
        for bad in [
            "",
            ".hidden",
            "_x",
            "a b",
            "@scope",
            "@/x",
            "a\\b",
            "../x",
            "a/b",
            &"x".repeat(215),
        ] {
            assert!(PackageName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            PackageName::parse("JSONStream")
                .expect("legacy")
                .check_new()
                .is_err()
        );
        assert!(
            PackageName::parse("ok-name")
                .expect("ok")
                .check_new()
                .is_ok()
        );
    }

    #[test]
    fn segments() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("../1").is_err());
        assert!(check_version("latest").is_err());
    }
}
