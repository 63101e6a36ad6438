//! Validation of coordinates (names, versions, file names) shared by every protocol.
//!
//! Protocols apply their own naming rules first; these checks are the floor under all of
//! them and are applied again at the storage boundary.

use crate::error::{Error, Result};

/// The longest coordinate segment accepted anywhere.
pub const MAX_SEGMENT_LEN: usize = 256;

/// Checks one coordinate segment: not empty, not `.`/`..`, no `/`, `\`, NUL or control
/// characters, not longer than [`MAX_SEGMENT_LEN`].
///
/// # Errors
/// [`Error::BadRequest`] naming `what` and the problem.
pub fn check_segment(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::BadRequest(format!("{what} must not be empty")));
    }
    if value.len() > MAX_SEGMENT_LEN {
        return Err(Error::BadRequest(format!(
            "{what} is longer than {MAX_SEGMENT_LEN} bytes"
        )));
    }
    if value == "." || value == ".." {
        return Err(Error::BadRequest(format!("{what} must not be `.` or `..`")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '\\') || c.is_control())
    {
        return Err(Error::BadRequest(format!(
            "{what} contains a forbidden character ({})",
            c.escape_default()
        )));
    }
    Ok(())
}

/// Parses a version that must be semver 2.0 (npm, cargo), after [`check_segment`].
///
/// # Errors
/// [`Error::BadRequest`] quoting the version and what is wrong with it.
pub fn check_semver(version: &str) -> Result<semver::Version> {
    check_segment("version", version)?;
    semver::Version::parse(version).map_err(|e| {
        Error::BadRequest(format!(
            "invalid version `{}`: {e}",
            version.escape_default()
        ))
    })
}

/// Checks a path of segments joined by `/` (npm scope, Maven group, Go module path).
///
/// # Errors
/// [`Error::BadRequest`] when a segment fails [`check_segment`] or the path starts with `/`.
pub fn check_path(what: &str, value: &str) -> Result<()> {
    if value.starts_with('/') {
        return Err(Error::BadRequest(format!("{what} must not start with `/`")));
    }
    for seg in value.split('/') {
        check_segment(what, seg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_controls() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b", "a\nb"] {
            assert!(check_segment("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_segment("name", &"x".repeat(300)).is_err());
        assert!(check_segment("name", "left-pad").is_ok());
        assert!(check_path("group", "org/example").is_ok());
        assert!(check_path("group", "org/../x").is_err());
        assert!(check_path("group", "/org").is_err());
    }
}
