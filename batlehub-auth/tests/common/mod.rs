//! Test helpers: an ES256 key generated per test, token signing and hand-crafting, and a
//! wiremock identity provider serving discovery and a JWKS.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    missing_debug_implementations
)]

use std::sync::Arc;

use base64::Engine as _;
use batlehub_auth::Credentials;
use batlehub_core::FakeClock;
use chrono::{TimeZone as _, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const AUD: &str = "batlehub";

pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn creds(token: &str) -> Credentials {
    Credentials {
        token: token.to_owned(),
        username: None,
    }
}

/// The fake clock's start: 2026-01-01T00:00:00Z.
pub fn clock() -> FakeClock {
    FakeClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("date"),
    )
}

pub fn now(clock: &FakeClock) -> i64 {
    use batlehub_core::Clock as _;
    clock.now().timestamp()
}

/// A P-256 key pair generated from fresh random bytes.
pub struct EcKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        loop {
            let mut scalar = [0u8; 32];
            rand::rng().fill_bytes(&mut scalar);
            // PKCS#8 wrapping of a SEC1 ECPrivateKey (RFC 5915) on prime256v1.
            let mut der =
                hex_bytes("3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420");
            der.extend_from_slice(&scalar);
            let encoding = EncodingKey::from_ec_der(&der);
            // A scalar outside [1, n) is refused; draw again (probability ~2^-32).
            if let Ok(mut jwk) = Jwk::from_encoding_key(&encoding, Algorithm::ES256) {
                jwk.common.key_id = Some(kid.to_owned());
                return Self {
                    kid: kid.to_owned(),
                    encoding,
                    jwk,
                };
            }
        }
    }

    /// The uncompressed SEC1 public point `04 || x || y`.
    pub fn public_point(&self) -> Vec<u8> {
        let AlgorithmParameters::EllipticCurve(p) = &self.jwk.algorithm else {
            panic!("EC key")
        };
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .expect("b64")
        };
        let mut out = vec![4u8];
        out.extend(dec(&p.x));
        out.extend(dec(&p.y));
        out
    }

    /// The public key as an SPKI PEM document, as an attacker would download it.
    pub fn public_pem(&self) -> String {
        let mut der = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        der.extend(self.public_point());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Signs `claims` with ES256 and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(claims, Some(&self.kid))
    }

    pub fn sign_with_kid(&self, claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A token assembled by hand: any header, any claims, any signature bytes.
pub fn hand_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(serde_json::to_vec(header).expect("json")),
        b64url(serde_json::to_vec(claims).expect("json")),
        b64url(signature)
    )
}

/// An HS256 token whose HMAC key is `secret`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = b64url(serde_json::to_vec(header).expect("json"));
    let c = b64url(serde_json::to_vec(claims).expect("json"));
    let message = format!("{h}.{c}");
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .expect("hmac");
    format!("{message}.{sig}")
}

/// A wiremock identity provider: discovery at the issuer, the JWKS at `/jwks`.
pub struct Idp {
    pub server: MockServer,
    pub key: Arc<EcKey>,
}

impl Idp {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let key = Arc::new(EcKey::generate("key-1"));
        let issuer = server.uri();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "keys": [key.jwk],
            })))
            .mount(&server)
            .await;
        Self { server, key }
    }

    pub fn issuer(&self) -> String {
        self.server.uri()
    }

    /// How many requests reached `path`.
    pub async fn hits(&self, p: &str) -> usize {
        self.server
            .received_requests()
            .await
            .expect("recording")
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }

    /// Standard claims valid at the fake clock's time, plus `extra`.
    pub fn claims(&self, clock: &FakeClock, extra: Value) -> Value {
        let mut c = json!({
            "iss": self.issuer(),
            "aud": AUD,
            "sub": "user-123",
            "iat": now(clock),
            "exp": now(clock) + 600,
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }
}
