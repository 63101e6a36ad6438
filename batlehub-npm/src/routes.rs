//! The npm registry URL space, parsed into operations.

use batlehub_core::{Error, Result};
use http::Method;

use batlehub_core::protocol::{decode_path, decode_segment, query_param, segments};

use crate::name::PackageName;

/// One npm operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Ping,
    Whoami,
    Search { text: String, size: u32, from: u32 },
    DistTags { name: PackageName },
    DistTag { name: PackageName, tag: String },
    Package { name: PackageName },
    Version { name: PackageName, version: String },
    Tarball { name: PackageName, file: String },
    Revision { name: PackageName },
    TarballRevision { name: PackageName, file: String },
}

/// Splits the leading name off path segments: `@scope%2fname`, `@scope/name` or `name`.
fn take_name<'a>(segs: &'a [&'a str]) -> Result<(PackageName, &'a [&'a str])> {
    let first = segs
        .first()
        .ok_or_else(|| Error::NotFound("no package named".into()))?;
    let decoded = decode_path("package name", first)?;
    if decoded.starts_with('@') && !decoded.contains('/') {
        let second = segs
            .get(1)
            .ok_or_else(|| Error::BadRequest(format!("invalid package name `{decoded}`")))?;
        let base = decode_segment("package name", second)?;
        if base.contains('/') {
            return Err(Error::BadRequest("invalid package name".into()));
        }
        Ok((
            PackageName::parse(&format!("{decoded}/{base}"))?,
            &segs[2..],
        ))
    } else {
        Ok((PackageName::parse(&decoded)?, &segs[1..]))
    }
}

/// Parses a request path (relative to the mount point) and query.
pub(crate) fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Route> {
    let segs = segments(path);
    if segs.iter().any(|s| s.is_empty()) {
        return Err(Error::BadRequest("empty path segment".into()));
    }
    match segs.as_slice() {
        [] => Err(Error::NotFound("no package named".into())),
        ["-", "ping"] => Ok(Route::Ping),
        ["-", "whoami"] => Ok(Route::Whoami),
        ["-", "v1", "search"] => Ok(Route::Search {
            text: query_param(query, "text").unwrap_or_default(),
            size: query_param(query, "size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(20)
                .min(250),
            from: query_param(query, "from")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }),
        ["-", "package", rest @ ..] => {
            let (name, rest) = take_name(rest)?;
            match rest {
                ["dist-tags"] => Ok(Route::DistTags { name }),
                ["dist-tags", tag] => {
                    let tag = decode_segment("tag", tag)?;
                    Ok(Route::DistTag { name, tag })
                }
                _ => Err(Error::NotFound("unknown endpoint".into())),
            }
        }
        ["-", ..] => Err(Error::NotFound(format!("unknown endpoint {method} {path}"))),
        _ => {
            let (name, rest) = take_name(&segs)?;
            match rest {
                [] => Ok(Route::Package { name }),
                ["-rev", _rev] => Ok(Route::Revision { name }),
                ["-", file] => Ok(Route::Tarball {
                    name,
                    file: checked_file(file)?,
                }),
                ["-", file, "-rev", _rev] => Ok(Route::TarballRevision {
                    name,
                    file: checked_file(file)?,
                }),
                [version] if *version != "-" => {
                    let version = decode_segment("version", version)?;
                    Ok(Route::Version { name, version })
                }
                _ => Err(Error::NotFound("unknown endpoint".into())),
            }
        }
    }
}

fn checked_file(raw: &str) -> Result<String> {
    decode_segment("file name", raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(p: &str) -> Result<Route> {
        parse(&Method::GET, p, None)
    }

    #[test]
    fn routes() {
        let scoped = PackageName::parse("@a/b").expect("name");
        assert_eq!(
            get("/@a%2fb").expect("ok"),
            Route::Package {
                name: scoped.clone()
            }
        );
        assert_eq!(
            get("/@a%2Fb").expect("ok"),
            Route::Package {
                name: scoped.clone()
            }
        );
        assert_eq!(
            get("/@a/b").expect("ok"),
            Route::Package {
                name: scoped.clone()
            }
        );
        assert_eq!(
            get("/@a/b/-/b-1.0.0.tgz").expect("ok"),
            Route::Tarball {
                name: scoped.clone(),
                file: "b-1.0.0.tgz".into()
            }
        );
        assert_eq!(
            get("/@a/b/latest").expect("ok"),
            Route::Version {
                name: scoped,
                version: "latest".into()
            }
        );
        assert!(matches!(
            get("/-/package/x/dist-tags/beta").expect("ok"),
            Route::DistTag { .. }
        ));
        assert!(
            matches!(parse(&Method::GET, "/-/v1/search", Some("text=a+b&size=5")).expect("ok"), Route::Search { text, size: 5, .. } if text == "a b")
        );
    }

    #[test]
    fn traversal_refused() {
        for p in [
            "/..",
            "/%2e%2e",
            "/x/..",
            "/x/%2e%2e%2fy",
            "/x/-/..%2f..%2fetc",
            "/a%5cb",
            "/a%00",
            "//x",
            "/x/-/a%5c.tgz",
        ] {
            assert!(
                matches!(get(p), Err(Error::BadRequest(_))),
                "{p}: {:?}",
                get(p)
            );
        }
    }
}
