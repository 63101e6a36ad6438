//! The reference server's TOML configuration (schema in PROTOCOLS.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use batlehub::Mode;
use batlehub::rules::RbacConfig;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[database]`; default: SQLite in the data directory.
    pub database: Option<DatabaseConfig>,
    /// `[storage]`.
    #[serde(default)]
    pub storage: StorageConfig,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[[registries]]`.
    #[serde(default)]
    pub registries: Vec<RegistryToml>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The externally visible URL; derived per request when absent.
    pub public_url: Option<String>,
    /// Peers (IPs or CIDR networks) whose `X-Forwarded-*` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`.
    pub url: String,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `filesystem`, `memory` or `s3`.
    #[serde(rename = "type", default = "default_storage_type")]
    pub kind: String,
    /// Blob directory for `filesystem`.
    #[serde(default = "default_blob_path")]
    pub path: PathBuf,
    /// `s3`: the bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `s3`: the endpoint URL (an S3-compatible server); default: AWS's, for the region.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `s3`: the region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// `s3`: static credentials, both or neither (neither: the standard AWS environment and
    /// credential chain).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `s3`: see `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// `s3`: a key prefix every blob is stored under.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `s3`: path-style addressing; default: exactly when `endpoint` is set.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    /// Memory for hot content (small artifacts, metadata documents and their renderings),
    /// shared by every registry; 0 turns the memory cache off. Default 64.
    #[serde(default = "default_memory_cache_mib")]
    pub memory_cache_mib: usize,
    /// How often blobs nothing refers to (unpublished versions, failed publishes, evicted
    /// cache entries, abandoned uploads) are looked for, in seconds; 0 turns the sweep
    /// off. Default 900.
    #[serde(default = "default_sweep_interval_secs")]
    pub sweep_interval_secs: u64,
    /// How long a blob stays unreferenced before the sweep deletes it, in seconds
    /// (uploads under `tmp/` get a day). Default 3600.
    #[serde(default = "default_orphan_grace_secs")]
    pub orphan_grace_secs: u64,
}

fn default_sweep_interval_secs() -> u64 {
    900
}

fn default_orphan_grace_secs() -> u64 {
    3600
}

fn default_memory_cache_mib() -> usize {
    64
}

fn default_storage_type() -> String {
    "filesystem".into()
}

fn default_blob_path() -> PathBuf {
    PathBuf::from("./batlehub-data/blobs")
}

impl StorageConfig {
    /// The keys that choose the blob store.
    #[must_use]
    pub fn blob_keys(&self) -> BlobsToml {
        BlobsToml {
            kind: self.kind.clone(),
            path: Some(self.path.clone()),
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            prefix: self.prefix.clone(),
            force_path_style: self.force_path_style,
        }
    }
}

/// `[registries.storage]`: where one registry keeps its blobs, when not with the others
/// (`[storage]`'s blob keys: `type`, `path`, and the S3 keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsToml {
    /// `filesystem`, `memory` or `s3`.
    #[serde(rename = "type", default = "default_storage_type")]
    pub kind: String,
    /// `filesystem`: the blob directory (required in `[registries.storage]`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `s3`: the bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `s3`: the endpoint URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `s3`: the region.
    #[serde(default)]
    pub region: Option<String>,
    /// `s3`: static credentials, both or neither.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `s3`: see `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// `s3`: a key prefix every blob is stored under.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `s3`: path-style addressing; default: exactly when `endpoint` is set.
    #[serde(default)]
    pub force_path_style: Option<bool>,
}

impl BlobsToml {
    /// The S3 keys that are set, by name.
    fn s3_keys(&self) -> Vec<&'static str> {
        [
            ("bucket", self.bucket.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            ("prefix", self.prefix.is_some()),
            ("force_path_style", self.force_path_style.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Checks the keys of the section at `at` (`storage`, `registries[0] (npm).storage`).
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        match self.kind.as_str() {
            "filesystem" | "memory" => {
                if let Some(key) = self.s3_keys().first() {
                    return Err(ConfigError(format!(
                        "{at}.{key}: only for type = \"s3\" (this storage is `{}`)",
                        self.kind
                    )));
                }
                if self.kind == "filesystem" && self.path.is_none() {
                    return Err(ConfigError(format!(
                        "{at}.path: required for type = \"filesystem\""
                    )));
                }
            }
            "s3" => {
                if self.bucket.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigError(format!(
                        "{at}.bucket: required for type = \"s3\""
                    )));
                }
                if self.access_key_id.is_some() != self.secret_access_key.is_some() {
                    return Err(ConfigError(format!(
                        "{at}.access_key_id, {at}.secret_access_key: set both, or neither for \
                         the standard AWS environment and credential chain"
                    )));
                }
            }
            other => {
                return Err(ConfigError(format!(
                    "{at}.type: unknown storage `{other}` (expected filesystem, memory or s3)"
                )));
            }
        }
        Ok(())
    }

    /// Opens the blob store this section describes.
    ///
    /// # Errors
    /// When the store cannot be opened (the directory cannot be created, the S3
    /// configuration is refused).
    pub fn blobs(&self) -> Result<batlehub::storage::OpendalBlobStore, String> {
        use batlehub::storage::OpendalBlobStore;
        let store = match self.kind.as_str() {
            "memory" => OpendalBlobStore::memory(),
            "s3" => {
                let mut s3 =
                    batlehub::storage::S3Config::new(self.bucket.clone().unwrap_or_default());
                s3.endpoint.clone_from(&self.endpoint);
                s3.region.clone_from(&self.region);
                s3.access_key_id.clone_from(&self.access_key_id);
                s3.secret_access_key.clone_from(&self.secret_access_key);
                s3.prefix = self.prefix.clone().unwrap_or_default();
                s3.force_path_style = self.force_path_style;
                OpendalBlobStore::s3(&s3)
            }
            _ => OpendalBlobStore::filesystem(self.path.clone().unwrap_or_else(default_blob_path)),
        };
        store.map_err(|e| e.to_string())
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: default_storage_type(),
            path: default_blob_path(),
            bucket: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            prefix: None,
            force_path_style: None,
            memory_cache_mib: default_memory_cache_mib(),
            sweep_interval_secs: default_sweep_interval_secs(),
            orphan_grace_secs: default_orphan_grace_secs(),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.tokens]]`.
    #[serde(default)]
    pub tokens: Vec<TokenToml>,
    /// `[[auth.providers]]`: OIDC, CI workload and Kubernetes providers.
    #[serde(default)]
    pub providers: Vec<ProviderToml>,
    /// The order providers are tried in, by name (`static`, `pat`, then provider names).
    /// Default: static tokens, personal access tokens, then `providers` in file order.
    pub order: Option<Vec<String>>,
    /// Failed authentications allowed per client address in each window before that
    /// address gets `429` instead of further verification (default 30; 0 turns it off).
    pub failed_auth_limit: Option<u32>,
    /// The window of `failed_auth_limit`, in seconds (default 60).
    pub failed_auth_window_secs: Option<u64>,
}

/// One identity provider (`[[auth.providers]]`, or an element of the `[[auth]]` form).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProviderToml {
    /// Bearer JWTs from an OpenID Connect issuer.
    Oidc {
        /// Provider name: principal provider and group namespace (default `oidc`).
        #[serde(default = "oidc_name")]
        name: String,
        /// Issuer URL (exact `iss`).
        issuer: String,
        /// Accepted audiences.
        audiences: Vec<String>,
        /// Pinned algorithms (`RS256`, `ES256`, ...).
        algorithms: Vec<String>,
        /// Claim with the groups (default `groups`).
        groups_claim: Option<String>,
        /// Claim naming the principal (default `sub`).
        principal_claim: Option<String>,
        /// IdP groups whose members are admins.
        #[serde(default)]
        admin_groups: Vec<String>,
        /// PEM CA bundle for the IdP.
        ca_cert_path: Option<PathBuf>,
        /// Least seconds between JWKS refreshes on unknown key ids (default 60).
        jwks_refresh_min_interval_secs: Option<u64>,
    },
    /// GitHub/Forgejo Actions workload tokens with claim-mapping rules.
    ActionsOidc {
        /// Provider name (default `actions`).
        #[serde(default = "actions_name")]
        name: String,
        /// Issuer URL.
        issuer: String,
        /// Accepted audiences.
        audiences: Vec<String>,
        /// Pinned algorithms (default `RS256`).
        #[serde(default = "rs256")]
        algorithms: Vec<String>,
        /// Claim-mapping rules, first match wins.
        rules: Vec<ClaimRuleToml>,
        /// PEM CA bundle for the issuer.
        ca_cert_path: Option<PathBuf>,
    },
    /// Kubernetes service-account tokens through the TokenReview API.
    Kubernetes {
        /// Provider name (default `kubernetes`).
        #[serde(default = "k8s_name")]
        name: String,
        /// The cluster's service-account token issuer (`iss`).
        issuer: String,
        /// API server URL.
        api_url: String,
        /// File holding the reviewer's token (re-read on every review).
        reviewer_token_path: Option<PathBuf>,
        /// The reviewer's token itself.
        reviewer_token: Option<String>,
        /// Audiences a token must be minted for (required; passed to TokenReview).
        #[serde(default)]
        audiences: Vec<String>,
        /// Groups whose members are admins.
        #[serde(default)]
        admin_groups: Vec<String>,
        /// PEM CA bundle of the API server.
        ca_cert_path: Option<PathBuf>,
        /// Longest a review result is cached (default 300 s).
        max_cache_secs: Option<u64>,
        /// Check token signatures against the cluster's JWKS before reviewing them
        /// (default true).
        verify_signatures: Option<bool>,
    },
}

fn oidc_name() -> String {
    "oidc".into()
}

fn actions_name() -> String {
    "actions".into()
}

fn k8s_name() -> String {
    "kubernetes".into()
}

fn rs256() -> Vec<String> {
    vec!["RS256".into()]
}

/// One `[[auth.providers.rules]]` of an `actions-oidc` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRuleToml {
    /// Claim -> glob (`acme/*`) or regex (`re:^refs/tags/v`).
    pub claims: BTreeMap<String, String>,
    /// Role granted (default `user`).
    #[serde(default = "default_role")]
    pub role: TokenRole,
    /// Group templates (`ci/{repository}`).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl ProviderToml {
    /// The provider's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            ProviderToml::Oidc { name, .. }
            | ProviderToml::ActionsOidc { name, .. }
            | ProviderToml::Kubernetes { name, .. } => name,
        }
    }
}

/// One `[[auth.tokens]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenToml {
    /// Principal id.
    pub name: String,
    /// Plain token.
    pub value: Option<String>,
    /// argon2id hash (`batlehub-server hash-token`).
    pub hash: Option<String>,
    /// `admin` or `user`.
    #[serde(default = "default_role")]
    pub role: TokenRole,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The token's public id, for tokens written `bhs_<id>_<secret>`: such a token is
    /// checked against this entry's hash only, so wrong tokens stay cheap.
    pub id: Option<String>,
}

impl std::fmt::Debug for TokenToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenToml")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("groups", &self.groups)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Roles a token may grant.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Administrator.
    Admin,
    /// User.
    User,
}

fn default_role() -> TokenRole {
    TokenRole::User
}

/// One `[[registries]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryToml {
    /// Served at `/proxy/NAME/`.
    pub name: String,
    /// Protocol: a type of [`crate::kinds::KINDS`] (`npm`, `cargo`, `pypi`, `maven`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `local`, `proxy` or `hybrid`.
    #[serde(default)]
    pub mode: Mode,
    /// Upstream roots, in order.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Extra origins handed-out URLs may point to.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Largest upload, bytes (default 512 MiB).
    pub max_upload_bytes: Option<u64>,
    /// `[registries.rbac]`.
    pub rbac: Option<RbacConfig>,
    /// `[registries.upstream_auth]`.
    pub upstream_auth: Option<UpstreamAuthToml>,
    /// `[registries.tls]`.
    pub tls: Option<TlsToml>,
    /// `[registries.cache]`.
    pub cache: Option<CacheToml>,
    /// `[registries.storage]`: this registry's blobs in a store of their own.
    #[serde(default)]
    pub storage: Option<BlobsToml>,
    /// `[[registries.rules]]`: release-age gate, deny-latest, version gates.
    #[serde(default)]
    pub rules: Vec<batlehub::rules::RuleConfig>,
    /// `[registries.versioning]`.
    pub versioning: Option<batlehub::rules::VersioningConfig>,
    /// `[registries.signing]`.
    pub signing: Option<batlehub::rules::SigningConfig>,
    /// `[registries.quota]`.
    pub quota: Option<batlehub::rules::QuotaConfig>,
    /// `[registries.rate_limit]`.
    pub rate_limit: Option<batlehub::rules::RateLimitConfig>,
    /// PyPI: how versions refused by policy are shown, `hide` (default) or `yanked`
    /// (listed as yanked with the rule's reason, so a pinned install prints it).
    pub denied_versions: Option<String>,
    /// Go proxies: the checksum database (`https://host[/path]`) passed through at
    /// `/sumdb/{host[/path]}/` and every upstream zip and `go.mod` is checked against.
    pub checksum_db: Option<String>,
    /// Go proxies: the checksum database's verifier key (`name+hash+base64`, as `GOSUMDB`
    /// takes it). With it every lookup's signed tree and inclusion proof are checked, and
    /// the database is also passed through at `/sumdb/{name}/` under the key's name.
    pub checksum_db_key: Option<String>,
    /// Go proxies: modules the checksum database is not asked about (`GONOSUMDB` globs);
    /// they are checked against the upstream's `.mod` only.
    #[serde(default)]
    pub checksum_db_skip: Vec<String>,
    /// Hybrid: names claimed for local use (a package name, or a prefix ending in `*`,
    /// matched against the normalized name). Only claimed names may be published when
    /// the upstream has them, and claimed names are never read from the upstream.
    #[serde(default)]
    pub claims: Vec<String>,
    /// Serve upstream artifacts whose upstream published no digest, uncached and marked
    /// `X-Batlehub-Unverified` (default `false`: refused with 502).
    #[serde(default)]
    pub allow_unverified: bool,
    /// Uploads one caller may have in progress at once (default 8).
    pub max_concurrent_uploads: Option<usize>,
}

impl RegistryToml {
    /// A local registry of type `kind`, named after it, with defaults everywhere.
    #[must_use]
    pub fn local(kind: &str) -> Self {
        Self {
            name: kind.into(),
            kind: kind.into(),
            mode: Mode::Local,
            upstreams: Vec::new(),
            allowed_origins: Vec::new(),
            max_upload_bytes: None,
            rbac: None,
            upstream_auth: None,
            tls: None,
            cache: None,
            storage: None,
            rules: Vec::new(),
            versioning: None,
            signing: None,
            quota: None,
            rate_limit: None,
            claims: Vec::new(),
            allow_unverified: false,
            max_concurrent_uploads: None,
            denied_versions: None,
            checksum_db: None,
            checksum_db_key: None,
            checksum_db_skip: Vec::new(),
        }
    }

    /// The policy part of this registry's configuration.
    #[must_use]
    pub fn policy_config(&self) -> batlehub::rules::PolicyConfig {
        batlehub::rules::PolicyConfig {
            rbac: self.rbac.clone(),
            rules: self.rules.clone(),
            versioning: self.versioning.clone(),
            signing: self.signing.clone(),
            quota: self.quota.clone(),
            rate_limit: self.rate_limit.clone(),
        }
    }
}

/// `[registries.upstream_auth]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum UpstreamAuthToml {
    /// `Authorization: Bearer`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP Basic.
    Basic {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// A named header.
    Header {
        /// Header name.
        name: String,
        /// Value.
        value: String,
    },
}

impl std::fmt::Debug for UpstreamAuthToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAuthToml::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            UpstreamAuthToml::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            UpstreamAuthToml::Header { name, .. } => write!(f, "Header({name}, <redacted>)"),
        }
    }
}

/// `[registries.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsToml {
    /// PEM CA bundle trusted for this registry's upstreams.
    pub ca_cert_path: Option<PathBuf>,
}

/// `[registries.cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheToml {
    /// Seconds a cached upstream document is fresh (default 300).
    pub metadata_ttl_secs: Option<u64>,
}

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads and validates a configuration file; `${VAR}` in string values is replaced
    /// from the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|ConfigError(e)| ConfigError(format!("config {}: {e}", path.display())))
    }

    /// Parses and validates configuration text.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        expand_env(&mut value, "")?;
        normalize_auth_list(&mut value)?;
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The zero-config default: a local npm registry, anonymous read.
    #[must_use]
    pub fn zero_config(data_dir: &Path) -> Self {
        Self {
            server: ServerConfig::default(),
            database: None,
            storage: StorageConfig {
                kind: "filesystem".into(),
                path: data_dir.join("blobs"),
                ..StorageConfig::default()
            },
            auth: AuthConfig::default(),
            registries: crate::kinds::KINDS
                .iter()
                .map(|k| RegistryToml::local(k.name))
                .collect(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut names = BTreeMap::new();
        for (i, r) in self.registries.iter().enumerate() {
            let at = format!("registries[{i}] ({})", r.name);
            if let Err(e) = batlehub::core::coords::check_segment("name", &r.name) {
                return Err(ConfigError(format!("{at}.name: {e}")));
            }
            if names.insert(r.name.clone(), i).is_some() {
                return Err(ConfigError(format!("{at}.name: duplicate registry name")));
            }
            let Some(kind) = crate::kinds::find(&r.kind) else {
                return Err(ConfigError(format!(
                    "{at}.type: unknown registry type `{}` (this build serves: {})",
                    r.kind,
                    crate::kinds::names().join(", ")
                )));
            };
            (kind.validate)(r).map_err(|e| ConfigError(format!("{at}.{e}")))?;
            if r.mode.has_upstreams() && r.upstreams.is_empty() {
                return Err(ConfigError(format!(
                    "{at}.upstreams: required in {} mode",
                    r.mode
                )));
            }
            if let Err(e) = batlehub::rules::RegistryPolicy::from_config(&r.policy_config(), &at) {
                return Err(ConfigError(e.to_string()));
            }
            if r.mode == Mode::Local && !r.upstreams.is_empty() {
                return Err(ConfigError(format!(
                    "{at}.upstreams: a local registry has no upstreams"
                )));
            }
        }
        self.storage.blob_keys().validate("storage")?;
        for (i, r) in self.registries.iter().enumerate() {
            if let Some(st) = &r.storage {
                st.validate(&format!("registries[{i}] ({}).storage", r.name))?;
            }
        }
        let mut provider_names = vec!["static".to_owned(), "pat".to_owned()];
        for (i, p) in self.auth.providers.iter().enumerate() {
            if provider_names.iter().any(|n| n == p.name()) {
                return Err(ConfigError(format!(
                    "auth.providers[{i}]: duplicate provider name `{}`",
                    p.name()
                )));
            }
            provider_names.push(p.name().to_owned());
        }
        if let Some(order) = &self.auth.order {
            for (i, n) in order.iter().enumerate() {
                if !provider_names.contains(n) {
                    return Err(ConfigError(format!(
                        "auth.order[{i}]: no provider named `{n}`"
                    )));
                }
            }
        }
        for (i, t) in self.auth.tokens.iter().enumerate() {
            if t.value.is_some() == t.hash.is_some() {
                return Err(ConfigError(format!(
                    "auth.tokens[{i}] ({}): set exactly one of value or hash",
                    t.name
                )));
            }
        }
        Ok(())
    }
}

/// Accepts the `[[auth]]` form (a list of providers, each with a `type`; `type = "static"`
/// carries `tokens`, `type = "pat"` enables personal access tokens) by rewriting it to the
/// `[auth]` table form, keeping the list's order as the provider order.
fn normalize_auth_list(value: &mut toml::Value) -> Result<(), ConfigError> {
    let Some(table) = value.as_table_mut() else {
        return Ok(());
    };
    let Some(toml::Value::Array(list)) = table.get("auth").cloned() else {
        return Ok(());
    };
    let mut tokens = Vec::new();
    let mut providers = Vec::new();
    let mut order = Vec::new();
    for (i, item) in list.into_iter().enumerate() {
        let toml::Value::Table(mut t) = item else {
            return Err(ConfigError(format!("auth[{i}]: expected a table")));
        };
        let kind = t
            .get("type")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind == "static" || kind == "pat" {
            if kind == "static"
                && let Some(toml::Value::Array(ts)) = t.remove("tokens")
            {
                tokens.extend(ts);
            }
            t.remove("type");
            if let Some(k) = t.keys().next() {
                return Err(ConfigError(format!(
                    "auth[{i}] ({kind}): unknown key `{k}`"
                )));
            }
            order.push(toml::Value::String(kind));
            continue;
        }
        if t.contains_key("tokens") {
            return Err(ConfigError(format!(
                "auth[{i}]: `tokens` belong to an [[auth]] entry with type = \"static\""
            )));
        }
        let name = t.get("name").and_then(toml::Value::as_str).map_or_else(
            || match kind.as_str() {
                "oidc" => oidc_name(),
                "actions-oidc" => actions_name(),
                _ => k8s_name(),
            },
            str::to_owned,
        );
        order.push(toml::Value::String(name));
        providers.push(toml::Value::Table(t));
    }
    let mut auth = toml::map::Map::new();
    auth.insert("tokens".into(), toml::Value::Array(tokens));
    auth.insert("providers".into(), toml::Value::Array(providers));
    auth.insert("order".into(), toml::Value::Array(order));
    table.insert("auth".into(), toml::Value::Table(auth));
    Ok(())
}

/// Replaces `${VAR}` in every string value.
fn expand_env(value: &mut toml::Value, path: &str) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| ConfigError(format!("{path}: unterminated ${{ in value")))?;
                let var = &after[..end];
                let val = std::env::var(var).map_err(|_| {
                    ConfigError(format!("{path}: environment variable `{var}` is not set"))
                })?;
                out.push_str(&val);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_env(v, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = Config::parse("[server]\nlisen = \"x\"\n").expect_err("unknown key");
        assert!(e.0.contains("lisen"), "{e}");
        let e = Config::parse("[[registries]]\nname = \"n\"\ntype = \"npm\"\nmode = \"bogus\"\n")
            .expect_err("bad mode");
        assert!(e.0.contains("bogus"), "{e}");
        let e = Config::parse("[[registries]]\nname = \"n\"\ntype = \"npm\"\nmode = \"proxy\"\n")
            .expect_err("no upstream");
        assert!(e.0.contains("registries[0] (n).upstreams"), "{e}");
        let e = Config::parse(
            "[[registries]]\nname = \"n\"\ntype = \"npm\"\n[registries.rbac]\nuser = [1]\n",
        )
        .expect_err("type");
        assert!(e.0.contains("user") || e.0.contains("rbac"), "{e}");
    }

    #[test]
    fn checksum_db_is_a_go_setting() {
        let ok = Config::parse(
            "[[registries]]\nname = \"g\"\ntype = \"goproxy\"\nmode = \"proxy\"\n\
             upstreams = [\"http://127.0.0.1:9/\"]\nchecksum_db = \"http://127.0.0.1:8/\"\n\
             checksum_db_skip = [\"example.com/private\"]\n",
        )
        .expect("valid");
        assert_eq!(ok.registries[0].checksum_db_skip, ["example.com/private"]);
        for (toml, why) in [
            (
                "[[registries]]\nname = \"n\"\ntype = \"npm\"\nchecksum_db = \"http://127.0.0.1:8/\"\n",
                "settings of go registries",
            ),
            (
                "[[registries]]\nname = \"g\"\ntype = \"go\"\nchecksum_db = \"ftp://x\"\n",
                "must be http(s)",
            ),
            (
                "[[registries]]\nname = \"g\"\ntype = \"go\"\nchecksum_db_skip = [\"x\"]\n",
                "needs checksum_db",
            ),
        ] {
            let e = Config::parse(toml).expect_err(toml);
            assert!(e.0.contains(why), "{toml}: {e}");
        }
    }

    #[test]
    fn storage_keys_are_checked_with_their_path() {
        let ok = Config::parse(
            "[storage]\ntype = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\n\
             prefix = \"p/\"\nforce_path_style = true\n\
             [[registries]]\nname = \"n\"\ntype = \"npm\"\n\
             [registries.storage]\ntype = \"filesystem\"\npath = \"/tmp/n\"\n",
        )
        .expect("valid");
        assert_eq!(ok.storage.blob_keys().bucket.as_deref(), Some("b"));
        assert!(ok.registries[0].storage.is_some());
        for (toml, key) in [
            (
                "[storage]\nbucket = \"b\"\n",
                "storage.bucket: only for type = \"s3\"",
            ),
            ("[storage]\ntype = \"s3\"\n", "storage.bucket: required"),
            (
                "[storage]\ntype = \"s3\"\nbucket = \"b\"\naccess_key_id = \"k\"\n",
                "storage.access_key_id, storage.secret_access_key",
            ),
            (
                "[storage]\ntype = \"gcs\"\n",
                "storage.type: unknown storage `gcs`",
            ),
            (
                "[[registries]]\nname = \"n\"\ntype = \"npm\"\n[registries.storage]\ntype = \"filesystem\"\n",
                "registries[0] (n).storage.path: required",
            ),
            (
                "[[registries]]\nname = \"n\"\ntype = \"npm\"\n[registries.storage]\ntype = \"s3\"\nbucket = \"b\"\nmemory_cache_mib = 1\n",
                "memory_cache_mib",
            ),
        ] {
            let e = Config::parse(toml).expect_err(toml);
            assert!(e.0.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn providers_in_table_and_list_forms() {
        let table = Config::parse(
            "[auth]\norder = [\"sso\", \"static\"]\n[[auth.tokens]]\nname = \"a\"\nvalue = \"aaaaaaaaaa\"\n\
             [[auth.providers]]\ntype = \"oidc\"\nname = \"sso\"\nissuer = \"https://sso.example.com\"\naudiences = [\"b\"]\nalgorithms = [\"RS256\"]\n",
        )
        .expect("table form");
        assert_eq!(table.auth.providers.len(), 1);
        assert_eq!(
            table.auth.order.as_deref(),
            Some(&["sso".to_owned(), "static".to_owned()][..])
        );
        let list = Config::parse(
            "[[auth]]\ntype = \"kubernetes\"\nissuer = \"https://k8s\"\napi_url = \"https://k8s\"\nreviewer_token = \"x\"\n\
             [[auth]]\ntype = \"static\"\n[[auth.tokens]]\nname = \"a\"\nvalue = \"aaaaaaaaaa\"\n\
             [[auth]]\ntype = \"actions-oidc\"\nissuer = \"https://t\"\naudiences = [\"b\"]\n[[auth.rules]]\nclaims = { repository = \"acme/*\" }\n",
        )
        .expect("list form");
        assert_eq!(list.auth.tokens.len(), 1);
        assert_eq!(
            list.auth.order.as_deref(),
            Some(
                &[
                    "kubernetes".to_owned(),
                    "static".to_owned(),
                    "actions".to_owned()
                ][..]
            )
        );
        let e = Config::parse("[auth]\norder = [\"nope\"]\n").expect_err("unknown provider");
        assert!(e.0.contains("auth.order[0]"), "{e}");
        let e = Config::parse("[[auth]]\ntype = \"oidc\"\nissuer = \"x\"\naudiences = []\nalgorithms = []\nbogus = 1\n").expect_err("unknown key");
        assert!(e.0.contains("bogus"), "{e}");
    }

    #[test]
    fn policy_keys_are_validated_with_their_path() {
        let base = "[[registries]]\nname = \"n\"\ntype = \"npm\"\n";
        assert!(
            Config::parse(&format!(
                "{base}[[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 60\n"
            ))
            .is_ok()
        );
        let e = Config::parse(&format!("{base}[[registries.rules]]\nkind = \"nope\"\n"))
            .expect_err("kind");
        assert!(e.0.contains("nope"), "{e}");
        let e = Config::parse(&format!(
            "{base}[registries.versioning]\nversion_pattern = \"(\"\n"
        ))
        .expect_err("regex");
        assert!(
            e.0.contains("registries[0] (n).versioning.version_pattern"),
            "{e}"
        );
        let e = Config::parse(&format!("{base}[registries.signing]\nrequired = true\n"))
            .expect_err("no keys");
        assert!(e.0.contains("signing.trusted_keys"), "{e}");
        let e = Config::parse(&format!(
            "{base}[registries.rate_limit]\nrequests_per_window = 0\n"
        ))
        .expect_err("zero");
        assert!(e.0.contains("rate_limit"), "{e}");
    }

    #[test]
    fn env_expansion() {
        // SAFETY-free: set_var is safe in edition 2024 only in unsafe; use a var that exists.
        let home = std::env::var("PATH").expect("PATH set");
        let c = Config::parse("[server]\npublic_url = \"${PATH}\"\n").expect("ok");
        assert_eq!(c.server.public_url.as_deref(), Some(home.as_str()));
        let e = Config::parse("[server]\npublic_url = \"${BATLEHUB_SURELY_UNSET_VAR}\"\n")
            .expect_err("unset");
        assert!(e.0.contains("server.public_url"), "{e}");
    }
}
