//! The Maven repository URL space (`/maven2/{group/path}/{artifact}/...`), parsed.

use batlehub_core::{Error, Result};

use crate::checksum::Algo;
use batlehub_core::protocol::decode_segment;

use crate::name::{Coords, check_version, is_snapshot, parse_file};

/// The file name of repository metadata.
pub(crate) const METADATA: &str = "maven-metadata.xml";

/// One Maven request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `{group}/{artifact}/maven-metadata.xml` (artifact level) or
    /// `{group}/{artifact}/{version}-SNAPSHOT/maven-metadata.xml` (version level).
    Metadata {
        coords: Coords,
        version: Option<String>,
        checksum: Option<Algo>,
    },
    /// `{group}/{artifact}/{version}/{file}`.
    File {
        coords: Coords,
        version: String,
        file: String,
        checksum: Option<Algo>,
    },
}

/// Parses a request path relative to the mount point.
pub(crate) fn parse(path: &str) -> Result<Route> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let Some(rest) = trimmed.strip_prefix("maven2/") else {
        return Err(Error::NotFound(format!(
            "no Maven endpoint at `{path}`; the repository root is `maven2/`"
        )));
    };
    let raw: Vec<&str> = rest.split('/').collect();
    if raw.iter().any(|s| s.is_empty()) {
        return Err(Error::BadRequest("empty path segment".into()));
    }
    let mut segs = Vec::with_capacity(raw.len());
    for s in raw {
        segs.push(decode_segment("path segment", s)?);
    }
    let Some((last, dirs)) = segs.split_last() else {
        return Err(Error::NotFound("the repository root has no listing".into()));
    };
    let (base, checksum) = Algo::split(last);
    if base == METADATA {
        return match dirs {
            [group @ .., artifact, version] if is_snapshot(version) && !group.is_empty() => {
                check_version(version)?;
                Ok(Route::Metadata {
                    coords: Coords::from_segments(group, artifact)?,
                    version: Some(version.clone()),
                    checksum,
                })
            }
            [group @ .., artifact] if !group.is_empty() => Ok(Route::Metadata {
                coords: Coords::from_segments(group, artifact)?,
                version: None,
                checksum,
            }),
            _ => Err(Error::NotFound(format!("no Maven metadata at `{path}`"))),
        };
    }
    match dirs {
        [group @ .., artifact, version] if !group.is_empty() => {
            let coords = Coords::from_segments(group, artifact)?;
            check_version(version)?;
            crate::name::check_safe("file name", base)?;
            if parse_file(artifact, version, base).is_none() {
                return Err(Error::BadRequest(format!(
                    "`{base}` is not a file name of {coords}:{version} (expected `{artifact}-{version}[-classifier].ext`)"
                )));
            }
            Ok(Route::File {
                coords,
                version: version.clone(),
                file: base.to_owned(),
                checksum,
            })
        }
        _ => Err(Error::NotFound(format!("no Maven artifact at `{path}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = parse("/maven2/org/example/lib/1.0/lib-1.0.jar.sha1").expect("file");
        assert!(matches!(
            r,
            Route::File { ref coords, ref version, ref file, checksum: Some(Algo::Sha1) }
                if coords.key() == "org.example:lib" && version == "1.0" && file == "lib-1.0.jar"
        ));
        let r = parse("/maven2/org/example/lib/maven-metadata.xml").expect("meta");
        assert!(matches!(
            r,
            Route::Metadata {
                version: None,
                checksum: None,
                ..
            }
        ));
        let r = parse("/maven2/org/example/lib/1.0-SNAPSHOT/maven-metadata.xml.md5").expect("v");
        assert!(matches!(
            r,
            Route::Metadata { version: Some(ref v), checksum: Some(Algo::Md5), .. } if v == "1.0-SNAPSHOT"
        ));
    }

    #[test]
    fn bad_paths() {
        for p in [
            "/maven2/org/../lib/1.0/lib-1.0.jar",
            "/maven2/org/%2e%2e/lib/1.0/lib-1.0.jar",
            "/maven2/org/a%5cb/lib/1.0/lib-1.0.jar",
            "/maven2/org/a%00/lib/1.0/lib-1.0.jar",
            "/maven2/org//lib/1.0/lib-1.0.jar",
            "/maven2/org/example/lib/1.0/other-1.0.jar",
        ] {
            assert!(
                matches!(parse(p), Err(Error::BadRequest(_))),
                "{p}: {:?}",
                parse(p)
            );
        }
        assert!(matches!(parse("/other"), Err(Error::NotFound(_))));
    }
}
