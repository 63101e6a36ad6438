//! The RubyGems URL space, parsed: the compact index (`/versions`, `/info/{gem}`,
//! `/names`), the full index (`/specs.4.8.gz` and friends, quick gemspecs), `.gem`
//! downloads, the JSON APIs and the push/yank API.

use batlehub_core::protocol::{decode_segment, segments};
use batlehub_core::{Error, Result};

use crate::name::check_name;

/// Which full-index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Specs {
    /// `specs.4.8.gz`: every release.
    All,
    /// `latest_specs.4.8.gz`: the newest release of each gem and platform.
    Latest,
    /// `prerelease_specs.4.8.gz`: every pre-release.
    Prerelease,
}

/// One RubyGems request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/`: `gem` asks for it (`HEAD`) before it uses a source.
    Root,
    /// `/versions`.
    Versions,
    /// `/names`.
    Names,
    /// `/info/{gem}`.
    Info(String),
    /// `/gems/{full_name}.gem`.
    Gem(String),
    /// `/quick/Marshal.4.8/{full_name}.gemspec.rz`.
    Quick(String),
    /// `/specs.4.8.gz`, `/latest_specs.4.8.gz`, `/prerelease_specs.4.8.gz`.
    Specs(Specs),
    /// `/api/v1/gems`: push.
    Push,
    /// `/api/v1/gems/yank`.
    Yank,
    /// `/api/v1/gems/{gem}.json`.
    GemJson(String),
    /// `/api/v1/versions/{gem}.json`.
    VersionsJson(String),
    /// `/api/v2/rubygems/{gem}/versions/{version}.json`.
    VersionJson { gem: String, version: String },
    /// `/api/v1/dependencies`: gone from RubyGems servers; `404` sends bundler on.
    Dependencies,
}

fn gem_name(raw: &str) -> Result<String> {
    let name = decode_segment("gem name", raw)?;
    check_name(&name).map_err(|e| Error::BadRequest(e.0))?;
    Ok(name)
}

/// A file name's stem (`{full_name}` of `{full_name}{suffix}`), checked as a segment.
fn stem(raw: &str, suffix: &str, what: &str) -> Result<String> {
    let decoded = decode_segment(what, raw)?;
    let stem = decoded
        .strip_suffix(suffix)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no such file `{decoded}` (a {what} ends in {suffix})"
            ))
        })?;
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(Error::BadRequest(format!("invalid {what} `{decoded}`")));
    }
    Ok(stem.to_owned())
}

/// Parses a request path relative to the mount point. Leading empty segments are dropped
/// (`gem push --host URL/` asks for `//api/v1/gems`).
pub(crate) fn parse(path: &str) -> Result<Route> {
    let trimmed = path.trim_start_matches('/');
    let segs = segments(trimmed);
    if segs.iter().any(|s| s.is_empty()) {
        return Err(Error::BadRequest(format!(
            "no RubyGems endpoint at `{path}` (empty path segment)"
        )));
    }
    Ok(match segs.as_slice() {
        [] => Route::Root,
        ["versions"] => Route::Versions,
        ["names"] => Route::Names,
        ["info", name] => Route::Info(gem_name(name)?),
        ["gems", file] => Route::Gem(stem(file, ".gem", "gem file")?),
        ["quick", "Marshal.4.8", file] => Route::Quick(stem(file, ".gemspec.rz", "quick gemspec")?),
        ["specs.4.8.gz"] => Route::Specs(Specs::All),
        ["latest_specs.4.8.gz"] => Route::Specs(Specs::Latest),
        ["prerelease_specs.4.8.gz"] => Route::Specs(Specs::Prerelease),
        ["api", "v1", "gems"] => Route::Push,
        ["api", "v1", "gems", "yank"] => Route::Yank,
        ["api", "v1", "gems", file] => {
            Route::GemJson(gem_name(&stem(file, ".json", "JSON file")?)?)
        }
        ["api", "v1", "versions", file] => {
            Route::VersionsJson(gem_name(&stem(file, ".json", "JSON file")?)?)
        }
        ["api", "v2", "rubygems", name, "versions", file] => {
            let version = stem(file, ".json", "JSON file")?;
            crate::name::check_version(&version).map_err(|e| Error::BadRequest(e.0))?;
            Route::VersionJson {
                gem: gem_name(name)?,
                version,
            }
        }
        ["api", "v1", "dependencies" | "dependencies.json"] => Route::Dependencies,
        _ => {
            return Err(Error::NotFound(format!(
                "no RubyGems endpoint at `{path}` (this source serves /versions, /info/GEM, /gems/FILE.gem, /quick/Marshal.4.8/FILE.gemspec.rz, /specs.4.8.gz and /api/v1/gems)"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse("/").expect("root"), Route::Root);
        assert_eq!(parse("").expect("root"), Route::Root);
        assert_eq!(parse("/versions").expect("v"), Route::Versions);
        assert_eq!(
            parse("/info/Foo_Bar.baz").expect("info"),
            Route::Info("Foo_Bar.baz".into())
        );
        assert_eq!(
            parse("/gems/nokogiri-1.15.0-x86_64-linux.gem").expect("gem"),
            Route::Gem("nokogiri-1.15.0-x86_64-linux".into())
        );
        assert_eq!(
            parse("/quick/Marshal.4.8/rack-3.0.0.gemspec.rz").expect("quick"),
            Route::Quick("rack-3.0.0".into())
        );
        assert_eq!(parse("//api/v1/gems").expect("push"), Route::Push);
        assert_eq!(parse("/api/v1/gems/yank").expect("yank"), Route::Yank);
        assert_eq!(
            parse("/api/v1/gems/rack.json").expect("json"),
            Route::GemJson("rack".into())
        );
        assert_eq!(
            parse("/api/v2/rubygems/rack/versions/3.0.0.json").expect("v2"),
            Route::VersionJson {
                gem: "rack".into(),
                version: "3.0.0".into()
            }
        );
        for (path, status) in [
            ("/info/..", 400),
            ("/info/%2e%2e", 400),
            ("/info/a%2Fb", 400),
            ("/info/a%00b", 400),
            ("/gems/..%2f..%2fetc.gem", 400),
            ("/gems/rack-1.0.0.tar", 404),
            ("/gems/.gem", 404),
            ("/quick/Marshal.4.8/x.gemspec", 404),
            ("/info/a//b", 400),
            ("/nothing", 404),
            ("/api/v2/rubygems/rack/versions/1.0-x.json", 400),
        ] {
            let err = parse(path).expect_err(path);
            assert_eq!(err.status().as_u16(), status, "{path}: {err}");
        }
    }
}
