//! The GOPROXY URL space (`/{module}/@v/list`, `/{module}/@v/{version}.{info,mod,zip}`,
//! `/{module}/@latest`, `/sumdb/{name}/...`), parsed.

use batlehub_core::protocol::decode_segment;
use batlehub_core::{Error, Result};

use crate::name::{ModulePath, Version};

/// One file of a module version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ext {
    /// `.info`: `{"Version","Time"}`.
    Info,
    /// `.mod`: the `go.mod`.
    Mod,
    /// `.zip`: the module zip.
    Zip,
}

impl Ext {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ext::Info => "info",
            Ext::Mod => "mod",
            Ext::Zip => "zip",
        }
    }
}

/// One GOPROXY request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `{module}/@v/list`.
    List(ModulePath),
    /// `{module}/@latest`.
    Latest(ModulePath),
    /// `{module}/@v/{version}.{ext}`.
    File {
        module: ModulePath,
        version: Version,
        ext: Ext,
    },
    /// `sumdb/{name}/{rest}`: the checksum database, passed through.
    Sumdb { name: String, rest: String },
}

/// Parses a request path relative to the mount point. A module path or version that is not
/// valid is `404` with the reason on reads (the go command then tries its next proxy) and
/// `400` on writes (`write`).
pub(crate) fn parse(path: &str, write: bool) -> Result<Route> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let invalid = |e: Error| match e {
        Error::BadRequest(m) if !write => Error::NotFound(m),
        other => other,
    };
    let raw: Vec<&str> = trimmed.split('/').collect();
    if raw.iter().any(|s| s.is_empty()) {
        return Err(invalid(Error::BadRequest(format!(
            "no Go module endpoint at `{path}` (empty path segment)"
        ))));
    }
    let mut segs = Vec::with_capacity(raw.len());
    for s in raw {
        segs.push(decode_segment("path segment", s).map_err(invalid)?);
    }
    if let [first, name @ ..] = segs.as_slice()
        && first == "sumdb"
        && !name.is_empty()
    {
        // The database's name is a host (and path); what follows is `supported`,
        // `lookup/...`, `tile/...` or `latest`.
        let at = name
            .iter()
            .position(|s| matches!(s.as_str(), "supported" | "lookup" | "tile" | "latest"))
            .filter(|at| *at > 0)
            .ok_or_else(|| Error::NotFound(format!("no checksum database endpoint at `{path}`")))?;
        return Ok(Route::Sumdb {
            name: name[..at].join("/"),
            rest: name[at..].join("/"),
        });
    }
    let module_of = |segs: &[String]| -> Result<ModulePath> {
        ModulePath::unescape(&segs.join("/")).map_err(invalid)
    };
    match segs.as_slice() {
        [module @ .., at] if at == "@latest" && !module.is_empty() => {
            Ok(Route::Latest(module_of(module)?))
        }
        [module @ .., at, list] if at == "@v" && list == "list" && !module.is_empty() => {
            Ok(Route::List(module_of(module)?))
        }
        [module @ .., at, file] if at == "@v" && !module.is_empty() => {
            let module = module_of(module)?;
            let (escaped, ext) = file
                .rsplit_once('.')
                .and_then(|(v, ext)| {
                    let ext = match ext {
                        "info" => Ext::Info,
                        "mod" => Ext::Mod,
                        "zip" => Ext::Zip,
                        _ => return None,
                    };
                    Some((v, ext))
                })
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no Go module endpoint at `{path}` (a version file is .info, .mod or .zip)"
                    ))
                })?;
            let version = crate::name::unescape(escaped)
                .ok_or_else(|| Error::BadRequest(format!("invalid escaped version {escaped:?}")))
                .and_then(|v| Version::parse(&v))
                .map_err(invalid)?;
            Ok(Route::File {
                module,
                version,
                ext,
            })
        }
        _ => Err(Error::NotFound(format!(
            "no Go module endpoint at `{path}` (GOPROXY paths are {{module}}/@v/list, {{module}}/@v/{{version}}.info|.mod|.zip and {{module}}/@latest)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let m = |s: &str| ModulePath::parse(s).expect("path");
        assert_eq!(
            parse("/example.com/%21org/!mod/@v/list", false).expect("list"),
            Route::List(m("example.com/Org/Mod"))
        );
        assert_eq!(
            parse("/example.com/m/v2/@latest", false).expect("latest"),
            Route::Latest(m("example.com/m/v2"))
        );
        assert_eq!(
            parse("/example.com/m/@v/v1.0.0-!r!c.1.zip", true).expect("zip"),
            Route::File {
                module: m("example.com/m"),
                version: Version::parse("v1.0.0-RC.1").expect("v"),
                ext: Ext::Zip
            }
        );
        assert_eq!(
            parse("/example.com/m/@v/v2.0.0+incompatible.info", false).expect("info"),
            Route::File {
                module: m("example.com/m"),
                version: Version::parse("v2.0.0+incompatible").expect("v"),
                ext: Ext::Info
            }
        );
        assert_eq!(
            parse("/sumdb/sum.example.org/lookup/example.com/m@v1.0.0", false).expect("sumdb"),
            Route::Sumdb {
                name: "sum.example.org".into(),
                rest: "lookup/example.com/m@v1.0.0".into()
            }
        );
        // Reads of what cannot exist are 404 (the go command tries its next proxy); writes 400.
        for (path, write, status) in [
            ("/example.com/m/@v/1.0.0.zip", false, 404),
            ("/example.com/m/@v/1.0.0.zip", true, 400),
            ("/example.com/m/@v/v1.0.zip", true, 400),
            ("/example.com/../m/@v/list", false, 404),
            ("/example.com/%2e%2e/m/@v/list", true, 400),
            ("/example.com/a%2Fb/@v/list", true, 400),
            ("//example.com/m/@v/list", true, 400),
            ("/example.com/Org/@v/list", false, 404),
            ("/example.com/m/@v/v1.0.0.tar", false, 404),
            ("/example.com/m", false, 404),
        ] {
            let err = parse(path, write).expect_err(path);
            assert_eq!(err.status().as_u16(), status, "{path}: {err}");
        }
    }
}
