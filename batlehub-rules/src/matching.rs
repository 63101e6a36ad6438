//! Small matchers shared by the rules: globs, groups, version specs.

/// `*` matches any run of characters, `?` one character; everything else is literal.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

pub use batlehub_core::policy::group_matches;

/// Whether `version` matches `spec`: an exact version, or a semver range (`>=1.2, <2`,
/// `^1`, `~1.4`, `*`). Non-semver versions only match exactly.
#[must_use]
pub fn version_matches(spec: &str, version: &str) -> bool {
    VersionSpec::parse(spec).matches(version)
}

/// A version spec parsed once, for matching many versions (see [`version_matches`]).
#[derive(Debug, Clone)]
pub struct VersionSpec {
    text: String,
    exact: Option<semver::Version>,
    range: Option<semver::VersionReq>,
}

impl VersionSpec {
    /// Parses `spec`; a spec that is neither a version nor a range matches only itself.
    #[must_use]
    pub fn parse(spec: &str) -> Self {
        let text = spec.trim().to_owned();
        let exact = semver::Version::parse(&text).ok();
        let range = if exact.is_none() {
            semver::VersionReq::parse(&text).ok()
        } else {
            None
        };
        Self { text, exact, range }
    }

    /// The spec as written (trimmed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` matches.
    #[must_use]
    pub fn matches(&self, version: &str) -> bool {
        if self.text == version {
            return true;
        }
        if self.exact.is_none() && self.range.is_none() {
            return false;
        }
        let Ok(v) = semver::Version::parse(version) else {
            return false;
        };
        if let Some(exact) = &self.exact {
            return *exact == v;
        }
        self.range.as_ref().is_some_and(|req| {
            // semver's VersionReq skips pre-releases unless the range names one; a block of
            // `>=1.0.0` must still catch `1.5.0-beta`, so compare the release part too.
            req.matches(&v)
                || (!v.pre.is_empty()
                    && req.matches(&semver::Version::new(v.major, v.minor, v.patch)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("@acme/*", "@acme/widget"));
        assert!(glob_match("org/*-svc", "org/pay-svc"));
        assert!(!glob_match("org/*-svc", "org/pay"));
        assert!(glob_match("refs/heads/?ain", "refs/heads/main"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn groups() {
        assert!(group_matches("*:team-a", "oidc:team-a"));
        assert!(group_matches("*:team-a", "team-a"));
        assert!(group_matches("team-a", "static:team-a"));
        assert!(group_matches("team-a", "team-a"));
        assert!(!group_matches("team-a", "oidc:team-a"));
        assert!(group_matches("oidc:team-a", "oidc:team-a"));
        assert!(!group_matches("oidc:team-a", "k8s:team-a"));
    }

    #[test]
    fn versions() {
        assert!(version_matches("1.2.3", "1.2.3"));
        assert!(version_matches(">=1.0.0, <2.0.0", "1.9.9"));
        assert!(!version_matches(">=1.0.0, <2.0.0", "2.0.0"));
        assert!(version_matches(">=1.0.0", "1.5.0-beta.1"));
        assert!(version_matches("^1", "1.4.0"));
        assert!(!version_matches("1.2.3", "1.2.4"));
        assert!(version_matches("weird-version", "weird-version"));
        assert!(!version_matches(">=1", "weird-version"));
    }
}
