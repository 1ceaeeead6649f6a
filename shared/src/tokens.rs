//! Opaque random tokens (refresh tokens, email verification, password reset,
//! invitations): 256 random bits, base64url on the wire, stored only as an
//! HMAC-SHA256 under a server-side key, so a database leak yields nothing usable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// A freshly generated token: the plaintext to hand out once, and the hash to store.
pub struct Issued {
    /// Sent to the client; never stored or logged.
    pub plaintext: SecretString,
    /// Stored and looked up.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("plaintext", &"[redacted]").finish_non_exhaustive()
    }
}

/// Generates and hashes opaque tokens under one key. Cheap to clone.
#[derive(Clone)]
pub struct TokenHasher {
    key: SecretString,
}

impl TokenHasher {
    /// A hasher keyed with `key` (in practice `JWT_REFRESH_SECRET`).
    pub fn new(key: SecretString) -> TokenHasher {
        TokenHasher { key }
    }

    /// A new random token and its hash.
    pub fn issue(&self) -> Issued {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let plaintext = URL_SAFE_NO_PAD.encode(bytes);
        let hash = self.hash(&plaintext);
        Issued { plaintext: plaintext.into(), hash }
    }

    /// The stored form of a presented token. Lookups are by this value, so no
    /// comparison of secrets happens in application code.
    pub fn hash(&self, plaintext: &str) -> [u8; 32] {
        // HMAC accepts keys of any length.
        #[allow(clippy::expect_used)]
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes()).expect("HMAC takes any key length");
        mac.update(plaintext.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether a presented string could be one of our tokens (43 base64url chars);
    /// cheap rejection of garbage before touching the database.
    pub fn looks_valid(plaintext: &str) -> bool {
        plaintext.len() == 43 && plaintext.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_keyed() {
        let a = TokenHasher::new("key-a".to_owned().into());
        let b = TokenHasher::new("key-b".to_owned().into());
        let t1 = a.issue();
        let t2 = a.issue();
        assert_ne!(t1.plaintext.expose_secret(), t2.plaintext.expose_secret());
        assert!(TokenHasher::looks_valid(t1.plaintext.expose_secret()));
        assert_eq!(a.hash(t1.plaintext.expose_secret()), t1.hash);
        assert_ne!(b.hash(t1.plaintext.expose_secret()), t1.hash);
        assert!(!format!("{t1:?}").contains(t1.plaintext.expose_secret()));
    }
}
