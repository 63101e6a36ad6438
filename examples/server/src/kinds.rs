//! The registry kinds this server serves: one row per protocol (type name, how the service
//! is built from a `[[registries]]` entry, how package names are normalized). Adding a
//! format to the server is adding a row.

use std::convert::Infallible;

use axum::http::{Request, Response};
use batlehub::core::Index;
use batlehub::core::protocol::RegistryService;
use batlehub::{BaseUrl, Registry};
use tower::util::BoxCloneSyncService;

use crate::config::RegistryToml;

/// A protocol service, type-erased for the router.
pub type Served =
    BoxCloneSyncService<Request<axum::body::Body>, Response<batlehub::Body>, Infallible>;

/// One registry type (`type = "..."` in `[[registries]]`).
pub struct Kind {
    /// The `type` value.
    pub name: &'static str,
    /// Other `type` values accepted for it.
    pub aliases: &'static [&'static str],
    /// Checks the kind-specific keys of an entry (the reason, when refused).
    pub validate: fn(&RegistryToml) -> Result<(), String>,
    /// Builds the service for an entry.
    pub serve: fn(&RegistryToml, Registry, BaseUrl) -> Served,
    /// The key a raw package name is stored under (`Protocol::package_key`).
    pub package_key: fn(&str) -> batlehub::core::Result<String>,
    /// A configured upstream URL in the form the engine fetches from (cargo: `sparse+`
    /// dropped).
    pub upstream_url: fn(&str) -> String,
    /// Yanks or restores a version for the admin API; returns the package key.
    pub yank: YankFn,
}

/// A boxed `Send` future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What yanking a version takes: index, registry, package key, version, yanked, reason.
pub type YankFn = for<'a> fn(
    &'a dyn Index,
    &'a str,
    &'a str,
    &'a str,
    bool,
    Option<&'a str>,
) -> BoxFuture<'a, batlehub::core::Result<String>>;

/// The index's yanked flag: resolvers skip yanked versions unless pinned exactly.
fn yank_flag<'a>(
    index: &'a dyn Index,
    registry: &'a str,
    package: &'a str,
    version: &'a str,
    yanked: bool,
    _reason: Option<&'a str>,
) -> BoxFuture<'a, batlehub::core::Result<String>> {
    Box::pin(async move {
        if index.set_yanked(registry, package, version, yanked).await? {
            Ok(package.to_owned())
        } else {
            Err(batlehub::Error::NotFound(format!(
                "{package} {version} not found"
            )))
        }
    })
}

/// Go versions are stored without their `v` (plain semver); `v1.2.3` names `1.2.3`. A
/// yanked version leaves `@v/list` and `@latest` and stays downloadable when pinned.
fn go_yank<'a>(
    index: &'a dyn Index,
    registry: &'a str,
    package: &'a str,
    version: &'a str,
    yanked: bool,
    reason: Option<&'a str>,
) -> BoxFuture<'a, batlehub::core::Result<String>> {
    yank_flag(
        index,
        registry,
        package,
        version.strip_prefix('v').unwrap_or(version),
        yanked,
        reason,
    )
}

/// PEP 592: the yank reason is kept and shown by pip.
fn pypi_yank<'a>(
    index: &'a dyn Index,
    registry: &'a str,
    package: &'a str,
    version: &'a str,
    yanked: bool,
    reason: Option<&'a str>,
) -> BoxFuture<'a, batlehub::core::Result<String>> {
    Box::pin(batlehub::pypi::admin::set_yanked(
        index, registry, package, version, yanked, reason,
    ))
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every registry type this build serves, the default (zero-config) ones first.
pub static KINDS: &[Kind] = &[
    Kind {
        name: "npm",
        aliases: &[],
        validate: no_settings,
        serve: plain::<batlehub::npm::NpmService>,
        package_key: <batlehub::npm::NpmService as RegistryService>::package_key,
        upstream_url: <batlehub::npm::NpmService as RegistryService>::upstream_url,
        yank: yank_flag,
    },
    Kind {
        name: "cargo",
        aliases: &[],
        validate: no_settings,
        serve: plain::<batlehub::cargo::CargoService>,
        package_key: <batlehub::cargo::CargoService as RegistryService>::package_key,
        upstream_url: <batlehub::cargo::CargoService as RegistryService>::upstream_url,
        yank: yank_flag,
    },
    Kind {
        name: "pypi",
        aliases: &[],
        validate: pypi_settings,
        serve: pypi,
        package_key: <batlehub::pypi::PypiService as RegistryService>::package_key,
        upstream_url: <batlehub::pypi::PypiService as RegistryService>::upstream_url,
        yank: pypi_yank,
    },
    Kind {
        name: "maven",
        aliases: &[],
        validate: no_settings,
        serve: plain::<batlehub::maven::MavenService>,
        package_key: <batlehub::maven::MavenService as RegistryService>::package_key,
        upstream_url: <batlehub::maven::MavenService as RegistryService>::upstream_url,
        yank: yank_flag,
    },
    Kind {
        name: "go",
        aliases: &["goproxy"],
        validate: go_settings,
        serve: go,
        package_key: <batlehub::go::GoService as RegistryService>::package_key,
        upstream_url: <batlehub::go::GoService as RegistryService>::upstream_url,
        yank: go_yank,
    },
    Kind {
        name: "rubygems",
        aliases: &[],
        validate: no_settings,
        serve: plain::<batlehub::rubygems::RubyGemsService>,
        package_key: <batlehub::rubygems::RubyGemsService as RegistryService>::package_key,
        upstream_url: <batlehub::rubygems::RubyGemsService as RegistryService>::upstream_url,
        yank: yank_flag,
    },
];

/// The kind named `name` (or one of its aliases).
#[must_use]
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.name == name || k.aliases.contains(&name))
}

/// The type names, for messages.
#[must_use]
pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

fn plain<S>(_: &RegistryToml, registry: Registry, base: BaseUrl) -> Served
where
    S: RegistryService
        + tower::Service<
            Request<axum::body::Body>,
            Response = Response<batlehub::Body>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(S::from_registry(registry, base))
}

fn no_settings(r: &RegistryToml) -> Result<(), String> {
    if let Some(other) = r.denied_versions.as_deref() {
        return Err(denied_versions_error(other));
    }
    no_go_settings(r)
}

fn no_go_settings(r: &RegistryToml) -> Result<(), String> {
    if r.checksum_db.is_some() || r.checksum_db_key.is_some() || !r.checksum_db_skip.is_empty() {
        return Err(
            "checksum_db, checksum_db_key and checksum_db_skip are settings of go registries"
                .into(),
        );
    }
    Ok(())
}

fn go_settings(r: &RegistryToml) -> Result<(), String> {
    if let Some(other) = r.denied_versions.as_deref() {
        return Err(denied_versions_error(other));
    }
    checksum_db(r).map(drop)
}

/// The checksum database of a go registry's settings, if it names one.
fn checksum_db(r: &RegistryToml) -> Result<Option<batlehub::go::ChecksumDb>, String> {
    let Some(url) = &r.checksum_db else {
        return if !r.checksum_db_skip.is_empty() {
            Err("checksum_db_skip needs checksum_db".into())
        } else if r.checksum_db_key.is_some() {
            Err("checksum_db_key needs checksum_db".into())
        } else {
            Ok(None)
        };
    };
    let db = batlehub::go::ChecksumDb::new(url, r.checksum_db_skip.iter().cloned())?;
    match &r.checksum_db_key {
        Some(key) => db.verified_by(key).map(Some),
        None => Ok(Some(db)),
    }
}

fn go(r: &RegistryToml, registry: Registry, base: BaseUrl) -> Served {
    let service = batlehub::go::GoService::new(registry, base);
    let service = match checksum_db(r) {
        Ok(Some(db)) => service.checksum_db(db),
        // Refused at start-up by go_settings.
        _ => service,
    };
    BoxCloneSyncService::new(service)
}

fn denied_versions_error(value: &str) -> String {
    format!("denied_versions: `{value}` is not valid here (pypi registries take hide or yanked)")
}

fn pypi_settings(r: &RegistryToml) -> Result<(), String> {
    match r.denied_versions.as_deref() {
        None | Some("hide" | "yanked") => no_go_settings(r),
        Some(other) => Err(denied_versions_error(other)),
    }
}

fn pypi(r: &RegistryToml, registry: Registry, base: BaseUrl) -> Served {
    let denied = match r.denied_versions.as_deref() {
        Some("yanked") => batlehub::pypi::DeniedVersions::Yanked,
        _ => batlehub::pypi::DeniedVersions::Hide,
    };
    BoxCloneSyncService::new(
        batlehub::pypi::PypiService::new(registry, base).denied_versions(denied),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_the_protocol_way() {
        let key = |kind: &str, raw: &str| (find(kind).expect("kind").package_key)(raw);
        assert_eq!(key("cargo", "Serde_JSON").expect("valid"), "serde-json");
        assert_eq!(key("pypi", "My_Pkg.Name").expect("valid"), "my-pkg-name");
        assert_eq!(key("npm", "@scope/pkg").expect("valid"), "@scope/pkg");
        assert_eq!(
            key("maven", "org.example:lib").expect("valid"),
            "org.example:lib"
        );
        assert_eq!(
            key("go", "example.com/Org/Mod").expect("valid"),
            "example.com/Org/Mod"
        );
        assert_eq!(
            key("goproxy", "example.com/!org/mod").expect("valid"),
            "example.com/Org/mod"
        );
        assert!(key("go", "example.com/../x").is_err());
        assert_eq!(key("rubygems", "Net-HTTP_x").expect("valid"), "Net-HTTP_x");
        assert!(key("rubygems", "../x").is_err());
        assert!(key("cargo", "not a crate").is_err());
        assert!(find("nope").is_none());
    }

    #[test]
    fn checksum_database_settings_are_checked_at_start_up() {
        let go = |db: Option<&str>, key: Option<&str>| {
            let mut r = RegistryToml::local("go");
            r.checksum_db = db.map(Into::into);
            r.checksum_db_key = key.map(Into::into);
            r
        };
        let db = Some("https://sum.example.org/");
        assert_eq!(go_settings(&go(db, None)), Ok(()));
        let err = go_settings(&go(db, Some("sum.example.org+00000000+AAAA"))).expect_err("key");
        assert!(err.contains("checksum_db_key"), "{err}");
        let err = go_settings(&go(None, Some("k"))).expect_err("no database");
        assert!(err.contains("checksum_db_key needs checksum_db"), "{err}");
        let mut npm = go(db, None);
        npm.kind = "npm".into();
        assert!(no_go_settings(&npm).is_err());
        npm.checksum_db = None;
        npm.checksum_db_key = Some("k".into());
        assert!(no_go_settings(&npm).is_err());
    }
}
