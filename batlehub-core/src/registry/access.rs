//! Authorization, policy checks and audit.

use std::sync::Arc;

use http::StatusCode;

use crate::error::{Denial, Error, Result};
use crate::model::{Access, AuditEvent, Decision, Identity, LocalPackage, Mode, Permission};
use crate::policy::{Caller, Outcome, PolicyCx, PublishFacts, VersionFacts};

use super::Registry;

impl Registry {
    /// Checks that `identity` may do what needs `permission` (on `package`).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for invalid credentials, or when anonymous callers are refused;
    /// [`Error::Forbidden`] / [`Error::Denied`] for known callers refused by policy.
    pub fn authorize(
        &self,
        identity: &Identity,
        permission: Permission,
        package: Option<&str>,
    ) -> Result<()> {
        if let Identity::Invalid(reason) = identity {
            return Err(Error::Unauthorized(reason.clone()));
        }
        let access = Access {
            registry: self.name(),
            permission,
            package,
        };
        match self.inner.policy.decide(identity, &access) {
            Decision::Allow => Ok(()),
            Decision::Deny(denial) => match identity {
                Identity::Anonymous if denial.rule == "rbac" => Err(Error::Unauthorized(format!(
                    "authentication required: anonymous access to `{}` lacks {}",
                    self.name(),
                    permission
                ))),
                _ => Err(Error::Denied(denial)),
            },
        }
    }

    /// Refuses publishing in proxy mode.
    ///
    /// # Errors
    /// [`Error::MethodNotAllowed`] in proxy mode.
    pub fn ensure_publishable(&self) -> Result<()> {
        if self.mode().accepts_publish() {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed(format!(
                "registry `{}` is a proxy; publish to a local or hybrid registry",
                self.name()
            )))
        }
    }

    // ---- policy -------------------------------------------------------------------------

    pub(super) fn cx<'a>(&'a self, caller: &'a Caller) -> PolicyCx<'a> {
        PolicyCx {
            registry: self.name(),
            caller,
            index: self.index(),
            now: self.now(),
        }
    }

    /// Records an audit event for this registry (queued; written in batches).
    pub fn audit(
        &self,
        caller: &Caller,
        action: &str,
        package: Option<&str>,
        version: Option<&str>,
        outcome: std::result::Result<(), &Error>,
    ) {
        let (outcome, rule, reason) = match outcome {
            Ok(()) => ("allow", None, None),
            Err(Error::Denied(d)) => ("deny", Some(d.rule.clone()), Some(d.reason.clone())),
            Err(e) => (
                "deny",
                Some(rule_of(e).to_owned()),
                Some(e.client_message()),
            ),
        };
        self.inner.audit.record(AuditEvent {
            at: self.now(),
            registry: self.name().to_owned(),
            action: action.to_owned(),
            package: package.map(str::to_owned),
            version: version.map(str::to_owned),
            principal: caller.identity.key().into_owned(),
            outcome: outcome.to_owned(),
            rule,
            reason,
            client_ip: caller.client_ip.map(|ip| ip.to_string()),
        });
    }

    /// Admits a request (rate limits), returning headers to add to the response.
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when a limit is exhausted.
    pub async fn admit(&self, caller: &Caller) -> Result<Outcome> {
        self.inner.policy.admit(self.cx(caller)).await
    }

    /// Package-level access: RBAC, then visibility and whole-package blocks.
    ///
    /// # Errors
    /// [`Error::Unauthorized`]/[`Error::Denied`] from RBAC or a block; [`Error::NotFound`] when
    /// the package is hidden from this caller.
    pub async fn check_package(
        &self,
        caller: &Caller,
        permission: Permission,
        package: &str,
    ) -> Result<()> {
        self.authorize(&caller.identity, permission, Some(package))?;
        self.inner.policy.package(self.cx(caller), package).await
    }

    /// The local package `name` if it has at least one version, shared: the index hands
    /// out the same `Arc` until the package changes (see [`Index::package_shared`](crate::store::Index::package_shared)).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn local_package(&self, name: &str) -> Result<Option<Arc<LocalPackage>>> {
        Ok(self
            .index()
            .package_shared(self.name(), name)
            .await?
            .filter(|p| !p.versions.is_empty()))
    }

    /// Whether this registry's policy decides on publish times (a release-age gate): when
    /// not, protocol services need not work out when upstream versions were published.
    #[must_use]
    pub fn uses_publish_times(&self) -> bool {
        self.inner.policy.uses_publish_times()
    }

    /// One decision per version; denied versions are hidden from listings.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn version_decisions(
        &self,
        caller: &Caller,
        package: &str,
        versions: &[VersionFacts],
    ) -> Result<Vec<Decision>> {
        self.inner
            .policy
            .versions(self.cx(caller), package, versions)
            .await
    }

    /// Learns the publish times a release-age gate needs, without asking an upstream about
    /// every version: of the `facts` whose time is unknown, those policy would refuse if
    /// they had just been published are looked up with `time_of`, newest first (by
    /// `order`, ascending), at most `max` of them, concurrently. Others keep no time. Does
    /// nothing when policy ignores publish times.
    ///
    /// # Errors
    /// Storage errors deciding.
    pub async fn learn_publish_times<F, Fut>(
        &self,
        caller: &Caller,
        package: &str,
        facts: &mut [VersionFacts],
        max: usize,
        order: impl Fn(&str, &str) -> std::cmp::Ordering,
        time_of: F,
    ) -> Result<()>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Option<chrono::DateTime<chrono::Utc>>>,
    {
        if !self.uses_publish_times() {
            return Ok(());
        }
        let unknown: Vec<usize> = (0..facts.len())
            .filter(|&i| facts[i].published_at.is_none())
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let probe: Vec<VersionFacts> = unknown
            .iter()
            .map(|&i| VersionFacts {
                version: facts[i].version.clone(),
                published_at: Some(now),
            })
            .collect();
        let decisions = self.version_decisions(caller, package, &probe).await?;
        let mut wanted: Vec<usize> = unknown
            .into_iter()
            .zip(decisions)
            .filter(|(_, d)| matches!(d, Decision::Deny(_)))
            .map(|(i, _)| i)
            .collect();
        wanted.sort_by(|&a, &b| order(&facts[b].version, &facts[a].version));
        wanted.truncate(max);
        let times =
            futures::future::join_all(wanted.iter().map(|&i| time_of(facts[i].version.clone())))
                .await;
        for (i, t) in wanted.into_iter().zip(times) {
            facts[i].published_at = t;
        }
        Ok(())
    }

    /// Whether `version` may be downloaded: RBAC, package access, version rules. The
    /// decision is audited.
    ///
    /// # Errors
    /// As [`Registry::check_package`], plus [`Error::Denied`] from version rules.
    pub async fn check_download(
        &self,
        caller: &Caller,
        permission: Permission,
        package: &str,
        version: &VersionFacts,
    ) -> Result<()> {
        let outcome: Result<()> = async {
            self.check_package(caller, permission, package).await?;
            let decisions = self
                .version_decisions(caller, package, std::slice::from_ref(version))
                .await?;
            match decisions.into_iter().next() {
                Some(Decision::Deny(d)) => Err(Error::Denied(d)),
                _ => Ok(()),
            }
        }
        .await;
        match &outcome {
            Err(Error::NotFound(_)) => {}
            other => self.audit(
                caller,
                "download",
                Some(package),
                Some(&version.version),
                other.as_ref().map(|_| ()),
            ),
        }
        outcome
    }

    /// A request naming a tag instead of a version.
    ///
    /// # Errors
    /// [`Error::Denied`] when tags are refused.
    pub fn check_tag(&self, caller: &Caller, package: &str, tag: &str) -> Result<()> {
        match self.inner.policy.tag(self.cx(caller), package, tag) {
            Decision::Allow => Ok(()),
            Decision::Deny(d) => Err(Error::Denied(d)),
        }
    }

    /// Whether a publish may go ahead: mode, RBAC, then ownership, namespaces, versioning,
    /// signing and quota, and in a hybrid registry the shadowing guard: the first publish
    /// of a name that is not [claimed](Self::is_claimed) is refused when the upstream has
    /// that name (`probes` are the upstream paths that would list it, see
    /// [`Protocol::upstream_probes`](crate::protocol::Protocol::upstream_probes); with none,
    /// or when the upstream cannot be asked, it is refused too). Refusals are audited.
    ///
    /// Protocol handlers call [`Cx::check_publish`](crate::protocol::Cx::check_publish),
    /// which passes their protocol's probes.
    ///
    /// # Errors
    /// [`Error::MethodNotAllowed`] in proxy mode; RBAC errors; the policy's refusal;
    /// [`Error::Denied`] (rule `hybrid_shadowing`) for a name the upstream has;
    /// [`Error::Upstream`] when the upstream cannot say.
    pub async fn check_publish(
        &self,
        caller: &Caller,
        facts: &PublishFacts,
        probes: &[String],
    ) -> Result<Outcome> {
        let outcome: Result<Outcome> = async {
            self.ensure_publishable()?;
            self.authorize(&caller.identity, Permission::Publish, Some(&facts.package))?;
            let outcome = self.inner.policy.publish(self.cx(caller), facts).await?;
            self.check_shadowing(&facts.package, probes).await?;
            Ok(outcome)
        }
        .await;
        if let Err(e) = &outcome {
            self.audit(
                caller,
                "publish",
                Some(&facts.package),
                Some(&facts.version),
                Err(e),
            );
        }
        outcome
    }

    /// Whether `caller` may change an existing package (`action`: yank, deprecate, tag,
    /// unpublish, owners). The decision is audited.
    ///
    /// # Errors
    /// RBAC errors; [`Error::Denied`] when the caller is not an owner.
    pub async fn check_manage(&self, caller: &Caller, package: &str, action: &str) -> Result<()> {
        let outcome: Result<()> = async {
            self.ensure_publishable()?;
            self.authorize(&caller.identity, Permission::Publish, Some(package))?;
            self.inner.policy.manage(self.cx(caller), package).await
        }
        .await;
        self.audit(
            caller,
            action,
            Some(package),
            None,
            outcome.as_ref().map(|_| ()),
        );
        outcome
    }

    /// Takes one of `caller`'s upload slots ([`RegistryConfig::max_concurrent_uploads`](super::RegistryConfig::max_concurrent_uploads)),
    /// held until the returned slot is dropped. Callers are counted by principal, else by
    /// client address (one shared slot set for callers with neither).
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when the caller has that many uploads in progress.
    pub fn upload_slot(&self, caller: &Caller) -> Result<super::UploadSlot> {
        let key = match caller.identity.principal() {
            Some(p) => format!("u:{}", p.key()),
            None => match caller.client_ip {
                Some(ip) => format!("ip:{ip}"),
                None => "anonymous".to_owned(),
            },
        };
        let max = self.inner.config.max_concurrent_uploads.max(1);
        let mut uploads = self.inner.uploads.lock();
        let n = uploads.entry(key.clone()).or_insert(0);
        if *n >= max {
            return Err(Error::TooManyRequests {
                reason: format!(
                    "{max} uploads from this caller are already in progress; wait for one to finish"
                ),
                retry_after: 1,
                limit: u64::try_from(max).unwrap_or(u64::MAX),
            });
        }
        *n += 1;
        Ok(super::UploadSlot {
            uploads: self.inner.uploads.clone(),
            key,
        })
    }

    /// Whether `key` is claimed for local use: listed in [`RegistryConfig::claims`](super::RegistryConfig::claims)
    /// (exactly, or under a prefix ending in `*`), or under a namespace of this registry.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn is_claimed(&self, key: &str) -> Result<bool> {
        let configured = self
            .inner
            .config
            .claims
            .iter()
            .any(|c| match c.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == c,
            });
        if configured {
            return Ok(true);
        }
        Ok(self
            .index()
            .namespaces(self.name())
            .await?
            .iter()
            .any(|ns| key.starts_with(&ns.prefix)))
    }

    /// Whether reads of `key` are answered from this registry alone: always in local mode,
    /// never in proxy mode, and in hybrid mode when the package exists locally or its name
    /// is [claimed](Self::is_claimed) (a claimed name never falls through to the upstream,
    /// even before its first publish).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn is_local(&self, key: &str) -> Result<bool> {
        Ok(match self.mode() {
            Mode::Local => true,
            Mode::Proxy => false,
            Mode::Hybrid => {
                self.index().package_exists(self.name(), key).await? || self.is_claimed(key).await?
            }
        })
    }

    /// The hybrid shadowing guard of [`check_publish`](Self::check_publish).
    async fn check_shadowing(&self, key: &str, probes: &[String]) -> Result<()> {
        if self.mode() != Mode::Hybrid
            || self.index().package_exists(self.name(), key).await?
            || self.is_claimed(key).await?
        {
            return Ok(());
        }
        let refuse = |why: String| {
            Error::Denied(Denial {
                rule: "hybrid_shadowing".into(),
                reason: format!(
                    "{why}: a local package would shadow the upstream's for every client of hybrid registry `{}` (dependency confusion). An admin can claim the name for local use (the registry's `claims`, or a namespace)",
                    self.name()
                ),
                eligible_at: None,
            })
        };
        if probes.is_empty() {
            return Err(refuse(format!(
                "`{key}` is a new name and this protocol cannot check the upstream for it"
            )));
        }
        let client = self.upstream_client()?;
        for index in 0..client.roots().len() {
            for probe in probes {
                let url = client.url_for(index, probe)?;
                let status = client
                    .get(url, http::HeaderMap::new())
                    .await
                    .map_err(|e| {
                        Error::Upstream(format!(
                            "cannot tell whether `{key}` exists on the upstream ({}); a hybrid registry publishes a new name only when the upstream does not have it",
                            e.client_message()
                        ))
                    })?
                    .status();
                if status.is_success() {
                    return Err(refuse(format!("`{key}` exists on the upstream")));
                }
                if !matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
                    return Err(Error::Upstream(format!(
                        "cannot tell whether `{key}` exists on the upstream (it answered {status}); a hybrid registry publishes a new name only when the upstream does not have it"
                    )));
                }
            }
        }
        Ok(())
    }

    // ---- local blobs ----------------------------------------------------------------
}

/// The rule id recorded for refusals that are not policy denials.
fn rule_of(e: &Error) -> &'static str {
    match e {
        Error::Unauthorized(_) => "authentication",
        Error::Forbidden(_) => "rbac",
        Error::TooManyRequests { .. } => "rate_limit",
        Error::Unprocessable(_) => "versioning",
        Error::BadRequest(_) => "validation",
        Error::Conflict(_) => "immutable",
        Error::PayloadTooLarge(_) => "size_limit",
        Error::MethodNotAllowed(_) => "mode",
        _ => "error",
    }
}
