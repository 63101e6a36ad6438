//! How versions refused by policy appear on project pages: a setting of the PyPI service
//! that handlers read from the request.

use batlehub_core::protocol::Cx;

/// How versions refused by policy (age gate, blocks, version gates) appear on project pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeniedVersions {
    /// Removed from project pages (HTML and JSON), from `versions` and from the JSON API.
    /// A client pinning such a version exactly is told there is no matching distribution;
    /// a direct download of one of its files is refused with 403 and the rule's reason.
    #[default]
    Hide,
    /// Listed as yanked (PEP 592) with the rule's reason as the yank reason: resolvers skip
    /// them, and a client that pins one exactly selects it, prints the reason, and is then
    /// refused the download (403, with the reason). Use it when users should see why a
    /// pinned version is unavailable.
    Yanked,
}

/// How this request's service shows versions refused by policy.
pub(crate) fn denied(cx: &Cx) -> DeniedVersions {
    cx.parts
        .extensions
        .get::<DeniedVersions>()
        .copied()
        .unwrap_or_default()
}
