//! Talking to upstream registries: one HTTP client per registry instance, credentials sent
//! only to the upstream's own origin, redirects and handed-out URLs checked against an
//! allow-list, and link-local / cloud-metadata addresses refused at resolution time.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use url::Url;

use crate::error::{Error, Result};

/// Credentials for an upstream, sent only to the upstream's origin.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A named header, e.g. `X-Api-Key: <value>`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
}

impl fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAuth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            UpstreamAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            UpstreamAuth::Header { name, .. } => f
                .debug_struct("Header")
                .field("name", name)
                .finish_non_exhaustive(),
        }
    }
}

impl UpstreamAuth {
    fn header(&self) -> Result<(HeaderName, HeaderValue)> {
        use base64::Engine as _;
        let (name, value) = match self {
            UpstreamAuth::Bearer { token } => {
                (http::header::AUTHORIZATION, format!("Bearer {token}"))
            }
            UpstreamAuth::Basic { username, password } => (
                http::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"))
                ),
            ),
            UpstreamAuth::Header { name, value } => (
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| Error::internal(format!("upstream auth header name: {e}")))?,
                value.clone(),
            ),
        };
        let mut value = HeaderValue::from_str(&value)
            .map_err(|e| Error::internal(format!("upstream auth header value: {e}")))?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

/// How to reach a registry's upstreams.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpstreamOptions {
    /// Upstream roots, tried in order.
    pub urls: Vec<String>,
    /// Credentials for the upstreams' origins.
    pub auth: Option<UpstreamAuth>,
    /// Extra PEM CA bundle trusted besides the built-in roots.
    pub ca_cert_path: Option<PathBuf>,
    /// Origins (`scheme://host[:port]`) besides the upstreams' own that handed-out URLs and
    /// redirects may lead to.
    pub allowed_origins: Vec<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for response headers and between body chunks.
    pub read_timeout: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            auth: None,
            ca_cert_path: None,
            allowed_origins: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// The HTTP client of one registry instance.
#[derive(Clone)]
pub struct UpstreamClient {
    client: reqwest::Client,
    /// Upstream roots, each ending in `/`.
    roots: Arc<Vec<Url>>,
    auth_origins: Arc<Vec<url::Origin>>,
    allowed_origins: Arc<Vec<url::Origin>>,
    auth: Option<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field(
                "roots",
                &self.roots.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("auth", &self.auth.as_ref().map(|(n, _)| n.as_str()))
            .finish_non_exhaustive()
    }
}

/// The most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Reads an upstream response body of at most `limit` bytes: refused at once when the
/// declared length is larger, and as soon as the bytes read pass it otherwise (an upstream
/// cannot make the server buffer more than it asked for). `what` names the document in the
/// error.
///
/// # Errors
/// [`Error::Upstream`] when the body is too large or the transfer breaks.
pub async fn read_limited(resp: reqwest::Response, limit: u64, what: &str) -> Result<Bytes> {
    let too_large = || Error::Upstream(format!("the upstream {what} is larger than {limit} bytes"));
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let mut stream = resp.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Upstream(format!("upstream body broke: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl UpstreamClient {
    /// Builds the client: parses the upstream URLs, loads the CA bundle, pins the ring
    /// crypto provider (no process-wide default is installed).
    ///
    /// # Errors
    /// A message naming the bad URL, unreadable CA file or bad header.
    pub fn new(options: &UpstreamOptions) -> std::result::Result<Self, String> {
        let mut roots = Vec::new();
        for raw in &options.urls {
            let mut url = Url::parse(raw).map_err(|e| format!("upstream URL `{raw}`: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!("upstream URL `{raw}` must be http(s) with a host"));
            }
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            roots.push(url);
        }
        let mut allowed: Vec<url::Origin> = roots.iter().map(Url::origin).collect();
        for origin in &options.allowed_origins {
            let url = Url::parse(origin).map_err(|e| format!("allowed origin `{origin}`: {e}"))?;
            allowed.push(url.origin());
        }
        let auth = options
            .auth
            .as_ref()
            .map(UpstreamAuth::header)
            .transpose()
            .map_err(|e| format!("upstream_auth: {e:?}"))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut root_store = rustls::RootCertStore::empty();
        root_store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &options.ca_cert_path {
            use rustls_pki_types::pem::PemObject as _;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls.ca_cert_path `{}`: {e}", path.display()))?;
            let mut n = 0;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("tls.ca_cert_path `{}`: {e}", path.display()))?;
                root_store
                    .add(cert)
                    .map_err(|e| format!("tls.ca_cert_path `{}`: {e}", path.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "tls.ca_cert_path `{}`: no certificate found",
                    path.display()
                ));
            }
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_root_certificates(root_store)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .no_proxy()
            .user_agent(concat!("batlehub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            auth_origins: Arc::new(roots.iter().map(Url::origin).collect()),
            roots: Arc::new(roots),
            allowed_origins: Arc::new(allowed),
            auth,
        })
    }

    /// The upstream roots, in order.
    #[must_use]
    pub fn roots(&self) -> &[Url] {
        &self.roots
    }

    /// Resolves `path` (relative, already percent-encoded) against upstream `index`.
    ///
    /// # Errors
    /// [`Error::Internal`] when the index is out of range or the URL does not parse.
    pub fn url_for(&self, index: usize, path: &str) -> Result<Url> {
        let root = self
            .roots
            .get(index)
            .ok_or_else(|| Error::internal(format!("no upstream #{index}")))?;
        let joined = format!("{}{}", root.as_str(), path.trim_start_matches('/'));
        Url::parse(&joined).map_err(|e| Error::BadRequest(format!("bad upstream path: {e}")))
    }

    /// Checks that a URL an upstream handed out may be fetched: http(s), an allowed origin,
    /// not a literal link-local or metadata address.
    ///
    /// # Errors
    /// [`Error::Upstream`] explaining the refusal.
    pub fn check_url(&self, url: &Url) -> Result<()> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Upstream(format!(
                "refusing upstream URL with scheme `{}`",
                url.scheme()
            )));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if blocked_ip(IpAddr::V4(ip)) => {
                return Err(Error::Upstream(format!(
                    "refusing upstream URL to blocked address {ip}"
                )));
            }
            Some(url::Host::Ipv6(ip)) if blocked_ip(IpAddr::V6(ip)) => {
                return Err(Error::Upstream(format!(
                    "refusing upstream URL to blocked address {ip}"
                )));
            }
            Some(url::Host::Domain(d)) if blocked_name(d) => {
                return Err(Error::Upstream(format!(
                    "refusing upstream URL to blocked host {d}"
                )));
            }
            None => {
                return Err(Error::Upstream(
                    "refusing upstream URL without a host".into(),
                ));
            }
            _ => {}
        }
        if !self.allowed_origins.contains(&url.origin()) {
            return Err(Error::Upstream(format!(
                "refusing upstream URL: origin {} is not the upstream's and not in allowed_origins",
                url.origin().ascii_serialization()
            )));
        }
        Ok(())
    }

    /// GETs `url`, following up to five redirects within the allowed origins, attaching the
    /// upstream credentials only to the upstreams' own origins.
    ///
    /// # Errors
    /// [`Error::Upstream`] for refused URLs, transport errors and redirect loops.
    pub async fn get(&self, url: Url, headers: HeaderMap) -> Result<reqwest::Response> {
        let mut url = url;
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&url)?;
            let mut req = self.client.get(url.clone()).headers(headers.clone());
            if let Some((name, value)) = &self.auth
                && self.auth_origins.contains(&url.origin())
            {
                req = req.header(name.clone(), value.clone());
            }
            let resp = req.send().await.map_err(|e| {
                tracing::warn!(%url, error = %e, "upstream request failed");
                Error::Upstream(format!(
                    "upstream {} unreachable",
                    url.origin().ascii_serialization()
                ))
            })?;
            if resp.status().is_redirection() && resp.status() != StatusCode::NOT_MODIFIED {
                let location = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Error::Upstream("upstream redirect without Location".into()))?;
                url = url
                    .join(location)
                    .map_err(|e| Error::Upstream(format!("bad upstream redirect: {e}")))?;
                continue;
            }
            return Ok(resp);
        }
        Err(Error::Upstream("too many upstream redirects".into()))
    }
}

/// Link-local, unspecified and cloud-metadata addresses: never contacted.
fn blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_ip(IpAddr::V4(v4));
            }
            v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn blocked_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "metadata" || h == "metadata.google.internal" || h.ends_with(".metadata.google.internal")
}

/// A resolver that drops blocked addresses, so a DNS name cannot smuggle a request to a
/// metadata endpoint.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if blocked_name(&host) {
                return Err(format!("refusing to resolve blocked host {host}").into());
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !blocked_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves only to blocked addresses").into());
            }
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(urls: &[&str], allowed: &[&str]) -> UpstreamClient {
        UpstreamClient::new(&UpstreamOptions {
            urls: urls.iter().map(|s| (*s).to_owned()).collect(),
            allowed_origins: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..UpstreamOptions::default()
        })
        .expect("client")
    }

    #[test]
    fn only_allowed_origins() {
        let c = client(&["http://127.0.0.1:4873/npm"], &["https://cdn.example.com"]);
        assert_eq!(c.roots()[0].as_str(), "http://127.0.0.1:4873/npm/");
        assert!(
            c.check_url(&Url::parse("http://127.0.0.1:4873/x.tgz").expect("url"))
                .is_ok()
        );
        assert!(
            c.check_url(&Url::parse("https://cdn.example.com/x.tgz").expect("url"))
                .is_ok()
        );
        assert!(
            c.check_url(&Url::parse("http://127.0.0.1:9999/x.tgz").expect("url"))
                .is_err()
        );
        assert!(
            c.check_url(&Url::parse("file:///etc/passwd").expect("url"))
                .is_err()
        );
    }

    #[test]
    fn metadata_addresses_blocked() {
        let c = client(
            &["http://169.254.169.254/"],
            &["http://[fe80::1]", "http://metadata.google.internal"],
        );
        for u in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://metadata.google.internal/",
        ] {
            assert!(c.check_url(&Url::parse(u).expect("url")).is_err(), "{u}");
        }
        assert!(blocked_ip("::ffff:169.254.1.1".parse().expect("ip")));
        assert!(!blocked_ip("127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn bad_config_is_an_error() {
        assert!(
            UpstreamClient::new(&UpstreamOptions {
                urls: vec!["ftp://x/".into()],
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            UpstreamClient::new(&UpstreamOptions {
                urls: vec!["not a url".into()],
                ..Default::default()
            })
            .is_err()
        );
    }
}
