//! S3-compatible object storage for blobs (feature `s3`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opendal::Operator;

use crate::blob::{OpendalBlobStore, WriteShape};
use crate::error::StorageError;

/// Multipart part size: S3's minimum. With [`PARTS_IN_FLIGHT`] parts uploading at once an
/// upload holds about 15 MiB, however large the artifact.
const PART: usize = 5 * 1024 * 1024;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Where and how to reach an S3-compatible bucket.
///
/// ```
/// let mut s3 = batlehub_storage::S3Config::new("artifacts");
/// s3.endpoint = Some("http://127.0.0.1:9000".into());
/// s3.prefix = "batlehub/".into();
/// assert!(s3.path_style(), "path-style addressing with a custom endpoint");
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The endpoint URL (`http://127.0.0.1:9000` for a local server); `None`: AWS's, for
    /// the region.
    pub endpoint: Option<String>,
    /// The region; `None`: `AWS_REGION` or `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Static credentials: both or neither. Neither: the standard AWS chain (environment,
    /// profile files, web identity, container and instance metadata).
    pub access_key_id: Option<String>,
    /// See [`access_key_id`](Self::access_key_id).
    pub secret_access_key: Option<String>,
    /// A key prefix every blob is stored under (`team-a/`): several servers or registries
    /// can share a bucket.
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual hosts
    /// (`bucket.endpoint/key`); `None`: path style exactly when an endpoint is set (what
    /// S3-compatible servers expect; AWS wants virtual hosts).
    pub force_path_style: Option<bool>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

impl S3Config {
    /// A bucket reached with the defaults: AWS's endpoint, the environment's region and
    /// credential chain, no prefix.
    #[must_use]
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// Whether requests address the bucket by path.
    #[must_use]
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint.is_some())
    }

    /// The key prefix as the operator's root: `/`, or `/prefix/`.
    fn root(&self) -> Result<String, StorageError> {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Ok("/".into());
        }
        let unsafe_prefix = trimmed.contains('\\')
            || trimmed.contains('\0')
            || trimmed
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..");
        if unsafe_prefix {
            return Err(StorageError::S3(format!(
                "prefix {:?}: empty, `.` or `..` segments, `\\` and NUL are not allowed",
                self.prefix
            )));
        }
        Ok(format!("/{trimmed}/"))
    }
}

impl OpendalBlobStore {
    /// Opens a store in an S3-compatible bucket (feature `s3`).
    ///
    /// Writes are multipart uploads of 5 MiB parts, two in flight (memory stays flat in
    /// the artifact's size), visible only once complete; reads stream one `GET` (ranged
    /// when resuming). Requests go through a client of its own with rustls and the ring
    /// provider (no process-wide TLS set-up), the Web PKI roots, 10 s to connect and 60 s
    /// between reads. Nothing is asked of the bucket here: the first request to it finds
    /// out whether it is reachable.
    ///
    /// # Errors
    ///
    /// Fails when the configuration is incomplete (no bucket, one credential without the
    /// other, an unsafe prefix) or opendal refuses it.
    pub fn s3(config: &S3Config) -> Result<Self, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::S3("bucket is empty".into()));
        }
        let mut builder = opendal::services::S3::default()
            .bucket(&config.bucket)
            .root(&config.root()?);
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder.endpoint(endpoint);
        }
        let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|r| !r.is_empty()));
        match config.region.as_deref().filter(|r| !r.is_empty()) {
            Some(region) => builder = builder.region(region),
            None if env_region => {}
            None => builder = builder.region("us-east-1"),
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .access_key_id(id)
                    .secret_access_key(secret)
                    .disable_config_load()
                    .disable_ec2_metadata();
            }
            (None, None) => {}
            _ => {
                return Err(StorageError::S3(
                    "access_key_id and secret_access_key go together: set both, or neither for \
                     the standard AWS credential chain"
                        .into(),
                ));
            }
        }
        if !config.path_style() {
            builder = builder.enable_virtual_host_style();
        }
        let op = Operator::new(builder)?;
        let transport = opendal_http_transport_reqwest::ReqwestTransport::new(http_client()?);
        let context = op
            .base_context()
            .with_http_transport(opendal::HttpTransporter::new(transport));
        Ok(Self::with_shape(
            op.with_context(context),
            WriteShape {
                read_chunk: None,
                write_chunk: Some(PART),
                write_concurrency: PARTS_IN_FLIGHT,
            },
        ))
    }
}

/// The HTTP client of an S3 store: its own rustls configuration (ring, Web PKI roots), so
/// the library installs nothing process-wide; redirects followed (opendal expects it).
fn http_client() -> Result<reqwest::Client, StorageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::S3(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        // Not `timeout`: it would cap a whole streaming transfer.
        .read_timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| StorageError::S3(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::S3Config;

    #[test]
    fn prefixes_stay_inside_the_bucket() {
        let mut c = S3Config::new("b");
        for (prefix, root) in [
            ("", "/"),
            ("/", "/"),
            ("team-a", "/team-a/"),
            ("/team-a/blobs/", "/team-a/blobs/"),
        ] {
            c.prefix = prefix.into();
            assert_eq!(c.root().unwrap_or_default(), root, "{prefix:?}");
        }
        for bad in ["..", "a/../b", "a//b", "a/./b", "a\\b", "a\0b"] {
            c.prefix = bad.into();
            assert!(c.root().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut c = S3Config::new("b");
        c.access_key_id = Some("AKIDEXAMPLE".into());
        c.secret_access_key = Some("wJalrXUtnFEMI".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn path_style_follows_the_endpoint_unless_forced() {
        let mut c = S3Config::new("b");
        assert!(!c.path_style());
        c.endpoint = Some("http://127.0.0.1:9000".into());
        assert!(c.path_style());
        c.force_path_style = Some(false);
        assert!(!c.path_style());
        c.endpoint = None;
        c.force_path_style = Some(true);
        assert!(c.path_style());
    }
}
