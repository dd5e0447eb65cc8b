//! `JwtAuth`: an auth hook that verifies a JSON Web Token (HS256, RS256 or ES256) and turns its claims into an `Identity` with channel grants and an expiry.
//!
//! Browsers cannot set headers on a `WebSocket` or an `EventSource`, so the
//! token is looked for, in order, in:
//! * `Authorization: Bearer <jwt>` (native clients; SSE POSTs);
//! * a `Sec-WebSocket-Protocol` entry `tidings.token.<jwt>` (browsers:
//!   `new WebSocket(url, ["tidings.v1.json", "tidings.token." + jwt])`; the
//!   server never echoes it, it answers with the codec's subprotocol). Not
//!   logged by proxies the way URLs are;
//! * a cookie `tidings_token` (same-site pages; pair it with an `Origins`
//!   allow-list, since cookies ride along on cross-site requests);
//! * the query parameter `access_token` (`EventSource` from another origin;
//!   lands in access logs and history: prefer short-lived tokens there).
//!
//! Claims: `sub` (the subject, required), `exp` (required, enforced at
//! connect and during the session: it ends with close `4007` when the token
//! lapses), and optionally `channels: {"subscribe": [...], "publish": [...]}`
//! with channel patterns (`room:*`, `user:{sub}`, see `ChannelGrants`);
//! without `channels`, the hook's default grants apply.
//!
//! Why `jsonwebtoken`: the most used Rust JWT crate, with the algorithms
//! needed here; its pure-Rust crypto backend (`rust_crypto`) builds without
//! a C toolchain.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Uri, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use tidings_channels::{ChannelGrants, Identity};
use tidings_runtime::BoxFuture;

use crate::auth::{Access, AuthError, AuthHook, UpgradeRequest};

/// Subprotocol prefix carrying a token.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "tidings.token.";
/// Cookie carrying a token.
pub const TOKEN_COOKIE: &str = "tidings_token";
/// Query parameter carrying a token.
pub const TOKEN_QUERY: &str = "access_token";

/// A key could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtKeyError {
    /// The PEM is not a key of the expected kind.
    #[error("invalid {kind} key: {reason}")]
    Invalid {
        /// The key kind (`RSA public`, `EC public`).
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Verifies JWTs (see the module docs for where the token may be).
#[derive(Clone)]
pub struct JwtAuth {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    default_grants: ChannelGrants,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    channels: Option<ChannelClaims>,
}

#[derive(Deserialize)]
struct ChannelClaims {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

impl JwtAuth {
    fn with_key(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
            default_grants: ChannelGrants::all(),
        }
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_secret(secret).map_err(|e| JwtKeyError::Invalid {
            kind: "HMAC secret",
            reason: e.to_string(),
        })?;
        Ok(Self::with_key(key, Algorithm::HS256))
    }

    /// RS256 with an RSA public key (PEM).
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| JwtKeyError::Invalid {
            kind: "RSA public",
            reason: e.to_string(),
        })?;
        Ok(Self::with_key(key, Algorithm::RS256))
    }

    /// ES256 with a P-256 public key (PEM).
    pub fn es256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| JwtKeyError::Invalid {
            kind: "EC public",
            reason: e.to_string(),
        })?;
        Ok(Self::with_key(key, Algorithm::ES256))
    }

    /// Only tokens with this `aud` claim.
    pub fn audience(mut self, aud: &str) -> Self {
        Arc::make_mut(&mut self.validation).set_audience(&[aud]);
        self
    }

    /// Only tokens with this `iss` claim.
    pub fn issuer(mut self, iss: &str) -> Self {
        Arc::make_mut(&mut self.validation).set_issuer(&[iss]);
        self
    }

    /// Grants of tokens without a `channels` claim (default: every channel).
    pub fn default_grants(mut self, grants: ChannelGrants) -> Self {
        self.default_grants = grants;
        self
    }

    /// Verifies `token`: the identity it proves.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Unauthorized(format!("invalid token: {e}")))?;
        let claims = data.claims;
        let grants = match &claims.channels {
            Some(c) => ChannelGrants::from_patterns(&claims.sub, &c.subscribe, &c.publish),
            None => self.default_grants.clone(),
        };
        Ok(Identity::new(claims.sub)
            .with_grants(grants)
            .with_expiry(UNIX_EPOCH + Duration::from_secs(claims.exp)))
    }
}

/// The token of a request (see the module docs for the order).
pub fn token_of(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let subprotocol = || {
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| {
                p.trim()
                    .strip_prefix(TOKEN_SUBPROTOCOL_PREFIX)
                    .map(str::to_string)
            })
    };
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == TOKEN_COOKIE).then(|| v.to_string())
            })
    };
    let query = || {
        uri.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == TOKEN_QUERY).then(|| v.to_string())
        })
    };
    bearer
        .or_else(subprotocol)
        .or_else(cookie)
        .or_else(query)
        .filter(|t| !t.is_empty())
}

impl AuthHook for JwtAuth {
    fn authorize(&self, request: UpgradeRequest) -> BoxFuture<'static, Result<Access, AuthError>> {
        let result = match token_of(&request.headers, &request.uri) {
            None => Err(AuthError::Unauthorized(
                "missing token: send it as `Authorization: Bearer`, a `tidings.token.<jwt>` subprotocol, the `tidings_token` cookie or `?access_token=`".into(),
            )),
            Some(token) => self.verify(&token).and_then(|identity| {
                // `exp` is checked by the decoder; an identity expiring right
                // now would only open a session to close it.
                match identity.expires() {
                    Some(at) if at <= SystemTime::now() => {
                        Err(AuthError::Unauthorized("token expired".into()))
                    }
                    _ => Ok(Access::Identified(identity)),
                }
            }),
        };
        Box::pin(async move { result })
    }
}
