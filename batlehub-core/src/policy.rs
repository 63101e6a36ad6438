//! The policy extension point: `batlehub-rules` implements it; the engine calls it.

use std::fmt::Debug;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use http::{HeaderName, HeaderValue};

use crate::error::Result;
use crate::model::{Access, Decision, Identity, Owner, Role};
use crate::store::Index;

/// Who is asking: the authenticated identity and the client address (as seen through
/// trusted proxies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The identity from the auth layer.
    pub identity: Identity,
    /// The client's IP address, when known.
    pub client_ip: Option<IpAddr>,
}

/// What policy may consult while deciding one request.
#[derive(Debug, Clone, Copy)]
pub struct PolicyCx<'a> {
    /// The registry instance.
    pub registry: &'a str,
    /// Who is asking.
    pub caller: &'a Caller,
    /// The metadata index (owners, namespaces, blocks, counters, usage).
    pub index: &'a dyn Index,
    /// Now, from the hub's clock.
    pub now: DateTime<Utc>,
}

/// What policy knows about one version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFacts {
    /// The version string.
    pub version: String,
    /// When it was published, if known.
    pub published_at: Option<DateTime<Utc>>,
}

/// A detached signature sent with an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Base64 signature bytes (`X-Artifact-Signature`).
    pub value: String,
    /// Its type (`X-Signature-Type`, e.g. `ed25519`).
    pub kind: String,
}

/// What policy knows about a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFacts {
    /// Package name.
    pub package: String,
    /// Version string.
    pub version: String,
    /// Total bytes of the files being published.
    pub size: u64,
    /// sha256 of the main artifact (what signatures sign).
    pub sha256: Vec<u8>,
    /// Whether the package already exists locally.
    pub package_exists: bool,
    /// The signature sent with the upload, if any.
    pub signature: Option<Signature>,
}

impl VersionFacts {
    /// The facts of a stored version.
    #[must_use]
    pub fn of(v: &crate::model::VersionRecord) -> Self {
        Self {
            version: v.version.clone(),
            published_at: Some(v.published_at),
        }
    }
}

/// What is about to be committed by a publish, for the limits checked at commit time
/// ([`Policy::commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitFacts {
    /// Package name (its key).
    pub package: String,
    /// Bytes of the files being committed.
    pub size: u64,
}

impl CommitFacts {
    /// Facts of a commit of `size` bytes to `package`.
    #[must_use]
    pub fn new(package: impl Into<String>, size: u64) -> Self {
        Self {
            package: package.into(),
            size,
        }
    }
}

/// Extra response headers a policy wants on an allowed request (rate limit, quota).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Headers to add.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Decides what a caller may do. Implemented by `batlehub-rules`; the engine calls it, and
/// protocol crates only render its answers.
///
/// Every method but [`Policy::decide`] has a permissive default, so a simple policy only
/// implements RBAC.
pub trait Policy: Send + Sync + Debug + 'static {
    /// RBAC: whether the identity holds the permission.
    fn decide(&self, identity: &Identity, access: &Access<'_>) -> Decision;

    /// Admission of any request (rate limits). `Err(Error::TooManyRequests)` refuses it.
    fn admit<'a>(&'a self, cx: PolicyCx<'a>) -> BoxFuture<'a, Result<Outcome>> {
        let _ = cx;
        Box::pin(async { Ok(Outcome::default()) })
    }

    /// Package-level access (visibility, whole-package blocks). `Err(Error::NotFound)` hides
    /// the package; `Err(Error::Denied)` refuses it with a reason.
    fn package<'a>(&'a self, cx: PolicyCx<'a>, package: &'a str) -> BoxFuture<'a, Result<()>> {
        let _ = (cx, package);
        Box::pin(async { Ok(()) })
    }

    /// One decision per version: `Deny` hides it from listings and refuses its download.
    fn versions<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        package: &'a str,
        versions: &'a [VersionFacts],
    ) -> BoxFuture<'a, Result<Vec<Decision>>> {
        let _ = (cx, package);
        Box::pin(async move { Ok(vec![Decision::Allow; versions.len()]) })
    }

    /// Whether [`Policy::versions`] looks at [`VersionFacts::published_at`]. Protocol
    /// services skip work that only learns publish times (fetching upstream POMs, say)
    /// when it does not. The default is `true`.
    fn uses_publish_times(&self) -> bool {
        true
    }

    /// A request that names a tag (`latest`, a dist-tag) instead of a version.
    fn tag(&self, cx: PolicyCx<'_>, package: &str, tag: &str) -> Decision {
        let _ = (cx, package, tag);
        Decision::Allow
    }

    /// A publish: ownership, namespaces, versioning, signing, quota.
    fn publish<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        facts: &'a PublishFacts,
    ) -> BoxFuture<'a, Result<Outcome>> {
        let _ = (cx, facts);
        Box::pin(async { Ok(Outcome::default()) })
    }

    /// Limits that must still hold when a publish commits (quotas), or `None` (the default)
    /// when there are none. [`Policy::publish`] checks them early, when the upload arrives;
    /// two uploads of one caller can both pass that check and together exceed the limit,
    /// so the engine runs this check again with the caller's commits serialized (in this
    /// process and, on an index shared by replicas, across them), right before the index
    /// rows are written. `Err` refuses the commit.
    fn commit<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        facts: &'a CommitFacts,
    ) -> Option<BoxFuture<'a, Result<()>>> {
        let _ = (cx, facts);
        None
    }

    /// Changes to an existing package (yank, deprecate, tags, unpublish): ownership.
    fn manage<'a>(&'a self, cx: PolicyCx<'a>, package: &'a str) -> BoxFuture<'a, Result<()>> {
        let _ = (cx, package);
        Box::pin(async { Ok(()) })
    }
}

/// A short key naming a set of denied versions and their reasons, for renderings that hide
/// them (npm packuments, PyPI pages) to be cached per set: empty when nothing is denied.
#[must_use]
pub fn denials_key<'a>(denied: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut any = false;
    for (version, reason) in denied {
        any = true;
        h.update(version.as_bytes());
        h.update([0]);
        h.update(reason.as_bytes());
        h.update([0]);
    }
    if any {
        hex::encode(&h.finalize()[..16])
    } else {
        String::new()
    }
}

/// Whether a principal's `group` satisfies a configured `pattern`.
///
/// Groups arrive namespaced by provider (`oidc:team-a`). A pattern `*:team-a` matches
/// `team-a` from any provider; `oidc:team-a` only that provider's; a bare `team-a` only
/// groups configured locally (`static:team-a`, or un-namespaced), so an external identity
/// provider cannot mint its way into a locally named group.
#[must_use]
pub fn group_matches(pattern: &str, group: &str) -> bool {
    if pattern == group {
        return true;
    }
    if let Some(bare) = pattern.strip_prefix("*:") {
        return group == bare || group.split_once(':').is_some_and(|(_, g)| g == bare);
    }
    !pattern.contains(':') && group.strip_prefix("static:") == Some(pattern)
}

/// Whether `identity` is one of `owners` (a user by principal id, or a member of an owning
/// group, matched with [`group_matches`]).
#[must_use]
pub fn is_owner(identity: &Identity, owners: &[Owner]) -> bool {
    let Some(p) = identity.principal() else {
        return false;
    };
    owners.iter().any(|o| match o {
        Owner::User(u) => *u == p.key(),
        Owner::Group(g) => p.groups.iter().any(|mine| group_matches(g, mine)),
    })
}

/// The ownership rule: an admin, or an owner of `package`, or anyone while the package has
/// no owner (the first publisher becomes its owner).
///
/// # Errors
/// [`Error::Denied`](crate::Error::Denied) (rule `ownership`) naming the owners; storage
/// errors.
pub async fn check_ownership(cx: PolicyCx<'_>, package: &str) -> Result<()> {
    let identity = &cx.caller.identity;
    if identity.role() == Role::Admin {
        return Ok(());
    }
    let owners = cx.index.owners(cx.registry, package).await?;
    if owners.is_empty() || is_owner(identity, &owners) {
        return Ok(());
    }
    let list: Vec<String> = owners
        .iter()
        .map(|o| match o {
            Owner::User(u) => u.clone(),
            Owner::Group(g) => format!("group {g}"),
        })
        .collect();
    Err(crate::error::Error::Denied(crate::error::Denial {
        rule: "ownership".into(),
        reason: format!(
            "`{}` is not an owner of `{package}` (owners: {})",
            identity.name(),
            list.join(", ")
        ),
        eligible_at: None,
    }))
}

/// Allows everything; for tests and fully trusted setups.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _identity: &Identity, _access: &Access<'_>) -> Decision {
        Decision::Allow
    }

    fn uses_publish_times(&self) -> bool {
        false
    }
}

/// The policy used when none is configured: anonymous callers read, authenticated users
/// also publish, admins do everything; a package's versions, tags and yanks are its owners'
/// (the first publisher becomes the owner; [`check_ownership`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    fn uses_publish_times(&self) -> bool {
        false
    }

    fn publish<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        facts: &'a PublishFacts,
    ) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            // Owners outlive their package and may be assigned before its first publish:
            // an unpublished or reserved name stays theirs.
            check_ownership(cx, &facts.package).await?;
            Ok(Outcome::default())
        })
    }

    fn manage<'a>(&'a self, cx: PolicyCx<'a>, package: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(check_ownership(cx, package))
    }

    fn decide(&self, identity: &Identity, access: &Access<'_>) -> Decision {
        use crate::model::{Permission, Role};
        let allowed = match (identity, access.permission) {
            (Identity::Invalid(_), _) => false,
            (_, Permission::ReleasesRead | Permission::SourceRead) => true,
            (Identity::User(_), Permission::Publish) => true,
            (Identity::User(p), Permission::All) => p.role == Role::Admin,
            _ => false,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(crate::error::Denial {
                rule: "rbac".into(),
                reason: format!(
                    "{} `{}` lacks permission {} on registry `{}`",
                    identity.role(),
                    identity.name(),
                    access.permission,
                    access.registry
                ),
                eligible_at: None,
            })
        }
    }
}
