//! The externally visible URL of a registry instance.

use std::net::{IpAddr, SocketAddr};

use http::request::Parts;
use ipnet::IpNet;

/// The address of the connected peer, inserted into request extensions by the host server.
///
/// Forwarded headers are believed only when this peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// How a service learns its own absolute URL, for links it hands out (npm tarball URLs,
/// cargo `dl`, ...).
///
/// Either fixed by configuration, or derived per request from `Host` (or, behind a trusted
/// proxy, `X-Forwarded-Proto`/`X-Forwarded-Host`) plus the path the service is mounted at.
#[derive(Debug, Clone, Default)]
pub struct BaseUrl {
    fixed: Option<String>,
    mount_path: String,
    trusted_proxies: Vec<IpNet>,
}

impl BaseUrl {
    /// A fixed base URL such as `https://hub.example.com/proxy/npm`.
    #[must_use]
    pub fn fixed(url: &str) -> Self {
        Self {
            fixed: Some(url.trim_end_matches('/').to_owned()),
            mount_path: String::new(),
            trusted_proxies: Vec::new(),
        }
    }

    /// A base URL derived per request, for a service mounted at `mount_path` (`""` for `/`).
    #[must_use]
    pub fn derived(mount_path: &str) -> Self {
        let trimmed = mount_path.trim_end_matches('/');
        let mount_path = if trimmed.is_empty() || trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Self {
            fixed: None,
            mount_path,
            trusted_proxies: Vec::new(),
        }
    }

    /// Peers whose `X-Forwarded-*` headers are believed.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The base URL for this request, without a trailing slash.
    #[must_use]
    pub fn resolve(&self, parts: &Parts) -> String {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let trusted = parts
            .extensions
            .get::<ClientAddr>()
            .is_some_and(|ClientAddr(addr)| {
                self.trusted_proxies
                    .iter()
                    .any(|net| net.contains(&addr.ip()))
            });
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let forwarded_proto = trusted.then(|| header("x-forwarded-proto")).flatten();
        let forwarded_host = trusted.then(|| header("x-forwarded-host")).flatten();
        let scheme = forwarded_proto
            .filter(|p| *p == "http" || *p == "https")
            .or_else(|| parts.uri.scheme_str())
            .unwrap_or("http");
        let host = forwarded_host
            .filter(|h| valid_host(h))
            .or_else(|| header("host").filter(|h| valid_host(h)))
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        format!("{scheme}://{host}{}", self.mount_path)
    }

    /// The client's address: the peer, or behind trusted proxies the last untrusted address
    /// of `X-Forwarded-For` (see [`client_ip`]).
    #[must_use]
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        client_ip(&parts.headers, &parts.extensions, &self.trusted_proxies)
    }
}

/// The client's address: the [`ClientAddr`] peer, or, when the peer is one of `trusted`
/// proxies, the nearest untrusted address of `X-Forwarded-For`. `None` without a
/// [`ClientAddr`] extension.
///
/// Every `X-Forwarded-For` line counts, in order: a proxy may add its own line instead of
/// appending to the one it received, and the nearest hop is last. The walk goes from the
/// nearest hop back while the hops are trusted proxies; anything unreadable stops it
/// (a hop a trusted proxy wrote is never skipped).
#[must_use]
pub fn client_ip(
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let peer = extensions.get::<ClientAddr>()?.0.ip();
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return Some(client);
        };
        for hop in line.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        return Some(client);
                    }
                }
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}

/// The stand-in for a request's base URL in renderings that are cached and shared.
///
/// A rendering keyed by the base URL would let clients vary the key (every `Host` a new
/// entry, evicting the others); instead documents are rendered once with this placeholder
/// and [`rebase`]d per request. It is random per process (an `http://` URL under the
/// reserved `.invalid` domain), so no upstream document can contain it and a rebase can
/// never rewrite an upstream's own text.
#[must_use]
pub fn placeholder() -> &'static str {
    static PLACEHOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x62_61_74_6c_65_68_75_62);
        format!("http://base-{:016x}.batlehub.invalid", h.finish())
    })
}

/// `rendered` with every [`placeholder`] replaced by `base`, which the caller has escaped
/// for the document's format (JSON string, HTML attribute); shared, not copied, when the
/// placeholder does not occur.
#[must_use]
pub fn rebase(rendered: &bytes::Bytes, base: &str) -> bytes::Bytes {
    let needle = placeholder().as_bytes();
    let mut hits = memchr::memmem::find_iter(rendered, needle).peekable();
    if hits.peek().is_none() {
        return rendered.clone();
    }
    let mut out = Vec::with_capacity(rendered.len() + base.len().saturating_mul(8));
    let mut at = 0;
    for hit in hits {
        out.extend_from_slice(&rendered[at..hit]);
        out.extend_from_slice(base.as_bytes());
        at = hit + needle.len();
    }
    out.extend_from_slice(&rendered[at..]);
    bytes::Bytes::from(out)
}

/// A document rendered under the [`placeholder`] and shared by every request for it, with
/// copies [`rebase`]d onto the last few base URLs it was asked under (clients that vary
/// `Host` cost a rebase each, never an eviction elsewhere; a big page is copied once per
/// base URL, not once per request).
pub struct Rendering {
    bytes: bytes::Bytes,
    /// `(base, bytes)`, newest first, at most [`REBASED`].
    rebased: parking_lot::Mutex<Vec<(String, bytes::Bytes)>>,
}

/// How many base URLs a [`Rendering`] keeps rebased copies for.
const REBASED: usize = 2;

impl std::fmt::Debug for Rendering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendering")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Rendering {
    /// `bytes`, links under the [`placeholder`].
    #[must_use]
    pub fn new(bytes: bytes::Bytes) -> Self {
        Self {
            bytes,
            rebased: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// What it holds while served under one base URL: itself and one rebased copy.
    #[must_use]
    pub fn weight(&self) -> usize {
        self.bytes.len().saturating_mul(2)
    }

    /// The rendering as made, under the placeholder.
    #[must_use]
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// The rendering with its links under `base` (escaped as [`rebase`] says); the same
    /// bytes as [`bytes`](Self::bytes) when it holds no link.
    #[must_use]
    pub fn at(&self, base: &str) -> bytes::Bytes {
        if let Some((_, bytes)) = self.rebased.lock().iter().find(|(b, _)| b == base) {
            return bytes.clone();
        }
        let bytes = rebase(&self.bytes, base);
        if bytes.as_ptr() != self.bytes.as_ptr() {
            let mut cached = self.rebased.lock();
            cached.retain(|(b, _)| b != base);
            cached.insert(0, (base.to_owned(), bytes.clone()));
            cached.truncate(REBASED);
        }
        bytes
    }
}

/// A `Host` (or forwarded host) usable in the URLs we write: `host[:port]` that a URL
/// parser accepts as it is (a value like `:1.2.3.4`, `[::1` or `1.2.3.4.5` would otherwise
/// end up in every link of a document, and clients would refuse them).
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        && url::Url::parse(&format!("http://{h}/")).is_ok_and(|u| u.host_str().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut parts, ()) = b.body(()).expect("request").into_parts();
        if let Some(p) = peer {
            parts
                .extensions
                .insert(ClientAddr(p.parse().expect("addr")));
        }
        parts
    }

    #[test]
    fn derived_from_host_and_mount() {
        let b = BaseUrl::derived("/proxy/npm/");
        assert_eq!(
            b.resolve(&parts(&[("host", "hub:8080")], None)),
            "http://hub:8080/proxy/npm"
        );
        assert_eq!(
            BaseUrl::derived("").resolve(&parts(&[("host", "h")], None)),
            "http://h"
        );
    }

    #[test]
    fn rebase_replaces_every_placeholder_and_nothing_else() {
        let p = placeholder();
        assert!(p.starts_with("http://base-") && p.ends_with(".batlehub.invalid"));
        let doc = bytes::Bytes::from(format!(
            r#"{{"a":"{p}/x/-/x-1.tgz","b":"{p}/y","c":"http://base-0.batlehub.invalid"}}"#
        ));
        assert_eq!(
            rebase(&doc, "https://hub.test/npm"),
            r#"{"a":"https://hub.test/npm/x/-/x-1.tgz","b":"https://hub.test/npm/y","c":"http://base-0.batlehub.invalid"}"#
        );
        let plain = bytes::Bytes::from_static(b"no links here");
        let shared = Rendering::new(plain.clone());
        assert_eq!(shared.at("https://a.test").as_ptr(), plain.as_ptr());
        let shared = Rendering::new(doc.clone());
        let first = shared.at("https://a.test");
        assert_eq!(
            shared.at("https://a.test").as_ptr(),
            first.as_ptr(),
            "kept, not rebased again"
        );
        let _ = shared.at("https://b.test");
        let _ = shared.at("https://c.test");
        assert_ne!(
            shared.at("https://a.test").as_ptr(),
            first.as_ptr(),
            "two bases kept"
        );
        assert_eq!(shared.at("https://a.test"), first);
        assert_eq!(
            rebase(&plain, "x").as_ptr(),
            plain.as_ptr(),
            "shared, not copied"
        );
    }

    #[test]
    fn hosts_that_would_break_links_are_ignored() {
        for good in [
            "a.test",
            "a.test:8080",
            "127.0.0.1:1",
            "[::1]",
            "[2001:db8::1]:443",
            "a_b",
        ] {
            assert!(valid_host(good), "{good}");
        }
        // Found by the fuzz target `forwarded_headers`: `:1.2.3.4` became `http://:1.2.3.4`.
        for bad in [
            ":203.0.113.7",
            "a:b:c",
            "[::1",
            "::1",
            "1.2.3.4.5",
            "a.test:99999",
            "[x]:1",
            "",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
        let p = parts(&[("host", ":203.0.113.7")], None);
        assert_eq!(BaseUrl::derived("/m").resolve(&p), "http://localhost/m");
    }

    #[test]
    fn forwarded_only_from_trusted() {
        let b = BaseUrl::derived("/npm").trusted_proxies(vec!["10.0.0.0/8".parse().expect("net")]);
        let h = [
            ("host", "internal"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "hub.example.com"),
        ];
        assert_eq!(
            b.resolve(&parts(&h, Some("10.1.2.3:5555"))),
            "https://hub.example.com/npm"
        );
        assert_eq!(
            b.resolve(&parts(&h, Some("192.0.2.1:5555"))),
            "http://internal/npm"
        );
        assert_eq!(b.resolve(&parts(&h, None)), "http://internal/npm");
    }

    #[test]
    fn client_ip_through_trusted_proxies() {
        let b = BaseUrl::derived("").trusted_proxies(vec!["10.0.0.0/8".parse().expect("net")]);
        let h = [("x-forwarded-for", "198.51.100.7, 10.0.0.2")];
        assert_eq!(
            b.client_ip(&parts(&h, Some("10.0.0.1:1"))),
            Some("198.51.100.7".parse().expect("ip"))
        );
        assert_eq!(
            b.client_ip(&parts(&h, Some("192.0.2.1:1"))),
            Some("192.0.2.1".parse().expect("ip"))
        );
        assert_eq!(b.client_ip(&parts(&[], None)), None);
        // A trusted proxy that adds its own `X-Forwarded-For` line instead of appending:
        // the client spoofs the first line, the proxy's line names the real client.
        let two = [
            ("x-forwarded-for", "203.0.113.66"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(
            b.client_ip(&parts(&two, Some("10.0.0.1:1"))),
            Some("198.51.100.7".parse().expect("ip"))
        );
        // Through two trusted hops, each on its own line.
        let chain = [
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.0.0.9"),
        ];
        assert_eq!(
            b.client_ip(&parts(&chain, Some("10.0.0.1:1"))),
            Some("198.51.100.7".parse().expect("ip"))
        );
    }

    #[test]
    fn fixed_wins() {
        let b = BaseUrl::fixed("https://hub.example.com/proxy/npm/");
        assert_eq!(
            b.resolve(&parts(&[("host", "evil")], None)),
            "https://hub.example.com/proxy/npm"
        );
    }
}
