//! Project names (PEP 503 normalization, PEP 508 validity) and distribution file names
//! (wheels, PEP 427; sdists, PEP 625).

use batlehub_core::{Error, Result};

use crate::version::Version;

/// The longest project name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// A valid project name, kept in its normalized form (PEP 503: lowercase, runs of `-_.`
/// become `-`). Packages are stored under this form, so `My_Pkg` and `my.pkg` are one
/// project.
///
/// # Examples
/// ```
/// use batlehub_pypi::name::ProjectName;
/// let n = ProjectName::parse("My_Cool.Pkg").expect("valid");
/// assert_eq!(n.as_str(), "my-cool-pkg");
/// assert!(ProjectName::parse("../x").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectName(String);

impl ProjectName {
    /// Validates a name as PEP 508 requires (ASCII letters and digits, with `-_.` inside) and
    /// normalizes it.
    ///
    /// # Errors
    /// [`Error::BadRequest`] naming the rule broken.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::BadRequest(format!(
                "invalid project name `{}`: {why}",
                raw.escape_default()
            )))
        };
        if raw.is_empty() {
            return bad("empty");
        }
        if raw.len() > MAX_NAME_LEN {
            return bad("too long");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return bad("only ASCII letters, digits, `-`, `_` and `.` are allowed");
        }
        let (first, last) = (raw.as_bytes()[0], raw.as_bytes()[raw.len() - 1]);
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return bad("it must start and end with a letter or digit");
        }
        Ok(Self(normalize(raw)))
    }

    /// The normalized name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as wheel and PEP 625 sdist file names spell it (`-` becomes `_`).
    #[must_use]
    pub fn file_prefix(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl std::fmt::Display for ProjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// PEP 503 normalization: lowercase, each run of `-`, `_` and `.` replaced by one `-`.
#[must_use]
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// What kind of distribution a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistKind {
    /// A wheel (`.whl`).
    Wheel,
    /// A source distribution (`.tar.gz`, and legacy `.zip`, `.tar.bz2`, ...).
    Sdist,
    /// Another legacy binary format (`.egg`, `.exe`, ...).
    Other,
}

impl DistKind {
    /// The `packagetype` of the JSON API.
    #[must_use]
    pub fn package_type(self) -> &'static str {
        match self {
            DistKind::Wheel => "bdist_wheel",
            DistKind::Sdist => "sdist",
            DistKind::Other => "bdist_egg",
        }
    }
}

/// The parts of a distribution file name this registry needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFilename {
    /// The distribution name as written in the file name.
    pub name: String,
    /// The version as written in the file name.
    pub version: String,
    /// The kind of file.
    pub kind: DistKind,
    /// The wheel's python tag (`py3`), or `source` for sdists.
    pub python_tag: String,
}

const SDIST_EXTENSIONS: &[&str] = &[".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"];

/// Splits a distribution file name of project `project` into name and version.
///
/// Wheels are `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`; sdists are
/// `{name}-{version}.tar.gz` where `{name}` normalizes to the project name (hyphens in legacy
/// sdist names are allowed, which is why the project is needed).
#[must_use]
pub fn parse_filename(filename: &str, project: &ProjectName) -> Option<DistFilename> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(parts.len() == 5 || parts.len() == 6) || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        return Some(DistFilename {
            name: parts[0].to_owned(),
            version: parts[1].to_owned(),
            kind: DistKind::Wheel,
            python_tag: parts[parts.len() - 3].to_owned(),
        });
    }
    if let Some(stem) = filename.strip_suffix(".egg") {
        let mut parts = stem.splitn(3, '-');
        let (name, version) = (parts.next()?, parts.next()?);
        let python = parts.next().unwrap_or("").split('-').next().unwrap_or("");
        return Some(DistFilename {
            name: name.to_owned(),
            version: version.to_owned(),
            kind: DistKind::Other,
            python_tag: python.to_owned(),
        });
    }
    let ext = SDIST_EXTENSIONS.iter().find(|e| filename.ends_with(*e))?;
    let stem = &filename[..filename.len() - ext.len()];
    stem.match_indices('-').find_map(|(i, _)| {
        let (name, version) = (&stem[..i], &stem[i + 1..]);
        (normalize(name) == project.as_str() && !version.is_empty()).then(|| DistFilename {
            name: name.to_owned(),
            version: version.to_owned(),
            kind: DistKind::Sdist,
            python_tag: "source".into(),
        })
    })
}

/// The release version a distribution file of `project` belongs to, normalized when it is
/// valid PEP 440.
#[must_use]
pub fn version_of(filename: &str, project: &ProjectName) -> Option<String> {
    let parsed = parse_filename(filename, project)?;
    if normalize(&parsed.name) != project.as_str() {
        return None;
    }
    Some(
        Version::parse(&parsed.version)
            .map(|v| v.normalized())
            .unwrap_or(parsed.version),
    )
}

/// Checks a distribution file name sent by a client: one path segment, not hidden.
///
/// # Errors
/// [`Error::BadRequest`] explaining the problem.
pub fn check_filename(filename: &str) -> Result<()> {
    batlehub_core::coords::check_segment("file name", filename)?;
    if filename.starts_with('.') || filename.contains(':') {
        return Err(Error::BadRequest(format!(
            "invalid file name `{}`",
            filename.escape_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProjectName {
        ProjectName::parse(s).expect("valid")
    }

    #[test]
    fn names() {
        assert_eq!(p("Foo__Bar-.baz").as_str(), "foo-bar-baz");
        assert_eq!(p("a").as_str(), "a");
        assert_eq!(p("zope.interface").file_prefix(), "zope_interface");
        for bad in [
            "",
            "../x",
            "a/b",
            "-a",
            "a-",
            "a b",
            "é",
            ".x",
            "x\\y",
            &"x".repeat(201),
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filenames() {
        let proj = p("my-pkg");
        let w = parse_filename("my_pkg-1.0-py3-none-any.whl", &proj).expect("wheel");
        assert_eq!(
            (w.name.as_str(), w.version.as_str(), w.kind),
            ("my_pkg", "1.0", DistKind::Wheel)
        );
        assert_eq!(w.python_tag, "py3");
        let w = parse_filename("my_pkg-1.0-1build-cp311-cp311-linux_x86_64.whl", &proj)
            .expect("wheel with build tag");
        assert_eq!(w.python_tag, "cp311");
        assert!(parse_filename("my_pkg-1.0.whl", &proj).is_none());
        let s = parse_filename("my-pkg-1.0.post1.tar.gz", &proj).expect("legacy sdist");
        assert_eq!(
            (s.name.as_str(), s.version.as_str()),
            ("my-pkg", "1.0.post1")
        );
        let s = parse_filename("my_pkg-2.0.zip", &proj).expect("zip sdist");
        assert_eq!(s.kind, DistKind::Sdist);
        assert!(parse_filename("other-1.0.tar.gz", &proj).is_none());
        assert_eq!(
            version_of("My_Pkg-1.0RC1-py3-none-any.whl", &proj).as_deref(),
            Some("1.0rc1")
        );
        assert_eq!(version_of("other-1.0-py3-none-any.whl", &proj), None);
        assert!(check_filename("../x.whl").is_err());
        assert!(check_filename(".hidden.whl").is_err());
        assert!(check_filename("a-1.0.tar.gz").is_ok());
    }
}
