//! The normalized model every protocol translates into: identities, permissions, packages,
//! versions and files.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a registry instance gets its packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Authoritative: packages are published here; there is no upstream.
    #[default]
    Local,
    /// A cache of ordered upstreams; publishing is refused.
    Proxy,
    /// Local first; upstreams only for names with no local package.
    Hybrid,
}

impl Mode {
    /// Whether this mode accepts publishes.
    #[must_use]
    pub fn accepts_publish(self) -> bool {
        matches!(self, Mode::Local | Mode::Hybrid)
    }

    /// Whether this mode reads from upstreams.
    #[must_use]
    pub fn has_upstreams(self) -> bool {
        matches!(self, Mode::Proxy | Mode::Hybrid)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Local => "local",
            Mode::Proxy => "proxy",
            Mode::Hybrid => "hybrid",
        })
    }
}

/// A role, ordered: `Admin` inherits `User` inherits `Anonymous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// No credentials.
    Anonymous,
    /// An authenticated user.
    User,
    /// An administrator.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Anonymous => "anonymous",
            Role::User => "user",
            Role::Admin => "admin",
        })
    }
}

/// An authenticated caller.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Stable identifier (token name, OIDC subject, ...).
    pub id: String,
    /// The caller's role.
    pub role: Role,
    /// Groups, namespaced by provider where the provider says so (`oidc:team-a`).
    pub groups: Vec<String>,
    /// Which provider vouched for this principal (`static`, `oidc`, ...).
    pub provider: String,
}

/// Providers whose principal ids share the operator's own namespace: configured static
/// tokens and the personal access tokens admins issue. Their ids are stored as they are.
const LOCAL_PROVIDERS: [&str; 3] = ["", "static", "pat"];

impl Principal {
    /// The id under which this principal is stored and compared wherever it owns
    /// something (owners, publishers, quotas, rate limits, audit): the bare id for the
    /// operator's own identities (static tokens, personal access tokens), and
    /// `<provider>:<id>` for external identity providers, so that an OIDC subject or a CI
    /// workload named like a local user never inherits what that user owns.
    #[must_use]
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        if LOCAL_PROVIDERS.contains(&self.provider.as_str()) {
            std::borrow::Cow::Borrowed(&self.id)
        } else {
            std::borrow::Cow::Owned(format!("{}:{}", self.provider, self.id))
        }
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("groups", &self.groups)
            .field("provider", &self.provider)
            .finish()
    }
}

/// Put into request extensions by an auth layer that refused to verify credentials because
/// this client failed to authenticate too often; protocol services answer `429` with
/// `Retry-After` in their own envelope instead of verifying anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthThrottled {
    /// Seconds until the client may try again.
    pub retry_after: u64,
    /// The failed authentications allowed per window.
    pub limit: u64,
}

/// The outcome of authentication, carried in request extensions by the auth layer.
///
/// A request without this extension is treated as [`Identity::Anonymous`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Identity {
    /// No credentials were presented.
    #[default]
    Anonymous,
    /// Credentials were presented and accepted.
    User(Principal),
    /// Credentials were presented and refused; never downgraded to anonymous.
    Invalid(String),
}

impl Identity {
    /// The role used for authorization (`Invalid` counts as anonymous, but is refused earlier).
    #[must_use]
    pub fn role(&self) -> Role {
        match self {
            Identity::User(p) => p.role,
            _ => Role::Anonymous,
        }
    }

    /// The principal, when authenticated.
    #[must_use]
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Identity::User(p) => Some(p),
            _ => None,
        }
    }

    /// A display name for logs and audit (`anonymous` when unauthenticated).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Identity::User(p) => &p.id,
            _ => "anonymous",
        }
    }

    /// The provider-qualified id ([`Principal::key`]), `anonymous` without a principal:
    /// what ownership, publisher records, quotas and audit store.
    #[must_use]
    pub fn key(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Identity::User(p) => p.key(),
            _ => std::borrow::Cow::Borrowed("anonymous"),
        }
    }
}

/// A permission in a registry's RBAC table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Metadata and binary artifacts.
    ReleasesRead,
    /// Source archives (npm tarballs, `.crate`, sdists, source jars).
    SourceRead,
    /// Publish, yank, deprecate (within ownership and namespace rules).
    Publish,
    /// Everything, including the registry's admin API.
    All,
}

impl Permission {
    /// The configuration spelling (`releases:read`, `source:read`, `publish`, `*`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReleasesRead => "releases:read",
            Permission::SourceRead => "source:read",
            Permission::Publish => "publish",
            Permission::All => "*",
        }
    }
}

impl std::str::FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "releases:read" => Ok(Permission::ReleasesRead),
            "source:read" => Ok(Permission::SourceRead),
            "publish" => Ok(Permission::Publish),
            "*" => Ok(Permission::All),
            other => Err(format!(
                "unknown permission `{other}` (expected releases:read, source:read, publish or *)"
            )),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request wants to do, as seen by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access<'a> {
    /// The registry instance.
    pub registry: &'a str,
    /// The permission the operation needs.
    pub permission: Permission,
    /// The package concerned, when there is one.
    pub package: Option<&'a str>,
}

/// The result of a policy evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with the explanation.
    Deny(crate::error::Denial),
}

/// A package known to the local index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    /// The package name as published (protocol-normalized).
    pub name: String,
    /// First publish.
    pub created_at: DateTime<Utc>,
    /// Last change of any version or tag.
    pub updated_at: DateTime<Utc>,
}

/// One stored file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file name clients ask for.
    pub filename: String,
    /// Lowercase hex sha256: also the content address of the blob.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// A detached signature uploaded with the file (base64), returned on download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The signature's type (`ed25519`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_type: Option<String>,
}

/// One version of a package in the local index.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// Package name.
    pub package: String,
    /// Version string as published.
    pub version: String,
    /// Publish time.
    pub published_at: DateTime<Utc>,
    /// Yanked: still downloadable when pinned, not selected by resolvers.
    pub yanked: bool,
    /// Deprecation message, if deprecated.
    pub deprecated: Option<String>,
    /// Who published it.
    pub publisher: Option<String>,
    /// The protocol's native per-version document (npm manifest, cargo index line, ...).
    pub metadata: serde_json::Value,
    /// The version's files.
    pub files: Vec<FileRecord>,
}

/// A version to commit in one transaction.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Registry instance.
    pub registry: String,
    /// The version record, with its files (whose blobs are already committed).
    pub version: VersionRecord,
    /// Tags to point at this version (npm dist-tags), set in the same transaction.
    pub tags: Vec<String>,
}

/// A local package with everything needed to render it.
#[derive(Debug, Clone)]
pub struct LocalPackage {
    /// The package row.
    pub record: PackageRecord,
    /// Every version, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Tag -> version.
    pub tags: BTreeMap<String, String>,
}

/// A search hit in the local index.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSummary {
    /// Package name.
    pub name: String,
    /// The newest version's string (by publish time).
    pub latest_version: String,
    /// The newest version's native metadata.
    pub metadata: serde_json::Value,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A cached upstream metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDocument {
    /// sha256 of the stored body (its content address).
    pub sha256: String,
    /// Size of the body.
    pub size: u64,
    /// The upstream's ETag, for revalidation.
    pub etag: Option<String>,
    /// The upstream's Last-Modified, for revalidation.
    pub last_modified: Option<String>,
    /// The upstream's Content-Type.
    pub content_type: Option<String>,
    /// Index of the upstream that served it.
    pub upstream: u32,
    /// When it was fetched or last revalidated.
    pub fetched_at: DateTime<Utc>,
}

/// A cached upstream artifact: a protocol key pointing at a content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedArtifact {
    /// sha256 of the blob.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was cached.
    pub fetched_at: DateTime<Utc>,
}

/// A personal access token as stored in the index (the secret itself is never stored).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier, part of the token string (`bhp_<id>_<secret>`).
    pub id: String,
    /// The principal id the token authenticates as.
    pub principal: String,
    /// Lowercase hex sha256 of the secret part.
    pub secret_sha256: String,
    /// Role granted.
    pub role: Role,
    /// Groups granted (namespaced as `pat:<group>` when presented).
    pub groups: Vec<String>,
    /// A note from whoever created it.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: String,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("role", &self.role)
            .field("groups", &self.groups)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Who owns a package: a user (principal id) or a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Owner {
    /// A principal id.
    User(String),
    /// A group name (matched like RBAC groups; `*:team` matches any provider).
    Group(String),
}

/// A group's claim on a name prefix in one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Registry instance.
    pub registry: String,
    /// Name prefix (`@team-a/`, `team-a-`).
    pub prefix: String,
    /// The group whose members (and admins) may publish under it.
    pub group: String,
}

/// Who may see a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone with read permission.
    #[default]
    Public,
    /// Any authenticated user.
    Internal,
    /// Members of the group owning the package's namespace (and admins).
    Team,
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Visibility::Public),
            "internal" => Ok(Visibility::Internal),
            "team" => Ok(Visibility::Team),
            other => Err(format!(
                "unknown visibility `{other}` (expected public, internal or team)"
            )),
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
            Visibility::Team => "team",
        })
    }
}

/// An administrator's block of a package, a version or a version range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Identifier (assigned by the caller, e.g. a UUID).
    pub id: String,
    /// Registry instance.
    pub registry: String,
    /// Package name.
    pub package: String,
    /// An exact version or a semver range; `None` blocks the whole package.
    pub versions: Option<String>,
    /// Why, shown to clients.
    pub reason: String,
    /// Who blocked it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Registry instance (`""` for hub-wide admin actions).
    pub registry: String,
    /// What was attempted: `download`, `publish`, `yank`, `deprecate`, `admin.block.add`, ...
    pub action: String,
    /// Package concerned.
    pub package: Option<String>,
    /// Version concerned.
    pub version: Option<String>,
    /// Who (`anonymous` when unauthenticated).
    pub principal: String,
    /// `allow` or `deny`.
    pub outcome: String,
    /// The deciding rule, for denials.
    pub rule: Option<String>,
    /// The reason, for denials.
    pub reason: Option<String>,
    /// Client IP as seen through trusted proxies.
    pub client_ip: Option<String>,
}

/// Filters for an audit query; every `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Registry instance.
    pub registry: Option<String>,
    /// Package name.
    pub package: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Principal id.
    pub principal: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// `allow` or `deny`.
    pub outcome: Option<String>,
    /// Inclusive lower bound.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
    /// Most rows (implementations cap it at 10 000).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// What one principal has published in one registry, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of file sizes of versions they published.
    pub bytes: u64,
    /// Distinct packages with a version they published.
    pub packages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(id: &str, provider: &str) -> Principal {
        Principal {
            id: id.into(),
            role: Role::User,
            groups: Vec::new(),
            provider: provider.into(),
        }
    }

    #[test]
    fn keys_are_qualified_by_external_providers() {
        assert_eq!(principal("alice", "static").key(), "alice");
        assert_eq!(principal("alice", "pat").key(), "alice");
        assert_eq!(principal("alice", "oidc").key(), "oidc:alice");
        assert_eq!(
            Identity::User(principal("repo:acme/app", "github")).key(),
            "github:repo:acme/app"
        );
        assert_eq!(Identity::Anonymous.key(), "anonymous");
    }
}
