//! `RegistryPolicy`: RBAC plus every supply-chain rule of one registry, behind the core's
//! [`Policy`] trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use batlehub_core::model::{Access, Decision, Visibility};
use batlehub_core::policy::{
    CommitFacts, Outcome, PolicyCx, PublishFacts, VersionFacts, check_ownership, is_owner,
};
use batlehub_core::{Denial, Error, Identity, Policy, Result, Role};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use http::{HeaderName, HeaderValue};

use crate::Error as ConfigError;
use crate::config::{
    Enforcement, PolicyConfig, QuotaConfig, RateLimitConfig, RuleConfig, SigningConfig,
};
use crate::matching::{VersionSpec, glob_match, group_matches};
use crate::rbac::Rbac;

/// RBAC and the supply-chain rules of one registry.
#[derive(Debug, Clone)]
pub struct RegistryPolicy {
    rbac: Rbac,
    age_gate: Option<AgeGate>,
    deny_latest: Option<Vec<Role>>,
    version_gates: Vec<VersionGate>,
    versioning: Option<Versioning>,
    signing: Option<Signing>,
    quota: Option<QuotaConfig>,
    rate_limit: Option<RateLimitConfig>,
    /// Per registry, the start of the last rate window whose predecessors' counters were
    /// swept.
    rate_swept: Arc<Mutex<HashMap<String, i64>>>,
}

#[derive(Debug, Clone)]
struct AgeGate {
    min_age: Duration,
    bypass: Vec<Role>,
    deny_missing: bool,
}

#[derive(Debug, Clone)]
struct VersionGate {
    package: String,
    allow: Vec<VersionSpec>,
    block: Vec<VersionSpec>,
}

#[derive(Debug, Clone)]
struct Versioning {
    enforce_semver: bool,
    allow_prerelease: bool,
    pattern: Option<regex::Regex>,
}

#[derive(Clone)]
struct Signing {
    required: bool,
    allowed_types: Vec<String>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing")
            .field("required", &self.required)
            .field("allowed_types", &self.allowed_types)
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn invalid(path: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidPermission {
        path,
        reason: reason.into(),
    }
}

fn deny(rule: &str, reason: String, eligible_at: Option<DateTime<Utc>>) -> Denial {
    Denial {
        rule: rule.into(),
        reason,
        eligible_at,
    }
}

impl RegistryPolicy {
    /// Builds the policy from configuration; `path` prefixes error locations
    /// (`registries[0] (npm)`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad entry (unknown permission, bad regex, bad key, bad
    /// version spec).
    pub fn from_config(config: &PolicyConfig, path: &str) -> Result<Self, ConfigError> {
        let rbac = Rbac::from_config(
            &config.rbac.clone().unwrap_or_default(),
            &format!("{path}.rbac"),
        )?;
        let mut policy = Self {
            rbac,
            age_gate: None,
            deny_latest: None,
            version_gates: Vec::new(),
            versioning: None,
            signing: None,
            quota: config.quota.clone(),
            rate_limit: config.rate_limit.clone(),
            rate_swept: Arc::default(),
        };
        for (i, rule) in config.rules.iter().enumerate() {
            let at = format!("{path}.rules[{i}]");
            match rule {
                RuleConfig::ReleaseAgeGate {
                    min_age_secs,
                    bypass_roles,
                    deny_missing_timestamp,
                } => {
                    if policy.age_gate.is_some() {
                        return Err(invalid(at, "only one release_age_gate per registry"));
                    }
                    let secs = i64::try_from(*min_age_secs)
                        .map_err(|_| invalid(at.clone(), "min_age_secs too large"))?;
                    policy.age_gate = Some(AgeGate {
                        min_age: Duration::seconds(secs),
                        bypass: bypass_roles.clone(),
                        deny_missing: *deny_missing_timestamp,
                    });
                }
                RuleConfig::DenyLatest { bypass_roles } => {
                    policy.deny_latest = Some(bypass_roles.clone())
                }
                RuleConfig::VersionGate {
                    package,
                    allow,
                    block,
                } => {
                    for (list, name) in [(allow, "allow"), (block, "block")] {
                        for (j, spec) in list.iter().enumerate() {
                            if spec.trim().is_empty() {
                                return Err(invalid(
                                    format!("{at}.{name}[{j}]"),
                                    "empty version spec",
                                ));
                            }
                        }
                    }
                    policy.version_gates.push(VersionGate {
                        package: package.clone(),
                        allow: allow.iter().map(|s| VersionSpec::parse(s)).collect(),
                        block: block.iter().map(|s| VersionSpec::parse(s)).collect(),
                    });
                }
            }
        }
        if let Some(v) = &config.versioning {
            let pattern = v
                .version_pattern
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| {
                    invalid(format!("{path}.versioning.version_pattern"), e.to_string())
                })?;
            policy.versioning = Some(Versioning {
                enforce_semver: v.enforce_semver,
                allow_prerelease: v.allow_prerelease,
                pattern,
            });
        }
        if let Some(s) = &config.signing {
            policy.signing = Some(Self::signing(s, &format!("{path}.signing"))?);
        }
        if let Some(rl) = &config.rate_limit
            && (rl.window_secs == 0 || rl.requests_per_window == 0)
        {
            return Err(invalid(
                format!("{path}.rate_limit"),
                "requests_per_window and window_secs must be positive",
            ));
        }
        Ok(policy)
    }

    fn signing(s: &SigningConfig, path: &str) -> Result<Signing, ConfigError> {
        let mut keys = Vec::new();
        for (i, k) in s.trusted_keys.iter().enumerate() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|e| {
                    invalid(
                        format!("{path}.trusted_keys[{i}]"),
                        format!("not base64: {e}"),
                    )
                })?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| {
                invalid(
                    format!("{path}.trusted_keys[{i}]"),
                    "an ed25519 public key is 32 bytes",
                )
            })?;
            keys.push(
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|e| invalid(format!("{path}.trusted_keys[{i}]"), e.to_string()))?,
            );
        }
        if let Some(t) = s.allowed_types.iter().find(|t| t.as_str() != "ed25519") {
            return Err(invalid(
                format!("{path}.allowed_types"),
                format!("unsupported signature type `{t}` (supported: ed25519)"),
            ));
        }
        if s.required && keys.is_empty() {
            return Err(invalid(
                format!("{path}.trusted_keys"),
                "required signing needs at least one trusted key",
            ));
        }
        Ok(Signing {
            required: s.required,
            allowed_types: s.allowed_types.clone(),
            keys,
        })
    }

    /// Only RBAC, no other rule.
    #[must_use]
    pub fn rbac_only(rbac: Rbac) -> Self {
        Self {
            rbac,
            age_gate: None,
            deny_latest: None,
            version_gates: Vec::new(),
            versioning: None,
            signing: None,
            quota: None,
            rate_limit: None,
            rate_swept: Arc::default(),
        }
    }
}

fn is_admin(identity: &Identity) -> bool {
    identity.role() == Role::Admin
}

fn in_group(identity: &Identity, pattern: &str) -> bool {
    identity
        .principal()
        .is_some_and(|p| p.groups.iter().any(|g| group_matches(pattern, g)))
}

fn header(name: &'static str, value: impl std::fmt::Display) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(&value.to_string())
        .ok()
        .map(|v| (HeaderName::from_static(name), v))
}

impl RegistryPolicy {
    async fn namespace_of<'a>(
        cx: PolicyCx<'a>,
        package: &str,
    ) -> Result<Option<batlehub_core::model::Namespace>> {
        let all = cx.index.namespaces(cx.registry).await?;
        Ok(all
            .into_iter()
            .filter(|n| package.starts_with(&n.prefix))
            .max_by_key(|n| n.prefix.len()))
    }

    fn version_denial(
        &self,
        cx: PolicyCx<'_>,
        package: &str,
        v: &VersionFacts,
        blocks: &[(VersionSpec, batlehub_core::model::Block)],
        gates: &[&VersionGate],
    ) -> Option<Denial> {
        for (spec, b) in blocks {
            if spec.matches(&v.version) {
                return Some(deny(
                    "block",
                    format!("{package}@{} is blocked: {}", v.version, b.reason),
                    None,
                ));
            }
        }
        for g in gates {
            if let Some(spec) = g.block.iter().find(|s| s.matches(&v.version)) {
                return Some(deny(
                    "version_gate",
                    format!(
                        "{package}@{} is refused by the version gate (blocked: {})",
                        v.version,
                        spec.as_str()
                    ),
                    None,
                ));
            }
            if !g.allow.is_empty() && !g.allow.iter().any(|s| s.matches(&v.version)) {
                return Some(deny(
                    "version_gate",
                    format!(
                        "{package}@{} is not in the version gate's allow list ({})",
                        v.version,
                        g.allow
                            .iter()
                            .map(VersionSpec::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None,
                ));
            }
        }
        if let Some(gate) = &self.age_gate
            && !gate.bypass.contains(&cx.caller.identity.role())
        {
            match v.published_at {
                Some(at) => {
                    let eligible = at + gate.min_age;
                    if eligible > cx.now {
                        return Some(deny(
                            "release_age_gate",
                            format!(
                                "{package}@{} was published {} and is younger than the release-age gate of {}; eligible from {}",
                                v.version,
                                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                human(gate.min_age),
                                eligible.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            ),
                            Some(eligible),
                        ));
                    }
                }
                None if gate.deny_missing => {
                    return Some(deny(
                        "release_age_gate",
                        format!(
                            "{package}@{} has no known publish time, and the release-age gate refuses such versions",
                            v.version
                        ),
                        None,
                    ));
                }
                None => {}
            }
        }
        None
    }

    async fn rate(&self, cx: PolicyCx<'_>, rl: &RateLimitConfig) -> Result<Outcome> {
        let window = i64::try_from(rl.window_secs).unwrap_or(i64::MAX).max(1);
        let now = cx.now.timestamp();
        let start_secs = now - now.rem_euclid(window);
        let start = DateTime::from_timestamp(start_secs, 0).unwrap_or(cx.now);
        let reset = u64::try_from(start_secs + window - now).unwrap_or(1).max(1);
        let who = match cx.caller.identity.principal() {
            Some(p) => format!("u:{}", p.key()),
            None => format!(
                "ip:{}",
                cx.caller
                    .client_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
        };
        let key = format!("rl:{}:{who}", cx.registry);
        // Once per window, the first request deletes the counters of earlier windows of
        // every caller (one-off client addresses are never hit again to clean their own).
        let sweep = {
            let mut swept = self
                .rate_swept
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let last = swept.entry(cx.registry.to_owned()).or_insert(i64::MIN);
            std::mem::replace(last, start_secs) < start_secs
        };
        if sweep
            && let Err(e) = cx
                .index
                .rate_sweep(&format!("rl:{}:", cx.registry), start)
                .await
        {
            tracing::warn!(registry = cx.registry, error = %e, "sweeping old rate counters failed");
        }
        let count = cx.index.rate_hit(&key, start).await?;
        let mut outcome = Outcome::default();
        let remaining = rl.requests_per_window.saturating_sub(count);
        outcome
            .headers
            .extend(header("x-ratelimit-limit", rl.requests_per_window));
        outcome
            .headers
            .extend(header("x-ratelimit-remaining", remaining));
        outcome.headers.extend(header("x-ratelimit-reset", reset));
        let mut exceeded = (count > rl.requests_per_window).then(|| {
            (
                format!(
                    "rate limit of {} requests per {} s exceeded for {}",
                    rl.requests_per_window,
                    rl.window_secs,
                    cx.caller.identity.name()
                ),
                rl.requests_per_window,
            )
        });
        for pool in &rl.groups {
            if exceeded.is_some() || !in_group(&cx.caller.identity, &pool.group) {
                continue;
            }
            let n = cx
                .index
                .rate_hit(&format!("rl:{}:g:{}", cx.registry, pool.group), start)
                .await?;
            if n > pool.requests_per_window {
                exceeded = Some((
                    format!(
                        "group `{}` rate limit of {} requests per {} s exceeded",
                        pool.group, pool.requests_per_window, rl.window_secs
                    ),
                    pool.requests_per_window,
                ));
            }
        }
        match (exceeded, rl.enforcement) {
            (Some((reason, limit)), Enforcement::Block) => Err(Error::TooManyRequests {
                reason,
                retry_after: reset,
                limit,
            }),
            (Some((reason, _)), Enforcement::Warn) => {
                outcome
                    .headers
                    .extend(header("x-ratelimit-warning", reason));
                Ok(outcome)
            }
            (None, _) => Ok(outcome),
        }
    }

    async fn quota(
        &self,
        cx: PolicyCx<'_>,
        q: &QuotaConfig,
        package: &str,
        size: u64,
    ) -> Result<Outcome> {
        let Some(p) = cx.caller.identity.principal() else {
            return Ok(Outcome::default());
        };
        let who = p.key();
        let usage = cx.index.usage(cx.registry, &who).await?;
        let bytes = usage.bytes.saturating_add(size);
        let packages = usage.packages + u64::from(usage_lacks(cx, &who, package).await?);
        let mut outcome = Outcome::default();
        let mut over = Vec::new();
        if let Some(max) = q.max_storage_bytes_per_user {
            outcome.headers.extend(header("x-quota-bytes-used", bytes));
            outcome.headers.extend(header("x-quota-bytes-limit", max));
            if bytes > max {
                over.push(format!(
                    "storage quota of {max} bytes exceeded ({bytes} bytes with this upload)"
                ));
            }
        }
        if let Some(max) = q.max_packages_per_user {
            outcome
                .headers
                .extend(header("x-quota-packages-used", packages));
            outcome
                .headers
                .extend(header("x-quota-packages-limit", max));
            if packages > max {
                over.push(format!("package quota of {max} packages exceeded"));
            }
        }
        if over.is_empty() {
            return Ok(outcome);
        }
        let reason = format!("{}: {}", p.id, over.join("; "));
        match q.enforcement {
            Enforcement::Block => Err(Error::Denied(deny("quota", reason, None))),
            Enforcement::Warn => {
                outcome.headers.extend(header("x-quota-warning", reason));
                Ok(outcome)
            }
        }
    }

    fn check_signature(
        &self,
        s: &Signing,
        facts: &PublishFacts,
    ) -> Result<Option<(HeaderName, HeaderValue)>> {
        let Some(sig) = &facts.signature else {
            if s.required {
                return Err(Error::Unprocessable(
                    "this registry requires signed uploads: send X-Artifact-Signature (base64 ed25519 over the artifact's sha256) and X-Signature-Type: ed25519".into(),
                ));
            }
            return Ok(None);
        };
        if !s.allowed_types.contains(&sig.kind) {
            return Err(Error::Unprocessable(format!(
                "signature type `{}` is not allowed here (allowed: {})",
                sig.kind,
                s.allowed_types.join(", ")
            )));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig.value.trim())
            .map_err(|_| Error::Unprocessable("X-Artifact-Signature is not valid base64".into()))?;
        let sig_bytes: [u8; 64] = raw
            .try_into()
            .map_err(|_| Error::Unprocessable("an ed25519 signature is 64 bytes".into()))?;
        let signature = ed25519_dalek::Signature::from_bytes(&sig_bytes);
        if s.keys
            .iter()
            .any(|k| k.verify_strict(&facts.sha256, &signature).is_ok())
        {
            Ok(header("x-signature-verified", "ed25519"))
        } else if s.keys.is_empty() {
            // Stored and returned, but nothing to verify against.
            Ok(None)
        } else {
            Err(Error::Unprocessable(
                "the signature does not verify against any trusted key".into(),
            ))
        }
    }
}

/// Whether `principal` has not yet published to `package`.
async fn usage_lacks(cx: PolicyCx<'_>, principal: &str, package: &str) -> Result<bool> {
    let Some(pkg) = cx.index.package(cx.registry, package).await? else {
        return Ok(true);
    };
    Ok(!pkg
        .versions
        .iter()
        .any(|v| v.publisher.as_deref() == Some(principal)))
}

fn human(d: Duration) -> String {
    let s = d.num_seconds();
    if s % 86_400 == 0 && s >= 86_400 {
        format!("{} day(s)", s / 86_400)
    } else if s % 3600 == 0 && s >= 3600 {
        format!("{} hour(s)", s / 3600)
    } else {
        format!("{s} s")
    }
}

impl Policy for RegistryPolicy {
    fn decide(&self, identity: &Identity, access: &Access<'_>) -> Decision {
        self.rbac.decide(identity, access)
    }

    fn admit<'a>(&'a self, cx: PolicyCx<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            match &self.rate_limit {
                Some(rl) => self.rate(cx, rl).await,
                None => Ok(Outcome::default()),
            }
        })
    }

    fn package<'a>(&'a self, cx: PolicyCx<'a>, package: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let identity = &cx.caller.identity;
            let hidden = || Error::NotFound(format!("package `{package}` not found"));
            match cx.index.visibility(cx.registry, package).await? {
                Visibility::Public => {}
                Visibility::Internal => {
                    if identity.principal().is_none() {
                        return Err(hidden());
                    }
                }
                Visibility::Team => {
                    if !is_admin(identity) {
                        let ns = Self::namespace_of(cx, package).await?;
                        let member = ns.as_ref().is_some_and(|n| in_group(identity, &n.group));
                        let owner =
                            is_owner(identity, &cx.index.owners(cx.registry, package).await?);
                        if !member && !owner {
                            return Err(hidden());
                        }
                    }
                }
            }
            for b in cx.index.blocks_for(cx.registry, package).await? {
                if b.versions.is_none() {
                    return Err(Error::Denied(deny(
                        "block",
                        format!("package `{package}` is blocked: {}", b.reason),
                        None,
                    )));
                }
            }
            Ok(())
        })
    }

    fn versions<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        package: &'a str,
        versions: &'a [VersionFacts],
    ) -> BoxFuture<'a, Result<Vec<Decision>>> {
        Box::pin(async move {
            // Everything that does not depend on the version is worked out once.
            let blocks: Vec<_> = cx
                .index
                .blocks_for(cx.registry, package)
                .await?
                .into_iter()
                .filter_map(|b| Some((VersionSpec::parse(b.versions.as_deref()?), b)))
                .collect();
            let gates: Vec<&VersionGate> = self
                .version_gates
                .iter()
                .filter(|g| glob_match(&g.package, package))
                .collect();
            Ok(versions
                .iter()
                .map(
                    |v| match self.version_denial(cx, package, v, &blocks, &gates) {
                        Some(d) => Decision::Deny(d),
                        None => Decision::Allow,
                    },
                )
                .collect())
        })
    }

    fn uses_publish_times(&self) -> bool {
        self.age_gate.is_some()
    }

    fn tag(&self, cx: PolicyCx<'_>, package: &str, tag: &str) -> Decision {
        match &self.deny_latest {
            Some(bypass) if !bypass.contains(&cx.caller.identity.role()) => Decision::Deny(deny(
                "deny_latest",
                format!(
                    "requests for `{package}@{tag}` name a tag, which this registry refuses: ask for an exact version"
                ),
                None,
            )),
            _ => Decision::Allow,
        }
    }

    fn publish<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        facts: &'a PublishFacts,
    ) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let identity = &cx.caller.identity;
            if !is_admin(identity)
                && let Some(ns) = Self::namespace_of(cx, &facts.package).await?
                && !in_group(identity, &ns.group)
            {
                return Err(Error::Denied(deny(
                    "namespace",
                    format!(
                        "`{}` is in the namespace `{}` of group `{}`, and `{}` is not a member",
                        facts.package,
                        ns.prefix,
                        ns.group,
                        identity.name()
                    ),
                    None,
                )));
            }
            // Owners outlive their package and may be assigned before its first publish:
            // an unpublished or reserved name stays theirs.
            check_ownership(cx, &facts.package).await?;
            if let Some(v) = &self.versioning {
                let parsed = semver::Version::parse(&facts.version);
                if v.enforce_semver && parsed.is_err() {
                    return Err(Error::Unprocessable(format!(
                        "version `{}` is not semver 2.0 (this registry enforces semver)",
                        facts.version
                    )));
                }
                if !v.allow_prerelease && parsed.as_ref().is_ok_and(|p| !p.pre.is_empty()) {
                    return Err(Error::Unprocessable(format!(
                        "version `{}` is a pre-release, which this registry does not accept",
                        facts.version
                    )));
                }
                if let Some(re) = &v.pattern
                    && !re.is_match(&facts.version)
                {
                    return Err(Error::Unprocessable(format!(
                        "version `{}` does not match the required pattern `{}`",
                        facts.version,
                        re.as_str()
                    )));
                }
            }
            let mut outcome = Outcome::default();
            if let Some(s) = &self.signing {
                outcome.headers.extend(self.check_signature(s, facts)?);
            }
            if let Some(q) = &self.quota {
                outcome
                    .headers
                    .extend(self.quota(cx, q, &facts.package, facts.size).await?.headers);
            }
            Ok(outcome)
        })
    }

    fn commit<'a>(
        &'a self,
        cx: PolicyCx<'a>,
        facts: &'a CommitFacts,
    ) -> Option<BoxFuture<'a, Result<()>>> {
        let q = self.quota.as_ref()?;
        if q.enforcement == Enforcement::Warn {
            return None;
        }
        Some(Box::pin(async move {
            self.quota(cx, q, &facts.package, facts.size).await?;
            Ok(())
        }))
    }

    fn manage<'a>(&'a self, cx: PolicyCx<'a>, package: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(check_ownership(cx, package))
    }
}
