//! One module per endpoint group, plus what they share: which stored files are visible.

pub(crate) mod deploy;
pub(crate) mod proxy;
pub(crate) mod read;

use batlehub_core::model::VersionRecord;

use crate::name::{Coords, is_snapshot, parse_file};

/// The `(timestamp, buildNumber)` of every SNAPSHOT build whose POM is stored (`None` for
/// a non-timestamped `-SNAPSHOT.pom`), i.e. the builds clients may see.
pub(crate) fn complete_builds(coords: &Coords, v: &VersionRecord) -> Vec<Option<(String, u32)>> {
    v.files
        .iter()
        .filter_map(|f| parse_file(&coords.artifact, &v.version, &f.filename))
        .filter(|f| f.extension == "pom" && f.classifier.is_empty())
        .map(|f| f.build)
        .collect()
}

/// Whether a stored version is visible: a release once its POM is stored, a SNAPSHOT once
/// one build's POM is.
pub(crate) fn version_visible(coords: &Coords, v: &VersionRecord) -> bool {
    if v.yanked {
        return false;
    }
    if is_snapshot(&v.version) {
        !complete_builds(coords, v).is_empty()
    } else {
        let pom = format!("{}-{}.pom", coords.artifact, v.version);
        v.files.iter().any(|f| f.filename == pom)
    }
}

/// Whether one stored file is visible: its version (for a SNAPSHOT: its build) has a POM.
pub(crate) fn file_visible(coords: &Coords, v: &VersionRecord, file: &str) -> bool {
    if !is_snapshot(&v.version) {
        return version_visible(coords, v);
    }
    let Some(f) = parse_file(&coords.artifact, &v.version, file) else {
        return false;
    };
    !v.yanked && complete_builds(coords, v).contains(&f.build)
}

/// `yyyyMMddHHmmss`, the `lastUpdated` form.
pub(crate) fn last_updated(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y%m%d%H%M%S").to_string()
}
