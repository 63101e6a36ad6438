//! The HTTP client the network providers use (OIDC discovery and JWKS, Kubernetes
//! TokenReview): rustls with the ring provider pinned, webpki roots plus an optional CA
//! bundle, no process-wide defaults, no redirects.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest response body read from an identity provider.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Builds the client.
///
/// # Errors
/// A message naming the unreadable CA file or the client failure.
pub(crate) fn client(ca_cert_path: Option<&Path>) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert_path {
        use rustls_pki_types::pem::PemObject as _;
        let bad = |e: &dyn std::fmt::Display| format!("ca_cert_path `{}`: {e}", path.display());
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
        let mut n = 0;
        for cert in certs {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad(&"no certificate found"));
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .user_agent(concat!("batlehub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Reads a successful response's body as JSON, refusing bodies over [`MAX_BODY`].
///
/// # Errors
/// A message with the status, transport error or JSON error (never the body).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    mut resp: reqwest::Response,
) -> Result<T, String> {
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading body: {e}"))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("response larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("invalid JSON: {e}"))
}
