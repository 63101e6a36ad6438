//! Fuzz targets for the parsers of untrusted input shared by every protocol: path segments,
//! digests published by upstreams, forwarded-address headers and credentials
//! (`PROPTEST_CASES` sets the length of a run).

use std::net::{IpAddr, SocketAddr};

use batlehub_auth::extract_credentials;
use batlehub_core::digest::ExpectedDigest;
use batlehub_core::protocol::{decode_path, decode_segment};
use batlehub_core::{BaseUrl, ClientAddr, client_ip};
use batlehub_test::fuzz::{mutated_any, mutated_str};
use http::{HeaderValue, Request};
use proptest::prelude::*;

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    mutated_any(vec![
        b"203.0.113.7, 10.0.0.2".to_vec(),
        b"[2001:db8::1]:8080".to_vec(),
        b"registry.example.test:8443".to_vec(),
        b"Bearer bh_0123456789abcdef".to_vec(),
        b"Basic dXNlcjpwYXNzd29yZA==".to_vec(),
        b"https".to_vec(),
    ])
}

fn parts(headers: &[(&'static str, &[u8])], peer: &str) -> http::request::Parts {
    let mut req = Request::get("/proxy/npm/pkg").body(()).expect("request");
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            req.headers_mut().append(*name, v);
        }
    }
    let peer: SocketAddr = peer.parse().expect("peer");
    req.extensions_mut().insert(ClientAddr(peer));
    req.into_parts().0
}

proptest! {
    #[test]
    fn segments(raw in prop_oneof![
        mutated_str("@scope%2fpkg-1.0.0.tgz"),
        mutated_str("%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        any::<String>(),
    ]) {
        if let Ok(seg) = decode_segment("segment", &raw) {
            prop_assert!(!seg.is_empty() && seg != "." && seg != "..", "{:?}", raw);
            prop_assert!(!seg.contains(['/', '\\', '\0']), "{:?}", raw);
            prop_assert!(!seg.chars().any(char::is_control), "{:?}", raw);
        }
        if let Ok(path) = decode_path("path", &raw) {
            for part in path.split('/') {
                prop_assert!(!part.is_empty() && part != "." && part != "..", "{:?}", raw);
                prop_assert!(!part.contains(['\\', '\0']), "{:?}", raw);
            }
        }
    }

    #[test]
    fn digests(
        sri in prop_oneof![
            mutated_str("sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg== sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            any::<String>(),
        ],
        hex in mutated_str("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ) {
        let _ = ExpectedDigest::from_sri(&sri);
        for algorithm in ["sha1", "sha256", "sha512", "md5", ""] {
            if ExpectedDigest::from_hex(algorithm, &hex).is_some() {
                let len = hex.trim().len();
                prop_assert!(len == 40 || len == 64 || len == 128, "{:?}", hex);
            }
        }
    }

    #[test]
    fn forwarded_headers(
        host in header_value(),
        fwd_host in header_value(),
        fwd_proto in header_value(),
        fwd_for in proptest::collection::vec(header_value(), 0..3),
        trusted_peer in any::<bool>(),
    ) {
        let peer = if trusted_peer { "10.0.0.9:5000" } else { "198.51.100.4:5000" };
        let mut headers: Vec<(&'static str, &[u8])> = vec![
            ("host", &host),
            ("x-forwarded-host", &fwd_host),
            ("x-forwarded-proto", &fwd_proto),
        ];
        headers.extend(fwd_for.iter().map(|v| ("x-forwarded-for", v.as_slice())));
        let p = parts(&headers, peer);
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let base = BaseUrl::derived("/proxy/npm").trusted_proxies(trusted.clone());

        // The base URL is always a URL with our mount path, whatever the headers say.
        let url = base.resolve(&p);
        let parsed = url::Url::parse(&url);
        prop_assert!(parsed.is_ok(), "{:?}", url);
        let path = parsed.map(|u| u.path().to_owned()).unwrap_or_default();
        prop_assert_eq!(path.as_str(), "/proxy/npm");
        // An untrusted peer cannot steer it with forwarded headers.
        if !trusted_peer {
            prop_assert_eq!(&url, &base.resolve(&parts(&[("host", &host)], peer)));
        }

        // The client address is the peer, or an address a header named behind a trusted peer.
        let ip = client_ip(&p.headers, &p.extensions, &trusted);
        let peer_ip: IpAddr = peer.parse::<SocketAddr>().expect("peer").ip();
        if trusted_peer {
            let ip = ip.expect("an address");
            let named = fwd_for.iter().any(|v| {
                String::from_utf8_lossy(v).split(',').any(|h| h.trim().parse::<IpAddr>() == Ok(ip))
            });
            prop_assert!(ip == peer_ip || named, "{ip}");
        } else {
            prop_assert_eq!(ip, Some(peer_ip));
        }
    }

    #[test]
    fn credentials(
        authorization in header_value(),
        api_key in header_value(),
        with_authorization in any::<bool>(),
    ) {
        let mut headers = http::HeaderMap::new();
        if with_authorization && let Ok(v) = HeaderValue::from_bytes(&authorization) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&api_key) {
            headers.insert("x-api-key", v);
        }
        let name = http::HeaderName::from_static("x-api-key");
        if let Ok(Some(creds)) = extract_credentials(&headers, std::slice::from_ref(&name)) {
            prop_assert!(!creds.token.is_empty());
        }
    }
}
