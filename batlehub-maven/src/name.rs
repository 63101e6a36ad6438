//! Maven coordinates as they appear in repository paths, validated at the edge.

use std::fmt;

use batlehub_core::coords::check_segment;
use batlehub_core::{Error, Result};

/// The longest group path accepted (bytes).
const MAX_GROUP_LEN: usize = 512;

/// `groupId:artifactId`, the index package name of a Maven artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coords {
    /// Dotted group id (`org.example`).
    pub(crate) group: String,
    /// Artifact id.
    pub(crate) artifact: String,
}

impl Coords {
    /// Builds coordinates from the group path segments and the artifact segment.
    pub(crate) fn from_segments(group: &[String], artifact: &str) -> Result<Self> {
        if group.is_empty() {
            return Err(Error::BadRequest("a Maven path needs a groupId".into()));
        }
        for g in group {
            check_segment("groupId segment", g)?;
            check_safe("groupId segment", g)?;
        }
        check_segment("artifactId", artifact)?;
        check_safe("artifactId", artifact)?;
        let group = group.join(".");
        if group.len() > MAX_GROUP_LEN {
            return Err(Error::BadRequest(format!(
                "groupId is longer than {MAX_GROUP_LEN} bytes"
            )));
        }
        Ok(Self {
            group,
            artifact: artifact.to_owned(),
        })
    }

    /// The index package name, `groupId:artifactId`.
    pub(crate) fn key(&self) -> String {
        format!("{}:{}", self.group, self.artifact)
    }

    /// The repository path of the artifact folder, `org/example/lib`.
    pub(crate) fn path(&self) -> String {
        format!("{}/{}", self.group.replace('.', "/"), self.artifact)
    }
}

impl fmt::Display for Coords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.group, self.artifact)
    }
}

/// Refuses characters Maven never uses in coordinates or file names (beyond what the
/// core refuses): spaces, quotes, `:` and friends.
pub(crate) fn check_safe(what: &str, value: &str) -> Result<()> {
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '~')))
    {
        return Err(Error::BadRequest(format!(
            "{what} `{}` contains a forbidden character ({})",
            value.escape_default(),
            c.escape_default()
        )));
    }
    if value.starts_with('.') {
        return Err(Error::BadRequest(format!(
            "{what} `{}` must not start with `.`",
            value.escape_default()
        )));
    }
    Ok(())
}

/// Validates a version segment.
pub(crate) fn check_version(version: &str) -> Result<()> {
    check_segment("version", version)?;
    check_safe("version", version)?;
    if version.len() > 128 {
        return Err(Error::BadRequest("version is longer than 128 bytes".into()));
    }
    Ok(())
}

/// Whether a version is a SNAPSHOT.
pub(crate) fn is_snapshot(version: &str) -> bool {
    version.ends_with("-SNAPSHOT")
}

/// A file name inside a version folder, split into Maven's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileName {
    /// For a SNAPSHOT build: `{timestamp}-{buildNumber}` (`20260102.030405-3`).
    pub(crate) build: Option<(String, u32)>,
    /// Classifier (`sources`), empty for the main artifact.
    pub(crate) classifier: String,
    /// Extension (`jar`, `pom`, `jar.asc`).
    pub(crate) extension: String,
}

impl FileName {
    /// The version string in the file name (`1.0` or `1.0-20260102.030405-3`).
    pub(crate) fn value(&self, version: &str) -> String {
        match &self.build {
            Some((ts, n)) => format!("{}-{ts}-{n}", base_version(version)),
            None => version.to_owned(),
        }
    }
}

/// The version without `-SNAPSHOT`.
pub(crate) fn base_version(version: &str) -> &str {
    version.strip_suffix("-SNAPSHOT").unwrap_or(version)
}

/// Splits `{artifact}-{version}[-classifier].{ext}` (SNAPSHOTs: the version part may be
/// `{base}-{yyyyMMdd.HHmmss}-{n}`); `None` when the file does not belong to this version.
pub(crate) fn parse_file(artifact: &str, version: &str, file: &str) -> Option<FileName> {
    let rest = file.strip_prefix(artifact)?.strip_prefix('-')?;
    let (build, rest) = if is_snapshot(version) {
        if let Some(r) = rest.strip_prefix(version) {
            (None, r)
        } else {
            let r = rest
                .strip_prefix(base_version(version))?
                .strip_prefix('-')?;
            let ts = r.get(..15)?;
            let ok = ts.len() == 15
                && ts.as_bytes()[8] == b'.'
                && ts
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 8 || b.is_ascii_digit());
            if !ok {
                return None;
            }
            let r = r.get(15..)?.strip_prefix('-')?;
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            // One spelling per build: `-03` would name build 3 a second time (found by the
            // fuzz target `file_names`).
            if digits == 0 || digits > 9 || (digits > 1 && r.starts_with('0')) {
                return None;
            }
            let n: u32 = r.get(..digits)?.parse().ok()?;
            (Some((ts.to_owned(), n)), r.get(digits..)?)
        }
    } else {
        (None, rest.strip_prefix(version)?)
    };
    let (classifier, extension) = if let Some(r) = rest.strip_prefix('-') {
        let (c, e) = r.split_once('.')?;
        (c.to_owned(), e.to_owned())
    } else {
        (String::new(), rest.strip_prefix('.')?.to_owned())
    };
    if extension.is_empty() || extension.ends_with('.') {
        return None;
    }
    if classifier.is_empty() && rest.starts_with('-') {
        return None;
    }
    Some(FileName {
        build,
        classifier,
        extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let f = parse_file("lib", "1.0", "lib-1.0.jar").expect("jar");
        assert_eq!((f.classifier.as_str(), f.extension.as_str()), ("", "jar"));
        let f = parse_file("lib", "1.0", "lib-1.0-sources.jar").expect("sources");
        assert_eq!(f.classifier, "sources");
        let f = parse_file("lib", "1.0", "lib-1.0.jar.asc").expect("asc");
        assert_eq!(f.extension, "jar.asc");
        assert!(parse_file("lib", "1.0", "other-1.0.jar").is_none());
        assert!(parse_file("lib", "1.0", "lib-1.1.jar").is_none());
        assert!(parse_file("lib", "1.0", "lib-1.0").is_none());
        let f = parse_file("lib", "1.0-SNAPSHOT", "lib-1.0-20260102.030405-3-tests.jar")
            .expect("snapshot");
        assert_eq!(f.build, Some(("20260102.030405".into(), 3)));
        assert_eq!(f.classifier, "tests");
        assert_eq!(f.value("1.0-SNAPSHOT"), "1.0-20260102.030405-3");
        let f = parse_file("lib", "1.0-SNAPSHOT", "lib-1.0-SNAPSHOT.pom").expect("plain");
        assert_eq!(f.build, None);
        assert!(parse_file("lib", "1.0-SNAPSHOT", "lib-1.0-2026.pom").is_none());
        // One spelling per build number.
        assert!(parse_file("lib", "1.0-SNAPSHOT", "lib-1.0-20260102.030405-03.jar").is_none());
        let f = parse_file("lib", "1.0-SNAPSHOT", "lib-1.0-20260102.030405-0.jar").expect("0");
        assert_eq!(f.build, Some(("20260102.030405".into(), 0)));
    }

    #[test]
    fn coordinates() {
        let c = Coords::from_segments(&["org".into(), "example".into()], "lib").expect("ok");
        assert_eq!(c.key(), "org.example:lib");
        assert_eq!(c.path(), "org/example/lib");
        assert!(Coords::from_segments(&["..".into()], "lib").is_err());
        assert!(Coords::from_segments(&["a b".into()], "lib").is_err());
        assert!(Coords::from_segments(&["org".into()], "a:b").is_err());
        assert!(check_version("1.0").is_ok());
        assert!(check_version("..").is_err());
    }
}
