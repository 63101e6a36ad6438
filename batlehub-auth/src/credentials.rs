//! Reading credentials from the headers each client sends.

use base64::Engine as _;
use http::{HeaderMap, HeaderName};

/// A secret presented by a client, before verification.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The token (for Basic: the password).
    pub token: String,
    /// The Basic user name, when Basic was used (`__token__` for pip/twine).
    pub username: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &"<redacted>")
            .field("username", &self.username)
            .finish()
    }
}

/// Extracts credentials: `Authorization: Bearer`, `Authorization: Basic` (token =
/// password), raw `Authorization: <token>`, or, without `Authorization`, the first of
/// `api_key_headers` present (a protocol whose client sends its key in a header of its own
/// names it there; see [`AuthLayer::api_key_header`](crate::AuthLayer::api_key_header)).
///
/// Returns `Ok(None)` when no credentials are present and `Err` with a reason when a header
/// is present but unreadable (which must not fall back to anonymous).
///
/// # Errors
/// A reason when the `Authorization` header is malformed.
pub fn extract_credentials(
    headers: &HeaderMap,
    api_key_headers: &[HeaderName],
) -> Result<Option<Credentials>, String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| "Authorization header is not valid text".to_owned())?;
        let value = value.trim();
        if value.is_empty() {
            return Err("Authorization header is empty".to_owned());
        }
        let (scheme, rest) = match value.split_once(' ') {
            Some((s, r)) => (s, r.trim()),
            None => ("", value),
        };
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            if rest.is_empty() {
                return Err("empty bearer token".to_owned());
            }
            return Ok(Some(Credentials {
                token: rest.to_owned(),
                username: None,
            }));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "Basic credentials are not valid base64".to_owned())?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| "Basic credentials are not UTF-8".to_owned())?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| "Basic credentials lack a `:`".to_owned())?;
            if pass.is_empty() {
                return Err(
                    "Basic credentials carry an empty password (the token goes there)".to_owned(),
                );
            }
            return Ok(Some(Credentials {
                token: pass.to_owned(),
                username: Some(user.to_owned()),
            }));
        }
        if scheme.is_empty() {
            // cargo and RubyGems send the raw token.
            return Ok(Some(Credentials {
                token: value.to_owned(),
                username: None,
            }));
        }
        return Err(format!("unsupported Authorization scheme `{scheme}`"));
    }
    for name in api_key_headers {
        if let Some(value) = headers.get(name) {
            let token = value
                .to_str()
                .map_err(|_| format!("{name} is not valid text"))?
                .trim();
            if token.is_empty() {
                return Err(format!("{name} is empty"));
            }
            return Ok(Some(Credentials {
                token: token.to_owned(),
                username: None,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
        m
    }

    #[test]
    fn every_client_form() {
        let basic = base64::engine::general_purpose::STANDARD.encode("__token__:tok");
        let api_key = [HeaderName::from_static("x-api-key")];
        for headers in [
            h("authorization", "Bearer tok"),
            h("authorization", "tok"),
            h("authorization", &format!("Basic {basic}")),
            h("x-api-key", "tok"),
        ] {
            assert_eq!(
                extract_credentials(&headers, &api_key)
                    .expect("ok")
                    .expect("some")
                    .token,
                "tok"
            );
        }
        assert!(
            extract_credentials(&HeaderMap::new(), &[])
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(extract_credentials(&h("authorization", "Basic !!!"), &[]).is_err());
        assert!(extract_credentials(&h("authorization", "Digest abc"), &[]).is_err());
        let nopass = base64::engine::general_purpose::STANDARD.encode("user:");
        assert!(extract_credentials(&h("authorization", &format!("Basic {nopass}")), &[]).is_err());
    }
}
