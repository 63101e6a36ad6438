//! Policy configuration as the reference server's TOML spells it (`[[registries.rules]]`,
//! `[registries.versioning]`, `[registries.signing]`, `[registries.quota]`,
//! `[registries.rate_limit]`).

use batlehub_core::Role;
use serde::Deserialize;

use crate::rbac::RbacConfig;

/// Everything policy-related in one `[[registries]]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `[registries.rbac]`.
    pub rbac: Option<RbacConfig>,
    /// `[[registries.rules]]`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// `[registries.versioning]`.
    pub versioning: Option<VersioningConfig>,
    /// `[registries.signing]`.
    pub signing: Option<SigningConfig>,
    /// `[registries.quota]`.
    pub quota: Option<QuotaConfig>,
    /// `[registries.rate_limit]`.
    pub rate_limit: Option<RateLimitConfig>,
}

fn admin_only() -> Vec<Role> {
    vec![Role::Admin]
}

/// One `[[registries.rules]]` entry, by `kind`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleConfig {
    /// Versions younger than `min_age_secs` are hidden and refused.
    ReleaseAgeGate {
        /// Minimum age in seconds.
        min_age_secs: u64,
        /// Roles the gate does not apply to (default: admin).
        #[serde(default = "admin_only")]
        bypass_roles: Vec<Role>,
        /// Refuse versions whose publish time is unknown (default: let them through).
        #[serde(default)]
        deny_missing_timestamp: bool,
    },
    /// Requests naming `latest` or another tag instead of a version are refused.
    DenyLatest {
        /// Roles allowed to use tags anyway (default: admin).
        #[serde(default = "admin_only")]
        bypass_roles: Vec<Role>,
    },
    /// Allow and block lists of versions for matching packages.
    VersionGate {
        /// Package name, or a glob (`@acme/*`).
        package: String,
        /// When not empty, only versions matching an entry are allowed.
        #[serde(default)]
        allow: Vec<String>,
        /// Versions matching an entry are refused.
        #[serde(default)]
        block: Vec<String>,
    },
}

/// `[registries.versioning]`: what versions may be published.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VersioningConfig {
    /// Versions must be semver 2.0.
    #[serde(default)]
    pub enforce_semver: bool,
    /// Pre-releases (`1.0.0-rc.1`) may be published (default true).
    #[serde(default = "yes")]
    pub allow_prerelease: bool,
    /// Versions must match this regex.
    pub version_pattern: Option<String>,
}

fn yes() -> bool {
    true
}

/// `[registries.signing]`: detached ed25519 signatures over the artifact's sha256 digest.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// Refuse uploads without a signature.
    #[serde(default)]
    pub required: bool,
    /// Accepted `X-Signature-Type` values (default: `ed25519`).
    #[serde(default = "ed25519_only")]
    pub allowed_types: Vec<String>,
    /// Trusted ed25519 public keys, base64 (32 bytes each).
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

fn ed25519_only() -> Vec<String> {
    vec!["ed25519".into()]
}

/// Block or only warn.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Refuse.
    #[default]
    Block,
    /// Allow, with a warning header.
    Warn,
}

/// `[registries.quota]`: per user, per registry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Bytes of published files.
    pub max_storage_bytes_per_user: Option<u64>,
    /// Distinct packages published to.
    pub max_packages_per_user: Option<u64>,
    /// `block` (default) or `warn`.
    #[serde(default)]
    pub enforcement: Enforcement,
}

/// `[registries.rate_limit]`: per user (per client IP when anonymous) and per group pool.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per window per user or IP.
    pub requests_per_window: u64,
    /// Window length (default 60 s).
    #[serde(default = "sixty")]
    pub window_secs: u64,
    /// `block` (default) or `warn`.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Pools shared by a group's members, on top of the personal limit.
    #[serde(default)]
    pub groups: Vec<GroupPool>,
}

fn sixty() -> u64 {
    60
}

/// `[[registries.rate_limit.groups]]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupPool {
    /// Group name (matched like RBAC groups).
    pub group: String,
    /// Requests per window for the whole group.
    pub requests_per_window: u64,
}
