//! Tenant API keys: `tgk_<public id>_<secret>`, machine credentials for one
//! tenant with one role.
//!
//! The public id (12 base62 characters, 71 random bits) finds the row; the secret
//! (43 base62 characters, 256 random bits) proves possession. Only the SHA-256 of
//! the secret is stored: a secret that random needs no slow hash (nobody guesses
//! 2^256), and the proxy can check it on a cold lookup in a microsecond. The
//! stored hash is compared in constant time.

use rand::distributions::{Alphanumeric, DistString};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with (also how the proxy tells a key from a JWT).
pub const PREFIX: &str = crate::domain::API_KEY_PREFIX;

/// Characters of the public id.
pub const PUBLIC_ID_LEN: usize = 12;

/// Characters of the secret: 43 base62 characters hold 256 bits.
pub const SECRET_LEN: usize = 43;

/// A key's length on the wire.
pub const KEY_LEN: usize = PREFIX.len() + PUBLIC_ID_LEN + 1 + SECRET_LEN;

/// A key as a request presents it, split; borrowed from the request, never
/// stored or logged whole.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The public id: finds the key.
    pub public_id: &'a str,
    secret: &'a str,
}

impl std::fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented").field("public_id", &self.public_id).finish_non_exhaustive()
    }
}

impl<'a> Presented<'a> {
    /// Splits `text` if it has a key's exact shape: the prefix, 12 base62
    /// characters, `_`, 43 base62 characters. Anything else is no key.
    pub fn parse(text: &'a str) -> Option<Presented<'a>> {
        let rest = text.strip_prefix(PREFIX)?;
        if rest.len() != PUBLIC_ID_LEN + 1 + SECRET_LEN || rest.as_bytes()[PUBLIC_ID_LEN] != b'_' {
            return None;
        }
        let (public_id, secret) = (&rest[..PUBLIC_ID_LEN], &rest[PUBLIC_ID_LEN + 1..]);
        let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
        (base62(public_id) && base62(secret)).then_some(Presented { public_id, secret })
    }

    /// Whether the secret is the one whose hash is `stored` (constant time).
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        hash_secret(self.secret).ct_eq(stored).into()
    }
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A freshly made key: the text to show once, and what to store.
pub struct Generated {
    /// `tgk_<public id>_<secret>`: answered once, never stored or logged.
    pub key: SecretString,
    /// The public id (stored, shown in listings and in `X-Api-Key-Id`'s row).
    pub public_id: String,
    /// SHA-256 of the secret (stored).
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated").field("public_id", &self.public_id).finish_non_exhaustive()
    }
}

/// A new key from the operating system's random source.
pub fn generate() -> Generated {
    let mut rng = rand::rngs::OsRng;
    let public_id = Alphanumeric.sample_string(&mut rng, PUBLIC_ID_LEN);
    let secret = Alphanumeric.sample_string(&mut rng, SECRET_LEN);
    let secret_hash = hash_secret(&secret);
    Generated { key: format!("{PREFIX}{public_id}_{secret}").into(), public_id, secret_hash }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_generated_key_parses_and_matches_only_its_own_hash() {
        let made = generate();
        let text = made.key.expose_secret();
        assert_eq!(text.len(), KEY_LEN);
        let presented = Presented::parse(text).unwrap();
        assert_eq!(presented.public_id, made.public_id);
        assert!(presented.matches(&made.secret_hash));
        assert!(!presented.matches(&generate().secret_hash));
        assert!(!format!("{presented:?}").contains(&text[PREFIX.len() + PUBLIC_ID_LEN + 1..]), "no secret in Debug");
        assert!(!format!("{made:?}").contains(text));
        assert_ne!(generate().public_id, made.public_id);
    }

    #[test]
    fn only_the_exact_shape_is_a_key() {
        let made = generate();
        let text = made.key.expose_secret().to_owned();
        for bad in [
            String::new(),
            "tgk_".into(),
            text[..text.len() - 1].to_owned(),
            format!("{text}a"),
            text.replacen("tgk_", "TGK_", 1),
            text.replacen('_', "-", 2),
            format!("{}é{}", &text[..10], &text[12..]),
            format!("{}-{}", &text[..20], &text[21..]),
            format!(" {text}"),
            "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(),
        ] {
            assert!(Presented::parse(&bad).is_none(), "{bad:?}");
        }
    }
}
