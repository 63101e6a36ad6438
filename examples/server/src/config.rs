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
    /// `filesystem` or `memory`.
    #[serde(rename = "type", default = "default_storage_type")]
    pub kind: String,
    /// Blob directory for `filesystem`.
    #[serde(default = "default_blob_path")]
    pub path: PathBuf,
}

fn default_storage_type() -> String {
    "filesystem".into()
}

fn default_blob_path() -> PathBuf {
    PathBuf::from("./batlehub-data/blobs")
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: default_storage_type(),
            path: default_blob_path(),
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
}

impl std::fmt::Debug for TokenToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenToml")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("groups", &self.groups)
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
    /// Protocol: `npm` (more to come).
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
}

impl RegistryToml {
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
            },
            auth: AuthConfig::default(),
            registries: vec![RegistryToml {
                name: "npm".into(),
                kind: "npm".into(),
                mode: Mode::Local,
                upstreams: Vec::new(),
                allowed_origins: Vec::new(),
                max_upload_bytes: None,
                rbac: None,
                upstream_auth: None,
                tls: None,
                cache: None,
                rules: Vec::new(),
                versioning: None,
                signing: None,
                quota: None,
                rate_limit: None,
            }],
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
            if r.kind != "npm" {
                return Err(ConfigError(format!(
                    "{at}.type: unknown registry type `{}` (this build serves: npm)",
                    r.kind
                )));
            }
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
        if !matches!(self.storage.kind.as_str(), "filesystem" | "memory") {
            return Err(ConfigError(format!(
                "storage.type: unknown storage `{}` (expected filesystem or memory)",
                self.storage.kind
            )));
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
