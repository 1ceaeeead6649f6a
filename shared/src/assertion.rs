//! The identity assertion the gateway sends upstream (`X-Tenantgate-Assertion`):
//! a short-lived JWT an app verifies with any JOSE library instead of trusting the
//! network.
//!
//! By default it is signed with Ed25519 (`EdDSA`), and the public keys are served
//! as a JWKS (`/.well-known/jwks.json`, each with its RFC 7638 thumbprint as
//! `kid`), so apps hold no secret. Each assertion is bound to one app (`aud`: the
//! route's `audience`, or its name) and one request (`htm` and `htu`, the method
//! and the path the app receives, as DPoP binds a proof), and lives at most 60
//! seconds, so a captured one cannot be replayed against another app or endpoint.
//!
//! Keys come from `GATEWAY_ASSERTION_KEY_FILE`: PEM PKCS#8 Ed25519 private keys,
//! the first one signing, the others published (the next key, or one still
//! verifying). The file is re-read when it changes; a key that stops signing stays
//! in the JWKS until the last assertion it signed has expired. Without a file the
//! gateway makes a key at start (fine for one instance; several need the file).
//! `HS256` with `GATEWAY_ASSERTION_SECRET` stays available as an explicit choice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ApiKeyId, Email, Role, Slug, TenantId, UserId};

/// Why assertion keys could not be loaded or an assertion signed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no usable key, or a block that is not one.
    #[error("{}: {why}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Signing failed.
    #[error("signing the assertion failed")]
    Signing,
}

/// How assertions are signed (`GATEWAY_ASSERTION_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssertionAlgorithm {
    /// Ed25519, public keys in the JWKS (the default).
    #[serde(rename = "EdDSA", alias = "eddsa", alias = "ed25519")]
    EdDsa,
    /// HMAC with `GATEWAY_ASSERTION_SECRET`, which every verifying app must hold.
    #[serde(rename = "HS256", alias = "hs256")]
    Hs256,
}

/// The claims of an assertion (the wire type).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssertionClaims {
    /// The user id, when the request is authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<UserId>,
    /// The user's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email is verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The tenant id, when one was resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The tenant slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tslug: Option<String>,
    /// The caller's role in the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Who the caller is: `user` or `api_key` (absent on anonymous requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// The API key's id, when an API key authenticated the request (then there
    /// is no `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<ApiKeyId>,
    /// The request id: one assertion per request.
    pub jti: String,
    /// The request's method.
    pub htm: String,
    /// The path the app receives (without the query string).
    pub htu: String,
    /// The app it is for: the route's `audience`, or its name.
    pub aud: String,
    /// Issued at.
    pub iat: i64,
    /// Expires at (at most 60 s after `iat`).
    pub exp: i64,
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
}

/// What the proxy knows when it asks for an assertion.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The user, if any: id, email, verified.
    pub user: Option<(UserId, &'a Email, bool)>,
    /// Or the API key that authenticated the request.
    pub api_key: Option<ApiKeyId>,
    /// The tenant, if any: id and slug.
    pub tenant: Option<(TenantId, &'a Slug)>,
    /// The role there.
    pub role: Option<Role>,
}

struct SigningKey {
    kid: Option<String>,
    signer: Signer,
    /// The public JWK, for Ed25519 keys.
    jwk: Option<serde_json::Value>,
}

/// What signs: an Ed25519 key pair parsed once (jsonwebtoken 9 parses the PKCS#8
/// document and derives the public key again on every signature, which doubled
/// the cost of each assertion), or the HMAC key.
enum Signer {
    Ed25519 {
        pair: Ed25519KeyPair,
        /// The JWS header `{"typ":"JWT","alg":"EdDSA","kid":...}`, base64url, as
        /// jsonwebtoken writes it.
        header: String,
    },
    Hs256(EncodingKey),
}

struct KeySet {
    signing: Arc<SigningKey>,
    /// Published besides the signing key: the file's other keys, and keys that
    /// stopped signing, each until it may still verify (`None`: while in the file).
    published: Vec<(Arc<SigningKey>, Option<SystemTime>)>,
}

/// Signs assertions; shared by every request, reloaded by the control plane.
pub struct Assertions {
    algorithm: Algorithm,
    issuer: String,
    ttl: Duration,
    file: Option<PathBuf>,
    /// The SHA-256 of the key file's content when last read (it is small: reading
    /// it on every check is cheaper than trusting modification times).
    stamp: Mutex<Option<[u8; 32]>>,
    keys: ArcSwap<KeySet>,
}

/// How long a retired key is published past the last assertion it can have
/// signed: clock skew between gateway and app.
const RETIRE_SLACK: Duration = Duration::from_secs(30);

impl Assertions {
    /// Ed25519 keys from `file`, or one made now when `file` is `None`.
    ///
    /// # Errors
    /// [`Error`] when the file cannot be read or holds no Ed25519 key.
    pub fn ed25519(file: Option<&Path>, issuer: &str, ttl: Duration) -> Result<Assertions, Error> {
        let (signing, others, stamp) = match file {
            Some(path) => {
                let text = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
                let (signing, others) = parse_keys(&text, path)?;
                (signing, others, Some(Sha256::digest(&text).into()))
            }
            None => (Arc::new(ed25519_key(&generate_pkcs8(), Path::new("(generated)"))?), Vec::new(), None),
        };
        let assertions = Assertions {
            algorithm: Algorithm::EdDSA,
            issuer: issuer.to_owned(),
            ttl,
            file: file.map(Path::to_owned),
            stamp: Mutex::new(stamp),
            keys: ArcSwap::from_pointee(KeySet { signing, published: others.into_iter().map(|k| (k, None)).collect() }),
        };
        Ok(assertions)
    }

    /// HMAC-SHA256 with `secret` (which apps then hold; nothing is published).
    pub fn hs256(secret: &[u8], issuer: &str, ttl: Duration) -> Assertions {
        let signing =
            Arc::new(SigningKey { kid: None, signer: Signer::Hs256(EncodingKey::from_secret(secret)), jwk: None });
        Assertions {
            algorithm: Algorithm::HS256,
            issuer: issuer.to_owned(),
            ttl,
            file: None,
            stamp: Mutex::new(None),
            keys: ArcSwap::from_pointee(KeySet { signing, published: Vec::new() }),
        }
    }

    /// Signs an assertion about `subject` for the app `audience`, bound to the
    /// request `request_id` (`method`, `path` as the app receives it).
    ///
    /// # Errors
    /// [`Error::Signing`] if encoding fails.
    pub fn sign(
        &self,
        subject: &Subject<'_>,
        audience: &str,
        request_id: &str,
        method: &str,
        path: &str,
    ) -> Result<String, Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = AssertionClaims {
            sub: subject.user.as_ref().map(|u| u.0),
            email: subject.user.as_ref().map(|u| u.1.as_str().to_owned()),
            email_verified: subject.user.as_ref().map(|u| u.2),
            tid: subject.tenant.as_ref().map(|t| t.0.to_string()),
            tslug: subject.tenant.as_ref().map(|t| t.1.as_str().to_owned()),
            role: subject.role.map(|r| r.as_str().to_owned()),
            actor_type: match (&subject.user, &subject.api_key) {
                (Some(_), _) => Some("user".to_owned()),
                (None, Some(_)) => Some("api_key".to_owned()),
                (None, None) => None,
            },
            api_key_id: subject.api_key,
            jti: request_id.to_owned(),
            htm: method.to_owned(),
            htu: path.to_owned(),
            aud: audience.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
        };
        let keys = self.keys.load();
        match &keys.signing.signer {
            // The JWS compact serialization (RFC 7515 7.1) around ring's signature.
            Signer::Ed25519 { pair, header } => {
                let claims = serde_json::to_vec(&claims).map_err(|_| Error::Signing)?;
                let mut token = String::with_capacity(header.len() + claims.len() * 4 / 3 + 90);
                token.push_str(header);
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(claims, &mut token);
                let signature = pair.sign(token.as_bytes());
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
                Ok(token)
            }
            Signer::Hs256(key) => {
                jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(|_| Error::Signing)
            }
        }
    }

    /// The public keys as a JWKS document (`{"keys": [...]}`); empty for HS256.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.load();
        let now = SystemTime::now();
        let live = keys.published.iter().filter(|(_, until)| until.is_none_or(|u| u > now)).map(|(k, _)| k);
        let jwks: Vec<&serde_json::Value> =
            std::iter::once(&keys.signing).chain(live).filter_map(|k| k.jwk.as_ref()).collect();
        serde_json::json!({ "keys": jwks })
    }

    /// The `kid` of the signing key (none for HS256).
    pub fn signing_kid(&self) -> Option<String> {
        self.keys.load().signing.kid.clone()
    }

    /// Re-reads the key file if it changed since the last read. A key that no
    /// longer signs (or left the file) stays published until the last assertion
    /// it signed has expired. Returns whether the keys changed.
    ///
    /// # Errors
    /// [`Error`] when the changed file cannot be used; the keys stay as they were.
    pub fn reload(&self) -> Result<bool, Error> {
        let Some(path) = &self.file else { return Ok(false) };
        let text = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        let stamp = Some(Sha256::digest(&text).into());
        {
            // A content is tried once: a bad edit is reported once, not on every check.
            let mut last = self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == stamp {
                return Ok(false);
            }
            *last = stamp;
        }
        let (signing, others) = parse_keys(&text, path)?;
        let current = self.keys.load_full();
        let retire_at = SystemTime::now() + self.ttl + RETIRE_SLACK;
        let file_kids: Vec<Option<String>> = std::iter::once(&signing).chain(&others).map(|k| k.kid.clone()).collect();
        let in_file = |kid: &Option<String>| file_kids.contains(kid);
        let mut published: Vec<(Arc<SigningKey>, Option<SystemTime>)> = others.into_iter().map(|k| (k, None)).collect();
        // Keys leaving the file keep verifying for a while; so does the old signer.
        for (key, until) in std::iter::once((current.signing.clone(), None)).chain(current.published.iter().cloned()) {
            if !in_file(&key.kid) && !published.iter().any(|(k, _)| k.kid == key.kid) {
                let until = until.unwrap_or(retire_at);
                if until > SystemTime::now() {
                    published.push((key, Some(until)));
                }
            }
        }
        let changed = current.signing.kid != signing.kid || published.len() != current.published.len();
        self.keys.store(Arc::new(KeySet { signing, published }));
        Ok(changed)
    }
}

/// A new Ed25519 private key as PKCS#8 DER.
fn generate_pkcs8() -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    // Generation only fails when the OS has no randomness, and then nothing works.
    Ed25519KeyPair::generate_pkcs8(&rng).map(|doc| doc.as_ref().to_vec()).unwrap_or_default()
}

/// A new Ed25519 private key in PEM, for `gateway assertion-key`.
pub fn generate_pem() -> String {
    pem::encode(&pem::Pem::new("PRIVATE KEY", generate_pkcs8()))
}

/// The signing key (first) and the other keys of the PEM text of `path`.
fn parse_keys(text: &[u8], path: &Path) -> Result<(Arc<SigningKey>, Vec<Arc<SigningKey>>), Error> {
    let bad = |why: String| Error::BadKey { path: path.to_owned(), why };
    let blocks = pem::parse_many(text).map_err(|e| bad(format!("not PEM: {e}")))?;
    let mut keys = Vec::with_capacity(blocks.len());
    for block in &blocks {
        if block.tag() != "PRIVATE KEY" {
            return Err(bad(format!(
                "a {:?} block; expected PKCS#8 \"PRIVATE KEY\" blocks of Ed25519 keys",
                block.tag()
            )));
        }
        keys.push(Arc::new(ed25519_key(block.contents(), path)?));
    }
    let mut keys = keys.into_iter();
    let signing = keys.next().ok_or_else(|| bad("holds no key; generate one with `gateway assertion-key`".into()))?;
    Ok((signing, keys.collect()))
}

fn ed25519_key(pkcs8: &[u8], path: &Path) -> Result<SigningKey, Error> {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| Error::BadKey { path: path.to_owned(), why: format!("not an Ed25519 PKCS#8 key: {e}") })?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    // RFC 7638: the thumbprint of the required members in lexicographic order.
    let thumbprint = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes());
    let kid = URL_SAFE_NO_PAD.encode(thumbprint);
    let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA" });
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.clone());
    let header = serde_json::to_vec(&header)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        .map_err(|e| Error::BadKey { path: path.to_owned(), why: format!("its JWS header: {e}") })?;
    Ok(SigningKey { kid: Some(kid), signer: Signer::Ed25519 { pair, header }, jwk: Some(jwk) })
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
