//! Reading JWTs before and after verification: the unverified parts used to decide which
//! provider a token belongs to, and claim helpers shared by the JWT providers.

use base64::Engine as _;
use serde_json::{Map, Value};

/// JSON object claims or header.
pub(crate) type Object = Map<String, Value>;

const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD_INDIFFERENT;

/// A compact JWS split into its parts, nothing verified.
#[derive(Debug)]
pub(crate) struct UnverifiedJwt<'a> {
    /// `base64(header).base64(payload)`: the signed bytes.
    pub(crate) message: &'a str,
    /// The signature part, still base64url.
    pub(crate) signature: &'a str,
    /// The decoded header.
    pub(crate) header: Object,
    /// The decoded claims.
    pub(crate) claims: Object,
}

impl<'a> UnverifiedJwt<'a> {
    /// Splits and decodes `token`; `None` when it is not a compact JWS with JSON object
    /// header and payload (so it is some other kind of token).
    pub(crate) fn parse(token: &'a str) -> Option<Self> {
        if token.len() > 64 * 1024 {
            return None;
        }
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || h.is_empty() || p.is_empty() {
            return None;
        }
        let header = decode_object(h)?;
        let claims = decode_object(p)?;
        Some(Self {
            message: &token[..h.len() + 1 + p.len()],
            signature: s,
            header,
            claims,
        })
    }

    /// The unverified `iss` claim.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The signature bytes.
    pub(crate) fn signature_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(self.signature).ok()
    }
}

fn decode_object(part: &str) -> Option<Object> {
    let bytes = B64.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A NumericDate claim (`exp`, `nbf`) in whole seconds; `Err` when present but not a number.
pub(crate) fn numeric_date(claims: &Object, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().and_then(whole_seconds))
            .map(Some)
            .ok_or_else(|| format!("claim `{name}` is not a valid date")),
        Some(_) => Err(format!("claim `{name}` is not a number")),
    }
}

/// NumericDate may carry fractions; whole seconds suffice.
fn whole_seconds(f: f64) -> Option<i64> {
    if !f.is_finite() || f.abs() > 1e15 {
        return None;
    }
    // Bounded above, so the cast after `floor` is exact.
    Some(f.floor() as i64)
}

/// A claim looked up by exact name, then (for names with dots, like Keycloak's
/// `realm_access.roles`) as a path through nested objects.
pub(crate) fn claim<'a>(claims: &'a Object, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A scalar claim as text (strings as they are, numbers and booleans printed).
pub(crate) fn claim_text(claims: &Object, name: &str) -> Option<String> {
    scalar_text(claim(claims, name)?)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A claim holding a list of strings (or one string), as a list.
pub(crate) fn claim_list(claims: &Object, name: &str) -> Vec<String> {
    match claim(claims, name) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> String {
        B64.encode(serde_json::to_vec(v).expect("json"))
    }

    #[test]
    fn parses_only_compact_jws() {
        let h = enc(&serde_json::json!({"alg": "ES256"}));
        let p = enc(&serde_json::json!({"iss": "https://idp", "n": 1.5}));
        let token = format!("{h}.{p}.c2ln");
        let jwt = UnverifiedJwt::parse(&token).expect("jwt");
        assert_eq!(jwt.issuer(), Some("https://idp"));
        assert_eq!(jwt.message, format!("{h}.{p}"));
        assert_eq!(jwt.signature_bytes().expect("sig"), b"sig");
        assert_eq!(numeric_date(&jwt.claims, "n"), Ok(Some(1)));
        assert!(UnverifiedJwt::parse("bhp_abc_def").is_none());
        assert!(UnverifiedJwt::parse("a.b.c").is_none());
        assert!(UnverifiedJwt::parse(&format!("{h}.{p}.x.y")).is_none());
    }

    /// Arbitrary JSON up to a few levels deep: claims and headers a forger could send.
    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<i32>().prop_map(|i| Value::from(f64::from(i) / 4.0)),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    "(iss|exp|nbf|aud|sub|kid|alg|.{0,6})",
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Fuzz target: forged tokens (any JSON in header and claims, any bytes around the
        /// dots) never panic, and what parses reads back the parts it was given.
        #[test]
        fn fuzz_unverified_tokens(
            header in json(),
            claims in json(),
            signature in "[A-Za-z0-9_=+/-]{0,40}",
            noise in proptest::option::of(".{0,8}"),
        ) {
            let (h, p) = (enc(&header), enc(&claims));
            let token = match &noise {
                None => format!("{h}.{p}.{signature}"),
                Some(n) => format!("{h}{n}.{p}.{signature}"),
            };
            if let Some(jwt) = UnverifiedJwt::parse(&token) {
                proptest::prop_assert!(token.starts_with(jwt.message));
                proptest::prop_assert!(jwt.header.len() + jwt.claims.len() < 64);
                let _ = (jwt.issuer(), jwt.signature_bytes());
                for name in ["exp", "nbf", "iat"] {
                    let _ = numeric_date(&jwt.claims, name);
                }
                let _ = claim_list(&jwt.claims, "aud");
                let _ = claim_text(&jwt.claims, "sub");
                if noise.is_none() {
                    proptest::prop_assert_eq!(Value::Object(jwt.claims.clone()), claims.clone());
                }
            }
            // Objects only: anything else is some other kind of token.
            if !claims.is_object() || !header.is_object() {
                proptest::prop_assert!(noise.is_some() || UnverifiedJwt::parse(&token).is_none());
            }
        }
    }

    #[test]
    fn claims() {
        let c = serde_json::json!({
            "realm_access": {"roles": ["a", "b"]},
            "g": "one",
            "run": 42
        });
        let c = c.as_object().expect("object");
        assert_eq!(claim_list(c, "realm_access.roles"), ["a", "b"]);
        assert_eq!(claim_list(c, "g"), ["one"]);
        assert!(claim_list(c, "missing").is_empty());
        assert_eq!(claim_text(c, "run").as_deref(), Some("42"));
    }
}
