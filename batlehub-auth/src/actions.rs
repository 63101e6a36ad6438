//! CI workload identities: GitHub Actions and Forgejo Actions OIDC tokens, mapped to
//! principals by claim rules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use batlehub_core::{Clock, Principal, Role};
use jsonwebtoken::Algorithm;
use regex::Regex;

use crate::Error;
use crate::credentials::Credentials;
use crate::jwt::{Object, claim_text};
use crate::oidc::{Check, JwtCore, JwtSettings};
use crate::provider::{Provider, Verdict, VerdictFuture, namespaced};

/// A condition on one claim's value: a glob or a regular expression.
///
/// - a glob (the default): `*` matches any run of characters (`/` included), `?` one
///   character, everything else itself; the whole value must match
///   (`my-org/*` matches `my-org/app` and `my-org/a/b`);
/// - `re:<regex>`: a regular expression, searched in the value: anchor it yourself
///   (`re:^my-org/(app|lib)$`), an unanchored one matches anywhere.
///
/// A claim that is absent never matches. Numbers and booleans are compared as text.
#[derive(Clone)]
pub struct Matcher {
    pattern: String,
    regex: Regex,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Matcher").field(&self.pattern).finish()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Compiles a glob, or a regex written `re:...`.
    ///
    /// # Errors
    /// [`Error::Pattern`] when the regex does not compile.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        let source = match pattern.strip_prefix("re:") {
            Some(re) => re.to_owned(),
            None => glob_to_regex(pattern),
        };
        let regex = Regex::new(&source).map_err(|e| Error::Pattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `value` matches.
    #[must_use]
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl std::str::FromStr for Matcher {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn glob_to_regex(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 8);
    out.push('^');
    let mut literal = String::new();
    let flush = |literal: &mut String, out: &mut String| {
        out.push_str(&regex::escape(literal));
        literal.clear();
    };
    for c in glob.chars() {
        match c {
            '*' => {
                flush(&mut literal, &mut out);
                out.push_str("(?s:.*)");
            }
            '?' => {
                flush(&mut literal, &mut out);
                out.push_str("(?s:.)");
            }
            c => literal.push(c),
        }
    }
    flush(&mut literal, &mut out);
    out.push('$');
    out
}

/// One claim-mapping rule: when every condition matches, the workload gets `role` and
/// `groups`.
///
/// Group templates substitute claim values: `ci/{repository}` becomes
/// `ci/my-org/app`. A template naming an absent claim is dropped (never rendered with a
/// hole). Groups are then namespaced with the provider name (`github-actions:ci/my-org/app`).
///
/// # Examples
///
/// ```
/// use batlehub_auth::{ClaimRule, Matcher};
/// use batlehub_core::Role;
///
/// let rule = ClaimRule {
///     conditions: [
///         ("repository".to_owned(), Matcher::new("my-org/*")?),
///         ("ref".to_owned(), Matcher::new("re:^refs/tags/v[0-9]+")?),
///     ]
///     .into(),
///     role: Role::User,
///     groups: vec!["ci/{repository}".into(), "release".into()],
/// };
/// # Ok::<(), batlehub_auth::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    /// Claim name -> condition on its value; all must match. Must not be empty (the
    /// GitHub issuer is shared by every repository in the world).
    pub conditions: BTreeMap<String, Matcher>,
    /// The role granted.
    pub role: Role,
    /// Group templates.
    pub groups: Vec<String>,
}

/// Configuration of an [`ActionsOidcProvider`].
///
/// ```
/// use batlehub_auth::ActionsOidcConfig;
///
/// let config = ActionsOidcConfig {
///     audiences: vec!["https://registry.example.com".into()],
///     ..ActionsOidcConfig::github()
/// };
/// assert_eq!(config.issuer, "https://token.actions.githubusercontent.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsOidcConfig {
    /// The provider's name: [`Principal::provider`] and the group namespace (`actions`).
    pub name: String,
    /// The issuer: `https://token.actions.githubusercontent.com` for GitHub, the instance's
    /// `https://<host>/api/actions` for Forgejo.
    pub issuer: String,
    /// Accepted audiences (the `audience` the workflow requests). Required; choose one
    /// unique to this registry.
    pub audiences: Vec<String>,
    /// Accepted algorithms (GitHub and Forgejo sign with `RS256`). Required.
    pub algorithms: Vec<Algorithm>,
    /// Claim-mapping rules; the first whose conditions all match decides.
    pub rules: Vec<ClaimRule>,
    /// The least time between two JWKS fetches triggered by unknown key ids (60 s).
    pub jwks_refresh_min_interval: Duration,
    /// A PEM CA bundle trusted besides the built-in roots (a private Forgejo).
    pub ca_cert_path: Option<PathBuf>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (30).
    pub leeway_secs: u64,
}

impl Default for ActionsOidcConfig {
    fn default() -> Self {
        Self {
            name: "actions".into(),
            issuer: String::new(),
            audiences: Vec::new(),
            algorithms: vec![Algorithm::RS256],
            rules: Vec::new(),
            jwks_refresh_min_interval: Duration::from_secs(60),
            ca_cert_path: None,
            leeway_secs: 30,
        }
    }
}

impl ActionsOidcConfig {
    /// GitHub Actions: name `github-actions`, the GitHub issuer, `RS256`; audiences and
    /// rules are still to be set.
    #[must_use]
    pub fn github() -> Self {
        Self {
            name: "github-actions".into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            ..Self::default()
        }
    }
}

/// CI workload tokens (GitHub Actions, Forgejo Actions), a [`Provider`].
///
/// Tokens are checked exactly as by [`OidcProvider`](crate::OidcProvider) (issuer decides
/// "mine", pinned algorithms, JWKS with rate-limited refresh, audience, `exp`/`nbf` against
/// the clock). The verified claims then go through [`ActionsOidcConfig::rules`] in order:
/// the first rule whose conditions all match gives the role and groups; when none matches
/// the token is refused ("no claim-mapping rule matches this workload").
///
/// The principal id is the `repository` claim when present, else `sub`.
#[derive(Clone)]
pub struct ActionsOidcProvider {
    core: Arc<JwtCore>,
    rules: Arc<[ClaimRule]>,
}

impl fmt::Debug for ActionsOidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsOidcProvider")
            .field("core", &self.core)
            .field("rules", &self.rules)
            .finish()
    }
}

impl ActionsOidcProvider {
    /// Checks `config` and builds the provider; keys are fetched at the first token
    /// unless [`ActionsOidcProvider::refresh_keys`] is called first.
    ///
    /// # Errors
    /// [`Error::Config`] as for [`OidcProvider::new`](crate::OidcProvider::new), and when
    /// there is no rule, a rule has no condition, or a rule grants the anonymous role.
    pub fn new(config: ActionsOidcConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let bad = |reason: String| Error::Config {
            provider: config.name.clone(),
            reason,
        };
        if config.rules.is_empty() {
            return Err(bad("rules must list at least one claim-mapping rule".into()));
        }
        for (i, rule) in config.rules.iter().enumerate() {
            if rule.conditions.is_empty() {
                return Err(bad(format!("rules[{i}] has no condition")));
            }
            if rule.role == Role::Anonymous {
                return Err(bad(format!("rules[{i}]: role must be user or admin")));
            }
        }
        let core = JwtCore::new(
            JwtSettings {
                name: config.name,
                issuer: config.issuer,
                audiences: config.audiences,
                algorithms: config.algorithms,
                jwks_refresh_min_interval: config.jwks_refresh_min_interval,
                ca_cert_path: config.ca_cert_path,
                leeway_secs: config.leeway_secs,
            },
            clock,
        )?;
        Ok(Self {
            core: Arc::new(core),
            rules: config.rules.into(),
        })
    }

    /// Builds the provider and fetches discovery and keys now.
    ///
    /// # Errors
    /// As [`ActionsOidcProvider::new`], and [`Error::Discovery`] when discovery or the
    /// JWKS cannot be fetched or read.
    pub async fn connect(config: ActionsOidcConfig, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let provider = Self::new(config, clock)?;
        provider.refresh_keys().await?;
        Ok(provider)
    }

    /// Fetches discovery (the first time) and the JWKS now, ignoring the rate limit.
    ///
    /// # Errors
    /// [`Error::Discovery`] naming what failed; cached keys are kept.
    pub async fn refresh_keys(&self) -> Result<(), Error> {
        self.core.refresh_now().await
    }

    fn verdict(&self, check: Check) -> Verdict {
        let claims = match check {
            Check::NotMine => return Verdict::NotMine,
            Check::Invalid(reason) => return Verdict::Invalid(reason),
            Check::Verified(claims) => claims,
        };
        let Some(rule) = self.rules.iter().find(|r| {
            r.conditions
                .iter()
                .all(|(claim, m)| claim_text(&claims, claim).is_some_and(|v| m.is_match(&v)))
        }) else {
            return Verdict::Invalid("no claim-mapping rule matches this workload".into());
        };
        let Some(id) = claim_text(&claims, "repository")
            .or_else(|| claim_text(&claims, "sub"))
            .filter(|s| !s.is_empty())
        else {
            return Verdict::Invalid("token names neither `repository` nor `sub`".into());
        };
        let name = &self.core.settings().name;
        let groups = rule
            .groups
            .iter()
            .filter_map(|t| render(t, &claims))
            .map(|g| namespaced(name, &g))
            .collect();
        Verdict::Mine(Principal {
            id,
            role: rule.role,
            groups,
            provider: name.clone(),
        })
    }
}

/// Substitutes `{claim}` placeholders; `None` when a named claim is absent or a brace is
/// unbalanced.
fn render(template: &str, claims: &Object) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let value = claim_text(claims, &after[..close])?;
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

impl Provider for ActionsOidcProvider {
    fn name(&self) -> &str {
        &self.core.settings().name
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        self.core
            .check_cached(&credentials.token)
            .map(|c| self.verdict(c))
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        let this = self.clone();
        Box::pin(async move {
            let check = this.core.check(&credentials.token).await;
            this.verdict(check)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_regexes() {
        let m = Matcher::new("my-org/*").expect("glob");
        assert!(m.is_match("my-org/app"));
        assert!(m.is_match("my-org/a/b"));
        assert!(!m.is_match("evil/my-org/app"));
        let q = Matcher::new("v?.x").expect("glob");
        assert!(q.is_match("v1.x"));
        assert!(!q.is_match("v1-x"), "the dot is literal");
        assert!(!q.is_match("v12.x"));
        let r = Matcher::new("re:^refs/tags/v[0-9]+$").expect("re");
        assert!(r.is_match("refs/tags/v12"));
        assert!(!r.is_match("refs/heads/main"));
        assert!(Matcher::new("re:(").is_err());
    }

    #[test]
    fn templates() {
        let c = serde_json::json!({"repository": "o/r", "run_number": 7});
        let c = c.as_object().expect("object");
        assert_eq!(render("ci/{repository}", c).as_deref(), Some("ci/o/r"));
        assert_eq!(
            render("{repository}#{run_number}", c).as_deref(),
            Some("o/r#7")
        );
        assert_eq!(render("plain", c).as_deref(), Some("plain"));
        assert_eq!(render("ci/{missing}", c), None);
        assert_eq!(render("ci/{repository", c), None);
        assert_eq!(render("ci/}", c), None);
    }
}
