//! The cargo registry URL space, parsed into operations.
//!
//! The sparse index lives under `/registry/` and the web API under `/api/v1/`, both relative
//! to where the service is mounted; `config.json` points cargo at both.

use batlehub_core::{Error, Result};

use batlehub_core::protocol::{decode_segment, query_param, segments};

use crate::name::{CrateName, prefix};

/// One cargo operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /registry/config.json`.
    Config,
    /// `GET /registry/{prefix}/{name}`.
    IndexFile { name: CrateName },
    /// `PUT /api/v1/crates/new`.
    Publish,
    /// `GET /api/v1/crates?q=&per_page=`.
    Search { q: String, per_page: u32 },
    /// `GET /api/v1/crates/{name}/{version}/download`.
    Download { name: CrateName, version: String },
    /// `DELETE /api/v1/crates/{name}/{version}/yank`.
    Yank { name: CrateName, version: String },
    /// `PUT /api/v1/crates/{name}/{version}/unyank`.
    Unyank { name: CrateName, version: String },
    /// `GET|PUT|DELETE /api/v1/crates/{name}/owners`.
    Owners { name: CrateName },
    /// `GET /me`: where `cargo login` sends people for a token.
    Me,
}

fn name_at(raw: &str) -> Result<CrateName> {
    CrateName::parse(&decode_segment("crate name", raw)?)
}

fn version_at(raw: &str) -> Result<String> {
    let v = decode_segment("version", raw)?;
    crate::name::check_version(&v)?;
    Ok(v)
}

/// Parses a request path (relative to the mount point) and query. The method is checked
/// by the dispatcher.
pub(crate) fn parse(path: &str, query: Option<&str>) -> Result<Route> {
    let segs = segments(path);
    if segs.iter().any(|s| s.is_empty()) {
        return Err(Error::BadRequest("empty path segment".into()));
    }
    let unknown = || Error::NotFound(format!("no cargo endpoint at `{path}`"));
    match segs.as_slice() {
        ["registry", "config.json"] => Ok(Route::Config),
        ["registry", dirs @ .., file] if (1..=2).contains(&dirs.len()) => {
            let name = name_at(file)?;
            let lower = name.lower();
            let mut wanted = Vec::with_capacity(2);
            for d in dirs {
                wanted.push(decode_segment("index directory", d)?);
            }
            // Index paths are lowercase; a path whose directories do not belong to the
            // name is not an index file.
            if wanted.join("/") != prefix(&lower) {
                return Err(Error::NotFound(format!(
                    "`{}` is not the index path of `{name}` (expected `{}`)",
                    path.trim_start_matches('/'),
                    name.index_path()
                )));
            }
            Ok(Route::IndexFile { name })
        }
        ["me"] => Ok(Route::Me),
        ["api", "v1", "crates"] => Ok(Route::Search {
            q: query_param(query, "q").unwrap_or_default(),
            per_page: query_param(query, "per_page")
                .and_then(|s| s.parse().ok())
                .unwrap_or(10)
                .clamp(1, 100),
        }),
        ["api", "v1", "crates", "new"] => Ok(Route::Publish),
        ["api", "v1", "crates", name, "owners"] => Ok(Route::Owners {
            name: name_at(name)?,
        }),
        ["api", "v1", "crates", name, version, action] => {
            let name = name_at(name)?;
            let version = version_at(version)?;
            match *action {
                "download" => Ok(Route::Download { name, version }),
                "yank" => Ok(Route::Yank { name, version }),
                "unyank" => Ok(Route::Unyank { name, version }),
                _ => Err(unknown()),
            }
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> CrateName {
        CrateName::parse(n).expect("name")
    }

    #[test]
    fn routes() {
        assert_eq!(
            parse("/registry/config.json", None).expect("ok"),
            Route::Config
        );
        for (p, n) in [
            ("/registry/1/a", "a"),
            ("/registry/2/ab", "ab"),
            ("/registry/3/f/foo", "foo"),
            ("/registry/se/rd/serde_json", "serde_json"),
            ("/registry/se/rd/Serde_Json", "Serde_Json"),
        ] {
            assert_eq!(
                parse(p, None).expect(p),
                Route::IndexFile { name: name(n) },
                "{p}"
            );
        }
        assert!(matches!(
            parse("/registry/xx/yy/serde", None),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            parse("/registry/3/a/foo", None),
            Err(Error::NotFound(_))
        ));
        assert_eq!(
            parse("/api/v1/crates/foo/1.0.0/download", None).expect("ok"),
            Route::Download {
                name: name("foo"),
                version: "1.0.0".into()
            }
        );
        assert!(matches!(
            parse("/api/v1/crates", Some("q=a+b&per_page=500")).expect("ok"),
            Route::Search { q, per_page: 100 } if q == "a b"
        ));
        assert_eq!(
            parse("/api/v1/crates/new", None).expect("ok"),
            Route::Publish
        );
        assert!(matches!(
            parse("/api/v1/crates/foo/owners", None).expect("ok"),
            Route::Owners { .. }
        ));
    }

    #[test]
    fn traversal_refused() {
        for p in [
            "/registry/3/a/..",
            "/registry/%2e%2e/x/abcd",
            "/api/v1/crates/..%2f..%2fetc/1.0.0/download",
            "/api/v1/crates/a%5cb/1.0.0/download",
            "/api/v1/crates/a%00/1.0.0/download",
            "/api/v1/crates/foo/..%2f1/download",
            "//registry/config.json",
            "/api/v1/crates/foo.bar/owners",
        ] {
            assert!(
                matches!(parse(p, None), Err(Error::BadRequest(_))),
                "{p}: {:?}",
                parse(p, None)
            );
        }
    }
}
