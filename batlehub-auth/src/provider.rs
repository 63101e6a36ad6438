//! Identity providers and the ordered chain that tries them.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use batlehub_core::{Identity, Principal};

use crate::credentials::Credentials;
use crate::layer::{Authenticator, IdentityFuture};

/// A provider's answer about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credential belongs to this provider and is valid.
    Mine(Principal),
    /// The credential is not this provider's kind; the next provider is asked.
    NotMine,
    /// The credential is this provider's kind but is refused (bad signature, expired,
    /// revoked, ...); the request gets a 401 and no other provider is asked.
    Invalid(String),
}

/// A boxed future resolving to a [`Verdict`], returned by [`Provider::identify`].
pub type VerdictFuture = Pin<Box<dyn Future<Output = Verdict> + Send + 'static>>;

/// A source of identities: static tokens, personal access tokens, OIDC, CI workloads,
/// Kubernetes service accounts.
///
/// Each provider answers "mine / not mine / invalid" ([`Verdict`]) for a credential;
/// [`Providers`] asks them in the configured order. A provider must decide "not mine"
/// cheaply (a token prefix, the unverified `iss` of a JWT) so that later providers are
/// reached quickly.
///
/// Groups in the principals a provider returns are namespaced with the provider's name:
/// `<name>:<group>` (`oidc:team-a`, `static:ops`, `pat:release`).
pub trait Provider: Send + Sync + Debug + 'static {
    /// The provider's name, used as [`Principal::provider`] and as the group namespace.
    fn name(&self) -> &str;

    /// The verdict when it can be reached without I/O (cached results, cheap "not mine"
    /// decisions); `None` when [`Provider::identify`] must run.
    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        let _ = credentials;
        None
    }

    /// The verdict, doing whatever I/O and verification it takes (and caching it where the
    /// provider says so). Complete on its own: it does not rely on `identify_cached` having
    /// been called first.
    fn identify(&self, credentials: Credentials) -> VerdictFuture;
}

impl<P: Provider + ?Sized> Provider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn identify_cached(&self, credentials: &Credentials) -> Option<Verdict> {
        (**self).identify_cached(credentials)
    }

    fn identify(&self, credentials: Credentials) -> VerdictFuture {
        (**self).identify(credentials)
    }
}

/// The reason given when no provider claims a credential.
pub(crate) const UNKNOWN_TOKEN: &str = "unknown token";

/// Providers tried in order: the first that answers [`Verdict::Mine`] or
/// [`Verdict::Invalid`] decides; when every provider answers [`Verdict::NotMine`] the
/// credential is refused with `Identity::Invalid("unknown token")` (never anonymous).
///
/// # Examples
///
/// ```
/// use batlehub_auth::{AuthLayer, Providers, StaticTokens, TokenConfig, TokenSecret};
/// use batlehub_core::Role;
///
/// let tokens = StaticTokens::new(vec![TokenConfig {
///     name: "ci".into(),
///     secret: TokenSecret::Plain("plain-secret-1".into()),
///     role: Role::User,
///     groups: vec!["builders".into()],
///     id: None,
/// }])?;
/// let providers = Providers::new().with(tokens);
/// assert_eq!(providers.names(), ["static"]);
/// let layer = AuthLayer::new(providers);
/// # Ok::<(), batlehub_auth::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Providers {
    providers: Vec<Arc<dyn Provider>>,
}

impl Providers {
    /// An empty chain: every credential is refused as an unknown token.
    pub fn new() -> Self {
        Self::default()
    }

    /// A chain of already-shared providers, tried in the given order.
    pub fn from_arcs(providers: Vec<Arc<dyn Provider>>) -> Self {
        Self { providers }
    }

    /// Appends a provider, tried after those already present.
    pub fn with(mut self, provider: impl Provider) -> Self {
        self.providers.push(Arc::new(provider));
        self
    }

    /// Appends a shared provider (one the admin API also holds, for instance).
    pub fn with_arc(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// The providers' names, in order.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.providers.iter().map(|p| p.name()).collect()
    }

    /// The number of providers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// Whether the chain is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// What a verdict means for the chain: `Some` decides, `None` passes on.
fn decide(verdict: Verdict) -> Option<Identity> {
    match verdict {
        Verdict::Mine(p) => Some(Identity::User(p)),
        Verdict::Invalid(reason) => Some(Identity::Invalid(reason)),
        Verdict::NotMine => None,
    }
}

fn unknown() -> Identity {
    Identity::Invalid(UNKNOWN_TOKEN.to_owned())
}

impl Authenticator for Providers {
    fn authenticate_cached(&self, credentials: &Credentials) -> Option<Identity> {
        for provider in &self.providers {
            if let Some(identity) = decide(provider.identify_cached(credentials)?) {
                return Some(identity);
            }
        }
        Some(unknown())
    }

    fn authenticate(&self, credentials: Credentials) -> IdentityFuture {
        let providers = self.providers.clone();
        Box::pin(async move {
            for provider in &providers {
                let verdict = match provider.identify_cached(&credentials) {
                    Some(v) => v,
                    None => provider.identify(credentials.clone()).await,
                };
                if let Some(identity) = decide(verdict) {
                    return identity;
                }
            }
            unknown()
        })
    }
}

/// A single provider is a chain of one.
impl<P: Provider> Authenticator for P {
    fn authenticate_cached(&self, credentials: &Credentials) -> Option<Identity> {
        Some(decide(self.identify_cached(credentials)?).unwrap_or_else(unknown))
    }

    fn authenticate(&self, credentials: Credentials) -> IdentityFuture {
        let verdict = self.identify(credentials);
        Box::pin(async move { decide(verdict.await).unwrap_or_else(unknown) })
    }
}

/// `<provider>:<group>`, the namespaced form of a group asserted by an external party
/// (an identity provider, a claim, the Kubernetes API).
pub(crate) fn namespaced(provider: &str, group: &str) -> String {
    format!("{provider}:{group}")
}

/// Like [`namespaced`], but leaves a group an administrator already wrote in namespaced
/// form (`static:ops` in a token entry) as it is.
pub(crate) fn namespaced_configured(provider: &str, group: &str) -> String {
    match group.strip_prefix(provider) {
        Some(rest) if rest.starts_with(':') => group.to_owned(),
        _ => namespaced(provider, group),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use batlehub_core::Role;

    #[derive(Debug)]
    struct Fixed(&'static str, Option<Verdict>, Verdict);

    impl Provider for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn identify_cached(&self, _: &Credentials) -> Option<Verdict> {
            self.1.clone()
        }
        fn identify(&self, _: Credentials) -> VerdictFuture {
            let v = self.2.clone();
            Box::pin(async move { v })
        }
    }

    fn who(id: &str) -> Principal {
        Principal {
            id: id.into(),
            role: Role::User,
            groups: vec![],
            provider: "t".into(),
        }
    }

    fn creds() -> Credentials {
        Credentials {
            token: "tok".into(),
            username: None,
        }
    }

    #[tokio::test]
    async fn order_and_fallthrough() {
        let chain = Providers::new()
            .with(Fixed("a", Some(Verdict::NotMine), Verdict::NotMine))
            .with(Fixed("b", None, Verdict::Mine(who("bob"))))
            .with(Fixed(
                "c",
                Some(Verdict::Mine(who("carol"))),
                Verdict::NotMine,
            ));
        assert_eq!(chain.names(), ["a", "b", "c"]);
        assert!(
            chain.authenticate_cached(&creds()).is_none(),
            "b needs the slow path"
        );
        assert_eq!(chain.authenticate(creds()).await.name(), "bob");

        let invalid_first = Providers::new()
            .with(Fixed(
                "a",
                Some(Verdict::Invalid("no".into())),
                Verdict::NotMine,
            ))
            .with(Fixed(
                "b",
                Some(Verdict::Mine(who("bob"))),
                Verdict::NotMine,
            ));
        assert_eq!(
            invalid_first.authenticate_cached(&creds()),
            Some(Identity::Invalid("no".into()))
        );

        let nobody = Providers::new().with(Fixed("a", Some(Verdict::NotMine), Verdict::NotMine));
        assert_eq!(
            nobody.authenticate_cached(&creds()),
            Some(Identity::Invalid(UNKNOWN_TOKEN.into()))
        );
        assert_eq!(
            Providers::new().authenticate(creds()).await,
            Identity::Invalid(UNKNOWN_TOKEN.into())
        );
    }

    #[test]
    fn namespacing() {
        assert_eq!(namespaced("oidc", "team-a"), "oidc:team-a");
        assert_eq!(namespaced("oidc", "oidc:x"), "oidc:oidc:x");
        assert_eq!(namespaced_configured("static", "ops"), "static:ops");
        assert_eq!(namespaced_configured("static", "static:ops"), "static:ops");
        assert_eq!(
            namespaced_configured("static", "staticky"),
            "static:staticky"
        );
    }
}
