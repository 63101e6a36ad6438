//! The PyPI URL space, parsed into operations.

use batlehub_core::{Error, Result};

use batlehub_core::protocol::decode_segment;

/// One PyPI operation. Names are as sent (decoded, not yet normalized): handlers redirect
/// non-normalized spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /simple/`.
    Index { slash: bool },
    /// `GET /simple/{project}/`.
    Project { name: String, slash: bool },
    /// `GET /packages/{project}/{filename}` (and `{filename}.metadata`).
    File { project: String, filename: String },
    /// `GET /pypi/{project}/json`.
    JsonProject { name: String },
    /// `GET /pypi/{project}/{version}/json`.
    JsonVersion { name: String, version: String },
    /// `POST /legacy/` (also `POST /`).
    Upload,
}

/// Parses a request path relative to the mount point.
pub(crate) fn parse(path: &str) -> Result<Route> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let slash = trimmed.ends_with('/') || trimmed.is_empty();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segs: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if segs.iter().any(|s| s.is_empty()) {
        return Err(Error::BadRequest("empty path segment".into()));
    }
    let unknown = || Err(Error::NotFound(format!("no such endpoint: {path}")));
    match segs.as_slice() {
        [] | ["legacy"] => Ok(Route::Upload),
        ["simple"] => Ok(Route::Index { slash }),
        ["simple", name] => Ok(Route::Project {
            name: decode_segment("project name", name)?,
            slash,
        }),
        ["packages", project, filename] if !slash => Ok(Route::File {
            project: decode_segment("project name", project)?,
            filename: decode_segment("file name", filename)?,
        }),
        ["pypi", name, "json"] => Ok(Route::JsonProject {
            name: decode_segment("project name", name)?,
        }),
        ["pypi", name, version, "json"] => Ok(Route::JsonVersion {
            name: decode_segment("project name", name)?,
            version: decode_segment("version", version)?,
        }),
        _ => unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("/simple/").expect("ok"), Route::Index { slash: true });
        assert_eq!(parse("/simple").expect("ok"), Route::Index { slash: false });
        assert_eq!(
            parse("/simple/My_Pkg/").expect("ok"),
            Route::Project {
                name: "My_Pkg".into(),
                slash: true
            }
        );
        assert_eq!(
            parse("/packages/a/a-1.0%2Blocal.tar.gz").expect("ok"),
            Route::File {
                project: "a".into(),
                filename: "a-1.0+local.tar.gz".into()
            }
        );
        assert_eq!(parse("/legacy/").expect("ok"), Route::Upload);
        assert_eq!(parse("/").expect("ok"), Route::Upload);
        assert!(matches!(
            parse("/pypi/a/1.0/json").expect("ok"),
            Route::JsonVersion { .. }
        ));
        for p in [
            "/simple/..",
            "/simple/%2e%2e/",
            "/packages/a/..%2fx",
            "/packages/a/a%5cb",
            "//simple",
        ] {
            assert!(
                matches!(parse(p), Err(Error::BadRequest(_))),
                "{p}: {:?}",
                parse(p)
            );
        }
        assert!(matches!(parse("/nope"), Err(Error::NotFound(_))));
    }
}
