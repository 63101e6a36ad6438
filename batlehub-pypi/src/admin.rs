//! Operations for a host's admin API: PEP 592 yanking.
//!
//! PyPI clients have no yank endpoint (the public index yanks from its web UI), so hosts
//! expose yanking in their own admin API and call [`set_yanked`].

use batlehub_core::{Error, Index, Result};

use crate::name::ProjectName;
use crate::version::same_release;

/// Yanks (`yanked = true`, with an optional reason) or unyanks a release of a local project.
///
/// A yanked release stays on project pages with `data-yanked` / `"yanked"` set and stays
/// downloadable: pip and uv skip it unless a requirement pins it exactly (`==1.0`), and then
/// print the reason. `project` may be spelled any way that normalizes to the project
/// (`My_Pkg`); `version` matches by PEP 440 equality (`1.0` finds `1.0.0`). Returns the
/// stored version string.
///
/// PyPI has no deprecation concept, so the reason is kept in the version's deprecation
/// message; unyanking clears it.
///
/// # Errors
/// [`Error::BadRequest`] for a bad project name; [`Error::NotFound`] when the project or the
/// release does not exist; storage errors.
///
/// # Examples
/// ```no_run
/// # async fn demo(registry: &batlehub_core::Registry) -> batlehub_core::Result<()> {
/// batlehub_pypi::admin::set_yanked(
///     registry.index(), registry.name(), "My_Pkg", "1.0", true, Some("broken wheel"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn set_yanked(
    index: &dyn Index,
    registry: &str,
    project: &str,
    version: &str,
    yanked: bool,
    reason: Option<&str>,
) -> Result<String> {
    let name = ProjectName::parse(project)?;
    let pkg = index
        .package(registry, name.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("project `{name}` not found")))?;
    let stored = pkg
        .versions
        .iter()
        .rev()
        .find(|v| same_release(&v.version, version))
        .map(|v| v.version.clone())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "version `{}` of `{name}` not found",
                version.escape_default()
            ))
        })?;
    index
        .set_yanked(registry, name.as_str(), &stored, yanked)
        .await?;
    let reason = reason.map(str::trim).filter(|r| yanked && !r.is_empty());
    index
        .set_deprecated(registry, name.as_str(), &stored, reason)
        .await?;
    Ok(stored)
}
