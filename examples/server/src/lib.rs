//! The batlehub reference server as a library: configuration in, axum router out.
//!
//! `main.rs` is a thin CLI around [`run`]; the end-to-end tests start the same server
//! in-process with [`Server::start`].

pub mod admin;
pub mod config;
pub mod kinds;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use batlehub::auth::{
    AuthLayer, FailedAuthLimit, PatProvider, Providers, StaticTokens, TokenConfig, TokenSecret,
};
use batlehub::core::{ClientAddr, UpstreamAuth};
use batlehub::rules::RegistryPolicy;
use batlehub::{BaseUrl, Hub, RegistryConfig, Role};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::{Config, ConfigError};

/// Where the zero-config server keeps its data.
pub const DEFAULT_DATA_DIR: &str = "./batlehub-data";

/// Builds the application router from a configuration.
///
/// # Errors
/// [`ConfigError`] naming what could not be set up.
pub async fn build_router(config: &Config) -> Result<Router, ConfigError> {
    Ok(build_app(config).await?.0)
}

/// Builds the application router from a configuration, with the hub it serves (to
/// [`Hub::settle`] when shutting down).
///
/// # Errors
/// [`ConfigError`] naming what could not be set up.
pub async fn build_app(config: &Config) -> Result<(Router, Hub), ConfigError> {
    let blobs = config
        .storage
        .blob_keys()
        .blobs()
        .map_err(|e| ConfigError(format!("storage: {e}")))?;
    let db_url = match &config.database {
        Some(db) => db.url.clone(),
        None => {
            let dir = config.storage.path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .map_err(|e| ConfigError(format!("data directory {}: {e}", dir.display())))?;
            format!("sqlite://{}", dir.join("batlehub.db").display())
        }
    };
    let storage = batlehub::storage::open(&db_url, blobs)
        .await
        .map_err(|e| ConfigError(format!("database: {e}")))?
        .with_memory_cache(config.storage.memory_cache_mib.saturating_mul(1024 * 1024));
    let hub = Hub::builder()
        .storage(storage)
        .build()
        .map_err(|e| ConfigError(e.to_string()))?;

    let trusted: Vec<ipnet::IpNet> = config
        .server
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|e| ConfigError(format!("server.trusted_proxies[{i}]: `{p}`: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if let Some(url) = &config.server.public_url {
        url::Url::parse(url)
            .map_err(|e| ConfigError(format!("server.public_url: `{url}`: {e}")))?;
    }

    let mut router = Router::new().route("/healthz", get(|| async { "ok\n" }));
    // Registries with blobs of their own (`[registries.storage]`): each store is swept too.
    let mut own_stores = Vec::new();
    for (i, r) in config.registries.iter().enumerate() {
        let at = format!("registries[{i}] ({})", r.name);
        let kind = kinds::find(&r.kind).ok_or_else(|| {
            ConfigError(format!(
                "{at}.type: unknown registry type `{}` (this build serves: {})",
                r.kind,
                kinds::names().join(", ")
            ))
        })?;
        let upstreams = r.upstreams.iter().map(|u| (kind.upstream_url)(u));
        let mut rc = RegistryConfig::new(&r.name, r.mode).upstreams(upstreams);
        rc.upstream.allowed_origins = r.allowed_origins.clone();
        rc.upstream.ca_cert_path = r.tls.as_ref().and_then(|t| t.ca_cert_path.clone());
        rc.upstream.auth = r.upstream_auth.as_ref().map(|a| match a.clone() {
            config::UpstreamAuthToml::Bearer { token } => UpstreamAuth::Bearer { token },
            config::UpstreamAuthToml::Basic { username, password } => {
                UpstreamAuth::Basic { username, password }
            }
            config::UpstreamAuthToml::Header { name, value } => {
                UpstreamAuth::Header { name, value }
            }
        });
        if let Some(ttl) = r.cache.as_ref().and_then(|c| c.metadata_ttl_secs) {
            rc.metadata_ttl = std::time::Duration::from_secs(ttl);
        }
        if let Some(max) = r.max_upload_bytes {
            rc.max_upload_bytes = max;
        }
        if let Some(n) = r.max_concurrent_uploads {
            rc.max_concurrent_uploads = n;
        }
        rc.allow_unverified = r.allow_unverified;
        rc.claims = r
            .claims
            .iter()
            .enumerate()
            .map(|(j, claim)| {
                if claim.ends_with('*') {
                    return Ok(claim.clone());
                }
                (kind.package_key)(claim).map_err(|e| {
                    ConfigError(format!(
                        "{at}.claims[{j}]: `{claim}`: {}",
                        e.client_message()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let policy = RegistryPolicy::from_config(&r.policy_config(), &at)
            .map_err(|e| ConfigError(e.to_string()))?;
        let registry = match &r.storage {
            None => hub.registry_with_policy(rc, Arc::new(policy)),
            Some(st) => {
                let blobs = st
                    .blobs()
                    .map_err(|e| ConfigError(format!("{at}.storage: {e}")))?;
                let storage = hub.storage().with_blobs(Arc::new(blobs));
                own_stores.push((format!("registry:{}", r.name), storage.clone()));
                hub.registry_on(rc, Arc::new(policy), storage)
            }
        }
        .map_err(|e| ConfigError(format!("{at}: {e}")))?;
        let mount = format!("/proxy/{}", r.name);
        let base = match &config.server.public_url {
            Some(public) => BaseUrl::fixed(&format!("{}{mount}", public.trim_end_matches('/')))
                .trusted_proxies(trusted.clone()),
            None => BaseUrl::derived(&mount).trusted_proxies(trusted.clone()),
        };
        router = router.nest_service(&mount, (kind.serve)(r, registry, base));
    }

    let stores = std::iter::once(("blobs".to_owned(), hub.storage().blobs.clone()))
        .chain(own_stores.iter().map(|(n, s)| (n.clone(), s.blobs.clone())))
        .collect();
    let probe = Readiness {
        index: hub.storage().index.clone(),
        stores: Arc::new(stores),
    };
    router = router.route("/readyz", get(move || probe.clone().check()));

    let tokens = config
        .auth
        .tokens
        .iter()
        .map(|t| TokenConfig {
            name: t.name.clone(),
            secret: match (&t.value, &t.hash) {
                (Some(v), _) => TokenSecret::Plain(v.clone()),
                (None, Some(h)) => TokenSecret::Argon2(h.clone()),
                (None, None) => TokenSecret::Plain(String::new()),
            },
            role: match t.role {
                config::TokenRole::Admin => Role::Admin,
                config::TokenRole::User => Role::User,
            },
            groups: t.groups.clone(),
            id: t.id.clone(),
        })
        .collect();
    let tokens = StaticTokens::new(tokens).map_err(|e| ConfigError(e.to_string()))?;
    let index = hub.storage().index.clone();
    let pat = Arc::new(PatProvider::new(index.clone(), hub.clock()));
    let providers = build_providers(config, tokens, pat.clone(), hub.clock())?;
    let admin_state = admin::AdminState {
        index,
        audit: hub.audit().clone(),
        clock: hub.clock(),
        registries: Arc::new(
            config
                .registries
                .iter()
                .filter_map(|r| Some((r.name.clone(), kinds::find(&r.kind)?)))
                .collect(),
        ),
        on_revoke: Some(Arc::new(move |id: &str| pat.forget(id))),
        background: (config.storage.sweep_interval_secs > 0).then(|| {
            let grace = std::time::Duration::from_secs(config.storage.orphan_grace_secs);
            let interval = std::time::Duration::from_secs(config.storage.sweep_interval_secs);
            // Replicas on one database sweep one at a time; the one sweeping keeps its lease
            // from sweep to sweep, another takes over two intervals after it stopped.
            let sweepers = std::iter::once(("blobs".to_owned(), hub.storage().clone()))
                .chain(own_stores)
                .map(|(name, storage)| {
                    batlehub::core::BlobSweeper::new(storage, hub.clock())
                        .grace(grace)
                        .named(name)
                        .lease_for(interval * 2 + std::time::Duration::from_secs(60))
                })
                .collect();
            Arc::new(Background(tokio::spawn(sweep_forever(sweepers, interval))))
        }),
    };
    router = router.nest("/api/v1/admin", admin::router(admin_state));
    let limit = match config.auth.failed_auth_limit {
        Some(0) => None,
        max => Some(
            FailedAuthLimit::new(
                max.unwrap_or(30),
                std::time::Duration::from_secs(config.auth.failed_auth_window_secs.unwrap_or(60)),
            )
            .trusted_proxies(trusted)
            .clock(hub.clock()),
        ),
    };
    let router = router
        .layer(AuthLayer::new(providers).failed_auth_limit(limit))
        .layer(axum::middleware::map_request(client_addr));
    Ok((router, hub))
}

/// `/readyz`: whether this replica can serve, that is, reach its database and every blob
/// store (each probed with a bounded wait). `200 ready`, or `503` naming what failed, so a
/// load balancer takes a replica that lost its database or bucket out of rotation while
/// `/healthz` (the process is up) stays `200`.
#[derive(Debug, Clone)]
struct Readiness {
    index: Arc<dyn batlehub::core::Index>,
    stores: Arc<Vec<(String, Arc<dyn batlehub::core::BlobStore>)>>,
}

impl Readiness {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    async fn check(self) -> (axum::http::StatusCode, String) {
        let mut failed = Vec::new();
        match tokio::time::timeout(Self::WAIT, self.index.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("database: {e}")),
            Err(_) => failed.push("database: no answer within 2 s".to_owned()),
        }
        for (name, blobs) in self.stores.iter() {
            // A key that is never written: any answer (absent) shows the store is reachable.
            match tokio::time::timeout(Self::WAIT, blobs.stat("readyz-probe")).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failed.push(format!("blob store {name}: {e}")),
                Err(_) => failed.push(format!("blob store {name}: no answer within 2 s")),
            }
        }
        if failed.is_empty() {
            (axum::http::StatusCode::OK, "ready\n".to_owned())
        } else {
            tracing::warn!(failed = ?failed, "not ready");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", failed.join("; ")),
            )
        }
    }
}

/// A background task aborted when dropped.
#[derive(Debug)]
pub struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the orphan sweep of every blob store every `interval`, logging what it did.
async fn sweep_forever(sweepers: Vec<batlehub::core::BlobSweeper>, interval: std::time::Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        for sweeper in &sweepers {
            match sweeper.sweep().await {
                Ok(report) if report.deleted > 0 => {
                    tracing::info!(
                        deleted = report.deleted,
                        pending = report.pending,
                        "orphan sweep"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
            }
        }
    }
}

/// Builds the identity providers in their configured order.
fn build_providers(
    config: &Config,
    tokens: StaticTokens,
    pat: Arc<PatProvider>,
    clock: Arc<dyn batlehub::core::Clock>,
) -> Result<Providers, ConfigError> {
    use batlehub::auth::{
        ActionsOidcConfig, ActionsOidcProvider, Algorithm, ClaimRule, KubernetesConfig,
        KubernetesProvider, Matcher, OidcConfig, OidcProvider, Provider, ReviewerToken,
    };
    let algorithms = |at: &str, list: &[String]| -> Result<Vec<Algorithm>, ConfigError> {
        list.iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|e| ConfigError(format!("{at}.algorithms: `{a}`: {e}")))
            })
            .collect()
    };
    let role = |r: config::TokenRole| match r {
        config::TokenRole::Admin => Role::Admin,
        config::TokenRole::User => Role::User,
    };
    let mut by_name: Vec<(String, Arc<dyn Provider>)> =
        vec![("static".into(), Arc::new(tokens)), ("pat".into(), pat)];
    for (i, p) in config.auth.providers.iter().enumerate() {
        let at = format!("auth.providers[{i}] ({})", p.name());
        let err = |e: batlehub::auth::Error| ConfigError(format!("{at}: {e}"));
        let provider: Arc<dyn Provider> = match p.clone() {
            config::ProviderToml::Oidc {
                name,
                issuer,
                audiences,
                algorithms: algs,
                groups_claim,
                principal_claim,
                admin_groups,
                ca_cert_path,
                jwks_refresh_min_interval_secs,
            } => {
                let mut c = OidcConfig {
                    name,
                    issuer,
                    audiences,
                    algorithms: algorithms(&at, &algs)?,
                    admin_groups,
                    ca_cert_path,
                    ..OidcConfig::default()
                };
                if let Some(g) = groups_claim {
                    c.groups_claim = g;
                }
                if let Some(pc) = principal_claim {
                    c.principal_claim = pc;
                }
                if let Some(s) = jwks_refresh_min_interval_secs {
                    c.jwks_refresh_min_interval = std::time::Duration::from_secs(s);
                }
                Arc::new(OidcProvider::new(c, clock.clone()).map_err(err)?)
            }
            config::ProviderToml::ActionsOidc {
                name,
                issuer,
                audiences,
                algorithms: algs,
                rules,
                ca_cert_path,
            } => {
                let mut claim_rules = Vec::new();
                for (j, r) in rules.into_iter().enumerate() {
                    let mut conditions = std::collections::BTreeMap::new();
                    for (claim, pattern) in r.claims {
                        let m = Matcher::new(&pattern).map_err(|e| {
                            ConfigError(format!("{at}.rules[{j}].claims.{claim}: {e}"))
                        })?;
                        conditions.insert(claim, m);
                    }
                    claim_rules.push(ClaimRule {
                        conditions,
                        role: role(r.role),
                        groups: r.groups,
                    });
                }
                let c = ActionsOidcConfig {
                    name,
                    issuer,
                    audiences,
                    algorithms: algorithms(&at, &algs)?,
                    rules: claim_rules,
                    ca_cert_path,
                    ..ActionsOidcConfig::default()
                };
                Arc::new(ActionsOidcProvider::new(c, clock.clone()).map_err(err)?)
            }
            config::ProviderToml::Kubernetes {
                name,
                issuer,
                api_url,
                reviewer_token_path,
                reviewer_token,
                audiences,
                admin_groups,
                ca_cert_path,
                max_cache_secs,
                verify_signatures,
            } => {
                let reviewer = match (reviewer_token_path, reviewer_token) {
                    (Some(p), None) => ReviewerToken::File(p),
                    (None, Some(v)) => ReviewerToken::Value(v),
                    _ => {
                        return Err(ConfigError(format!(
                            "{at}: set exactly one of reviewer_token_path or reviewer_token"
                        )));
                    }
                };
                let mut c = KubernetesConfig {
                    name,
                    issuer,
                    api_url,
                    reviewer_token: reviewer,
                    audiences,
                    admin_groups,
                    ca_cert_path,
                    ..KubernetesConfig::default()
                };
                if let Some(m) = max_cache_secs {
                    c.max_cache_secs = m;
                }
                if let Some(v) = verify_signatures {
                    c.verify_signatures = v;
                }
                Arc::new(KubernetesProvider::new(c, clock.clone()).map_err(err)?)
            }
        };
        by_name.push((p.name().to_owned(), provider));
    }
    let order: Vec<String> = match &config.auth.order {
        Some(o) => o.clone(),
        None => by_name.iter().map(|(n, _)| n.clone()).collect(),
    };
    let chain = order
        .iter()
        .filter_map(|n| by_name.iter().find(|(m, _)| m == n).map(|(_, p)| p.clone()))
        .collect();
    Ok(Providers::from_arcs(chain))
}

/// Copies axum's connection info into the core's [`ClientAddr`] extension.
async fn client_addr<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(ClientAddr(addr));
    }
    req
}

/// A running server: its address and a handle to stop it.
#[derive(Debug)]
pub struct Server {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `listen` (use port 0 for any) and serves `config` in the background.
    ///
    /// # Errors
    /// Configuration or bind errors.
    pub async fn start(config: &Config, listen: &str) -> Result<Self, ConfigError> {
        let (router, hub) = build_app(config).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| ConfigError(format!("server.listen: cannot bind {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ConfigError(e.to_string()))?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            let shutdown = async move {
                let _ = rx.await;
            };
            // Without TCP_NODELAY a response written in more than one piece (a streamed
            // artifact whose last chunk waits for its digest check) stalls on Nagle's
            // algorithm until the client's delayed ACK, ~40 ms.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "server failed");
            }
            // Downloads and stores the answered requests left running, and the audit
            // events they queued, finish before the process ends.
            hub.settle().await;
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// The base URL (`http://addr`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests and the work they left running finish
    /// (downloads, storing what they fetched, audit events), and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Reads (or creates) the zero-config admin token in `data_dir`; returns it and whether it
/// was created now.
///
/// # Errors
/// I/O errors on the data directory.
pub fn admin_token(data_dir: &Path) -> std::io::Result<(String, bool)> {
    let path = data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let token = format!("bh_{}", hex::encode(raw));
    write_private(&path, &token)?;
    Ok((token, true))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

/// What the CLI asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve, from a config file or the zero-config default.
    Serve {
        /// `--config PATH` or `BATLEHUB_CONFIG`.
        config: Option<PathBuf>,
        /// `--listen ADDR` overrides `server.listen`.
        listen: Option<String>,
        /// `--data-dir PATH` for the zero-config default.
        data_dir: Option<PathBuf>,
    },
    /// Print an argon2id hash of a token (argument or stdin).
    HashToken(Option<String>),
    /// Print usage.
    Help,
}

/// Usage text.
pub const USAGE: &str = "\
usage: batlehub-server [--config PATH] [--listen HOST:PORT] [--data-dir PATH]
       batlehub-server hash-token [TOKEN]   (reads TOKEN from stdin when omitted)

With no --config (and no BATLEHUB_CONFIG), serves a local npm registry at /proxy/npm/ on
127.0.0.1:8080 with data in ./batlehub-data and prints a generated admin token.";

/// Parses command-line arguments (without the program name).
///
/// # Errors
/// A message for unknown or incomplete arguments.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    let mut config = None;
    let mut listen = None;
    let mut data_dir = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "hash-token" => return Ok(Command::HashToken(it.next().cloned())),
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "--config" | "-c" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a PATH")?))
            }
            "--listen" => listen = Some(it.next().ok_or("--listen needs HOST:PORT")?.clone()),
            "--data-dir" => {
                data_dir = Some(PathBuf::from(it.next().ok_or("--data-dir needs a PATH")?))
            }
            other => {
                if let Some(p) = other.strip_prefix("--config=") {
                    config = Some(PathBuf::from(p));
                } else {
                    return Err(format!("unknown argument `{other}`"));
                }
            }
        }
    }
    if config.is_none() {
        config = std::env::var_os("BATLEHUB_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
    }
    Ok(Command::Serve {
        config,
        listen,
        data_dir,
    })
}

/// Runs the server until SIGINT or SIGTERM.
///
/// # Errors
/// Configuration, bind and I/O errors, as text for the user.
pub async fn run(
    config_path: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<(), String> {
    // Listen for the shutdown signals before serving: a SIGTERM that arrives as soon as the
    // server answers must find the handler installed, not the default action.
    let shutdown = shutdown_signal();
    let mut config = match &config_path {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => {
            let dir = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            let mut c = Config::zero_config(&dir);
            let (token, created) =
                admin_token(&dir).map_err(|e| format!("data directory {}: {e}", dir.display()))?;
            c.auth.tokens.push(config::TokenToml {
                name: "admin".into(),
                value: Some(token.clone()),
                hash: None,
                role: config::TokenRole::Admin,
                groups: Vec::new(),
                id: None,
            });
            let file = dir.join("admin-token");
            if created {
                println!(
                    "batlehub: generated admin token (saved in {}):\n\n    {token}\n",
                    file.display()
                );
            } else {
                println!("batlehub: admin token is in {}", file.display());
            }
            c
        }
    };
    if let Some(l) = listen {
        config.server.listen = l;
    }
    let listen = config.server.listen.clone();
    let server = Server::start(&config, &listen)
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = config
        .registries
        .iter()
        .map(|r| format!("{} ({} {})", r.name, r.kind, r.mode))
        .collect();
    println!("batlehub: listening on {}", server.url());
    for r in &config.registries {
        println!(
            "batlehub:   {}/proxy/{}/  ({} {})",
            server.url(),
            r.name,
            r.kind,
            r.mode
        );
    }
    tracing::info!(addr = %server.addr, registries = ?names, "serving");
    shutdown.await;
    println!("batlehub: shutting down");
    server.stop().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
    }
}
