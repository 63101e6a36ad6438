//! Reading credentials from the headers each client sends.

use base64::Engine as _;
use http::HeaderMap;

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
/// password), raw `Authorization: <token>`, or `X-NuGet-ApiKey`.
///
/// Returns `Ok(None)` when no credentials are present and `Err` with a reason when a header
/// is present but unreadable (which must not fall back to anonymous).
///
/// # Errors
/// A reason when the `Authorization` header is malformed.
pub fn extract_credentials(headers: &HeaderMap) -> Result<Option<Credentials>, String> {
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
    if let Some(value) = headers.get("x-nuget-apikey") {
        let token = value
            .to_str()
            .map_err(|_| "X-NuGet-ApiKey is not valid text".to_owned())?
            .trim();
        if token.is_empty() {
            return Err("X-NuGet-ApiKey is empty".to_owned());
        }
        return Ok(Some(Credentials {
            token: token.to_owned(),
            username: None,
        }));
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
        for headers in [
            h("authorization", "Bearer tok"),
            h("authorization", "tok"),
            h("authorization", &format!("Basic {basic}")),
            h("x-nuget-apikey", "tok"),
        ] {
            assert_eq!(
                extract_credentials(&headers)
                    .expect("ok")
                    .expect("some")
                    .token,
                "tok"
            );
        }
        assert!(
            extract_credentials(&HeaderMap::new())
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(extract_credentials(&h("authorization", "Basic !!!")).is_err());
        assert!(extract_credentials(&h("authorization", "Digest abc")).is_err());
        let nopass = base64::engine::general_purpose::STANDARD.encode("user:");
        assert!(extract_credentials(&h("authorization", &format!("Basic {nopass}"))).is_err());
    }
}
