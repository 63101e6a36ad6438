//! Version helpers shared by protocols when policy hides versions.

/// The version a `latest`-style pointer should move to when the version it named is hidden:
/// the highest visible stable (non-pre-release) semver version not above `original`, else
/// the highest visible stable version, else `None`. Non-semver versions are never chosen.
#[must_use]
pub fn repair_pointer<'a>(
    visible: impl IntoIterator<Item = &'a str>,
    original: &str,
) -> Option<String> {
    let original = semver::Version::parse(original).ok();
    let mut stable: Vec<semver::Version> = visible
        .into_iter()
        .filter_map(|v| semver::Version::parse(v).ok())
        .filter(|v| v.pre.is_empty())
        .collect();
    stable.sort();
    let below = original
        .as_ref()
        .and_then(|o| stable.iter().rev().find(|v| *v <= o))
        .cloned();
    below
        .or_else(|| stable.last().cloned())
        .map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_to_highest_stable_below() {
        let vis = ["1.0.0", "1.5.1", "2.0.0", "2.1.0-beta.1"];
        assert_eq!(repair_pointer(vis, "2.0.1").as_deref(), Some("2.0.0"));
        assert_eq!(repair_pointer(vis, "0.9.0").as_deref(), Some("2.0.0"));
        assert_eq!(repair_pointer(["1.0.0-rc.1"], "1.0.0"), None);
        assert_eq!(repair_pointer(["x"], "y"), None);
    }
}
