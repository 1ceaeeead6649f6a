//! Access tokens: HS256 JWTs with the algorithm pinned, issuer and audience checked.
//!
//! Claims carry no role: roles are looked up per tenant. They do carry `ver`, the
//! user's token version at issue time, so logout-all can invalidate every
//! outstanding token by bumping the version.
//!
//! Verified tokens are remembered until they expire ([`AccessTokens::verify`]): a
//! client sends the same token with every request for its whole lifetime, and the
//! HMAC and JSON work is most of what the proxy spends on a request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moka::sync::Cache;
use moka::Expiry;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtSettings;
use crate::domain::{Email, UserId};

/// Why a token was refused; the reason is also the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a JWT at all, or claims missing or mistyped.
    #[error("malformed token")]
    Malformed,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `alg` is not HS256.
    #[error("algorithm not allowed")]
    BadAlgorithm,
    /// Wrong `iss`.
    #[error("wrong issuer")]
    BadIssuer,
    /// Wrong `aud`.
    #[error("wrong audience")]
    BadAudience,
    /// Signing failed (should not happen with HMAC).
    #[error("token signing failed")]
    Signing,
}

impl Error {
    /// A stable label for metrics and error bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Malformed => "malformed",
            Error::Expired => "expired",
            Error::BadSignature => "bad_signature",
            Error::BadAlgorithm => "bad_algorithm",
            Error::BadIssuer => "bad_issuer",
            Error::BadAudience => "bad_audience",
            Error::Signing => "signing",
        }
    }
}

/// The claims of an access token (the wire type).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: UserId,
    /// The user's email at issue time.
    pub email: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Unique token id.
    pub jti: Uuid,
    /// The user's token version at issue time.
    pub ver: i32,
}

/// A signed access token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedAccessToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its claims.
    pub claims: AccessClaims,
}

/// How many verified tokens are remembered (under 1 KiB each, so at most ~50 MiB):
/// enough for every client active within one access-token lifetime on a busy
/// instance. Only tokens that verified get in, so clients cannot fill it with junk.
const VERIFIED_CAPACITY: u64 = 50_000;

/// Clock leeway on `exp`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// Signs and verifies access tokens. Verification is pure CPU: no I/O.
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// Tokens that passed [`AccessTokens::verify`], each until the moment it would
    /// stop passing. Shared by clones.
    verified: Cache<Box<str>, Arc<AccessClaims>>,
}

/// A remembered token expires when `exp` plus the leeway passes, exactly when a
/// fresh verification would start refusing it.
struct UntilExpiry;

impl Expiry<Box<str>, Arc<AccessClaims>> for UntilExpiry {
    fn expire_after_create(&self, _token: &Box<str>, claims: &Arc<AccessClaims>, _now: Instant) -> Option<Duration> {
        Some(remaining(claims.exp, chrono::Utc::now().timestamp()))
    }
}

/// Time left before a token with `exp` is refused, at `now` (both in seconds since
/// the epoch).
/// The last Unix second at which a token expiring at `exp` is still accepted
/// (the clock leeway included, as [`AccessTokens::verify`] and its memory count
/// it): what remembers a verified token must stop using it after this.
pub fn accepted_until(exp: i64) -> i64 {
    exp.saturating_add(LEEWAY_SECS as i64 - 1)
}

fn remaining(exp: i64, now: i64) -> Duration {
    let deadline = exp.saturating_add(LEEWAY_SECS as i64);
    Duration::from_secs(u64::try_from(deadline.saturating_sub(now)).unwrap_or(0))
}

impl AccessTokens {
    /// Keys and rules from settings: HS256 only, `exp`/`iss`/`aud`/`sub` required,
    /// 30 seconds of clock leeway.
    pub fn new(settings: &JwtSettings) -> AccessTokens {
        let secret = settings.secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        AccessTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: settings.access_ttl,
            verified: Cache::builder().max_capacity(VERIFIED_CAPACITY).expire_after(UntilExpiry).build(),
        }
    }

    /// The configured lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `user`.
    ///
    /// # Errors
    /// [`Error::Signing`] if encoding fails.
    pub fn issue(&self, user: UserId, email: &Email, token_version: i32) -> Result<IssuedAccessToken, Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user,
            email: email.as_str().to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
            ver: token_version,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| Error::Signing)?;
        Ok(IssuedAccessToken { token, expires_in: self.ttl.as_secs(), claims })
    }

    /// Verifies signature, algorithm, expiry, issuer and audience.
    ///
    /// A token that passed before is answered from memory until it expires: the
    /// outcome of these checks depends only on the token's bytes, the key and the
    /// clock, and the memory forgets each token when `exp` (plus leeway) passes.
    /// Only tokens that passed are remembered, keyed by their complete text, so a
    /// token differing in any byte is verified in full. The lookup compares texts
    /// only within a bucket of a randomly seeded hash, which a client cannot aim a
    /// forged token at, so its timing tells nothing about remembered tokens.
    /// Revocation is not decided here: callers compare `ver` with the user's
    /// current token version on every request.
    ///
    /// # Errors
    /// The [`Error`] that says why the token is refused.
    pub fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, Error> {
        if let Some(claims) = self.verified.get(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token)?);
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<AccessClaims, Error> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map(|data| data.claims).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => Error::Expired,
                ErrorKind::InvalidSignature => Error::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Error::BadAlgorithm,
                ErrorKind::InvalidIssuer => Error::BadIssuer,
                ErrorKind::InvalidAudience => Error::BadAudience,
                _ => Error::Malformed,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn tokens(secret: &str, iss: &str, aud: &str) -> AccessTokens {
        let mut s = Settings::default().jwt;
        s.secret = secret.to_owned().into();
        s.issuer = iss.into();
        s.audience = aud.into();
        AccessTokens::new(&s)
    }

    #[test]
    fn round_trips_and_checks_issuer_audience_and_key() {
        let t = tokens("k".repeat(32).as_str(), "iss", "aud");
        let user = UserId::new();
        let issued = t.issue(user, &Email::parse("a@b.c").unwrap(), 3).unwrap();
        let claims = t.verify(&issued.token).unwrap();
        assert_eq!((claims.sub, claims.ver, claims.email.as_str()), (user, 3, "a@b.c"));
        assert_eq!(tokens("x".repeat(32).as_str(), "iss", "aud").verify(&issued.token), Err(Error::BadSignature));
        assert_eq!(tokens("k".repeat(32).as_str(), "other", "aud").verify(&issued.token), Err(Error::BadIssuer));
        assert_eq!(tokens("k".repeat(32).as_str(), "iss", "other").verify(&issued.token), Err(Error::BadAudience));
        assert_eq!(t.verify("not.a.jwt"), Err(Error::Malformed));
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let t = tokens("k".repeat(32).as_str(), "iss", "aud");
        let issued = t.issue(UserId::new(), &Email::parse("a@b.c").unwrap(), 0).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        for alg in ["none", "HS512", "RS256"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let forged = format!("{header}.{payload}.");
            assert!(matches!(t.verify(&forged), Err(Error::BadAlgorithm | Error::Malformed)), "{alg} accepted");
        }
    }

    #[test]
    fn refuses_expired_tokens() {
        let t = tokens("k".repeat(32).as_str(), "iss", "aud");
        let token = signed(&expiring_in(-120), &[b'k'; 32]);
        assert_eq!(t.verify(&token), Err(Error::Expired));
    }

    /// Claims for issuer `iss` and audience `aud` whose `exp` is `seconds` from now.
    fn expiring_in(seconds: i64) -> AccessClaims {
        let now = chrono::Utc::now().timestamp();
        AccessClaims {
            sub: UserId::new(),
            email: "a@b.c".into(),
            iat: now - 600,
            exp: now + seconds,
            iss: "iss".into(),
            aud: "aud".into(),
            jti: Uuid::new_v4(),
            ver: 0,
        }
    }

    fn signed(claims: &AccessClaims, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn remembers_only_the_exact_tokens_that_passed() {
        let t = tokens("k".repeat(32).as_str(), "iss", "aud");
        let issued = t.issue(UserId::new(), &Email::parse("a@b.c").unwrap(), 0).unwrap();
        let first = t.verify(&issued.token).unwrap();
        let again = t.clone().verify(&issued.token).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second verification is answered from memory");

        // One character off in the signature, or the same claims under another key:
        // verified in full, refused, and not remembered.
        let mut tampered = issued.token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let forged = signed(&issued.claims, &[b'x'; 32]);
        for bad in [&tampered, &forged] {
            assert!(matches!(t.verify(bad), Err(Error::BadSignature | Error::Malformed)), "{bad} accepted");
            assert!(t.verified.get(bad.as_str()).is_none());
        }
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let t = tokens("k".repeat(32).as_str(), "iss", "aud");
        // Inside the leeway for at most one more second.
        let token = signed(&expiring_in(1 - LEEWAY_SECS as i64), &[b'k'; 32]);
        assert!(t.verify(&token).is_ok());
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(t.verify(&token), Err(Error::Expired));
    }

    #[test]
    fn remembered_for_exactly_as_long_as_verification_would_pass() {
        assert_eq!(remaining(1_000, 1_000), Duration::from_secs(LEEWAY_SECS));
        assert_eq!(remaining(1_000, 1_000 + LEEWAY_SECS as i64 - 1), Duration::from_secs(1));
        assert_eq!(remaining(1_000, 1_000 + LEEWAY_SECS as i64), Duration::ZERO);
        // The last second `remaining` still grants.
        let last = accepted_until(1_000);
        assert!(remaining(1_000, last) > Duration::ZERO && remaining(1_000, last + 1) == Duration::ZERO);
        assert_eq!(remaining(1_000, 9_000), Duration::ZERO);
        assert_eq!(remaining(i64::MAX, 0), Duration::from_secs(i64::MAX as u64));
    }
}
