//! The policy extension point: `batlehub-rules` implements it; the engine calls it.

use std::fmt::Debug;

use crate::model::{Access, Decision, Identity};

/// Decides whether an identity may perform an access.
///
/// Implemented by `batlehub-rules`; a closure `Fn(&Identity, &Access) -> Decision` works too.
pub trait Policy: Send + Sync + Debug + 'static {
    /// The decision, with its explanation when it is a refusal.
    fn decide(&self, identity: &Identity, access: &Access<'_>) -> Decision;
}

/// Allows everything; for tests and fully trusted setups.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn decide(&self, _identity: &Identity, _access: &Access<'_>) -> Decision {
        Decision::Allow
    }
}

/// The policy used when none is configured: anonymous callers read, authenticated users
/// also publish, admins do everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
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
