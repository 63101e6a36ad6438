//! Role- and group-based permissions per registry.

use std::collections::{BTreeMap, BTreeSet};

use batlehub_core::model::{Access, Decision};
use batlehub_core::{Denial, Identity, Permission, Policy, Role};
use serde::Deserialize;

use crate::Error;
use crate::matching::group_matches;

/// `[registries.rbac]` as written in configuration: permission strings per role and group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    /// Permissions of anonymous callers.
    pub anonymous: Option<Vec<String>>,
    /// Permissions of users (plus anonymous ones).
    pub user: Option<Vec<String>>,
    /// Permissions of admins (plus user ones).
    pub admin: Option<Vec<String>>,
    /// Permissions by group name; `*:team-a` matches `team-a` from any provider.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// Per-registry permissions by role (inherited upwards) and by group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rbac {
    anonymous: BTreeSet<Permission>,
    user: BTreeSet<Permission>,
    admin: BTreeSet<Permission>,
    groups: BTreeMap<String, BTreeSet<Permission>>,
}

impl Default for Rbac {
    /// Anonymous callers read, users also publish, admins do everything.
    fn default() -> Self {
        let read = [Permission::ReleasesRead, Permission::SourceRead];
        Self {
            anonymous: read.into_iter().collect(),
            user: read.into_iter().chain([Permission::Publish]).collect(),
            admin: [Permission::All].into_iter().collect(),
            groups: BTreeMap::new(),
        }
    }
}

fn parse(path: &str, list: &[String]) -> Result<BTreeSet<Permission>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse().map_err(|reason| Error::InvalidPermission {
                path: format!("{path}[{i}]"),
                reason,
            })
        })
        .collect()
}

impl Rbac {
    /// Builds the table from configuration; roles left out keep their defaults, and each
    /// role inherits the permissions of the roles below it.
    ///
    /// # Errors
    /// [`Error::InvalidPermission`] naming the entry.
    pub fn from_config(config: &RbacConfig, path: &str) -> Result<Self, Error> {
        let d = Rbac::default();
        let anonymous = match &config.anonymous {
            Some(l) => parse(&format!("{path}.anonymous"), l)?,
            None => d.anonymous,
        };
        let mut user = match &config.user {
            Some(l) => parse(&format!("{path}.user"), l)?,
            None => d.user,
        };
        user.extend(anonymous.iter().copied());
        let mut admin = match &config.admin {
            Some(l) => parse(&format!("{path}.admin"), l)?,
            None => d.admin,
        };
        admin.extend(user.iter().copied());
        let mut groups = BTreeMap::new();
        for (g, l) in &config.groups {
            groups.insert(g.clone(), parse(&format!("{path}.groups.{g}"), l)?);
        }
        Ok(Self {
            anonymous,
            user,
            admin,
            groups,
        })
    }

    fn role_set(&self, role: Role) -> &BTreeSet<Permission> {
        match role {
            Role::Anonymous => &self.anonymous,
            Role::User => &self.user,
            Role::Admin => &self.admin,
        }
    }

    /// Whether `identity` holds `permission` here.
    #[must_use]
    pub fn allows(&self, identity: &Identity, permission: Permission) -> bool {
        let has = |set: &BTreeSet<Permission>| {
            set.contains(&permission) || set.contains(&Permission::All)
        };
        if matches!(identity, Identity::Invalid(_)) {
            return false;
        }
        // Inheritance: every role holds what the roles below it hold.
        let role = identity.role();
        let roles = [Role::Anonymous, Role::User, Role::Admin];
        if roles
            .iter()
            .filter(|r| **r <= role)
            .any(|r| has(self.role_set(*r)))
        {
            return true;
        }
        let Some(principal) = identity.principal() else {
            return false;
        };
        self.groups.iter().any(|(pattern, set)| {
            has(set) && principal.groups.iter().any(|g| group_matches(pattern, g))
        })
    }
}

impl Policy for Rbac {
    fn decide(&self, identity: &Identity, access: &Access<'_>) -> Decision {
        if self.allows(identity, access.permission) {
            return Decision::Allow;
        }
        Decision::Deny(Denial {
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

#[cfg(test)]
mod tests {
    use super::*;
    use batlehub_core::Principal;

    fn user(role: Role, groups: &[&str]) -> Identity {
        Identity::User(Principal {
            id: "u".into(),
            role,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            provider: "static".into(),
        })
    }

    #[test]
    fn defaults_and_inheritance() {
        let r = Rbac::default();
        assert!(r.allows(&Identity::Anonymous, Permission::ReleasesRead));
        assert!(!r.allows(&Identity::Anonymous, Permission::Publish));
        assert!(r.allows(&user(Role::User, &[]), Permission::Publish));
        assert!(r.allows(&user(Role::Admin, &[]), Permission::All));
        assert!(!r.allows(&Identity::Invalid("x".into()), Permission::ReleasesRead));
    }

    #[test]
    fn config_groups_and_errors() {
        let cfg: RbacConfig = toml::from_str(
            "anonymous = []\nuser = [\"releases:read\"]\n[groups]\n\"*:team-a\" = [\"publish\"]\n",
        )
        .expect("toml");
        let r = Rbac::from_config(&cfg, "registries[0].rbac").expect("rbac");
        assert!(!r.allows(&Identity::Anonymous, Permission::ReleasesRead));
        assert!(!r.allows(&user(Role::User, &[]), Permission::Publish));
        assert!(r.allows(&user(Role::User, &["oidc:team-a"]), Permission::Publish));
        assert!(
            r.allows(&user(Role::Admin, &[]), Permission::ReleasesRead),
            "admin inherits user"
        );
        let bad = RbacConfig {
            user: Some(vec!["write".into()]),
            ..Default::default()
        };
        let e = Rbac::from_config(&bad, "registries[0].rbac").expect_err("bad");
        assert!(
            e.to_string().starts_with("registries[0].rbac.user[0]"),
            "{e}"
        );
    }
}
