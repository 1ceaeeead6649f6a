use super::*;
use jsonwebtoken::{DecodingKey, Validation};

fn subject() -> Subject<'static> {
    let email = Box::leak(Box::new(Email::parse("ann@example.test").unwrap()));
    let slug = Box::leak(Box::new(Slug::parse("acme").unwrap()));
    Subject {
        user: Some((UserId::new(), email, true)),
        api_key: None,
        tenant: Some((TenantId::new(), slug)),
        role: Some(Role::Admin),
    }
}

/// Verifies `token` as an app would: the key picked by `kid` from the JWKS.
fn verify(
    token: &str,
    jwks: &serde_json::Value,
    audience: &str,
) -> Result<AssertionClaims, jsonwebtoken::errors::Error> {
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("kid in the JWKS");
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["tenantgate"]);
    jsonwebtoken::decode::<AssertionClaims>(token, &key, &validation).map(|d| d.claims)
}

fn key_file(keys: &[String]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), keys.concat()).unwrap();
    file
}

#[test]
fn ed25519_assertions_verify_with_the_published_key_for_one_app_and_request() {
    let a = Assertions::ed25519(None, "tenantgate", Duration::from_secs(60)).unwrap();
    let token = a.sign(&subject(), "billing", "req-1", "POST", "/invoices/7").unwrap();
    let jwks = a.jwks();
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(jwk.get("d").is_none(), "the private part is never published");
    let claims = verify(&token, &jwks, "billing").unwrap();
    assert_eq!((claims.htm.as_str(), claims.htu.as_str(), claims.jti.as_str()), ("POST", "/invoices/7", "req-1"));
    assert_eq!(
        (claims.tslug.as_deref(), claims.role.as_deref(), claims.email_verified),
        (Some("acme"), Some("admin"), Some(true))
    );
    assert_eq!(claims.exp - claims.iat, 60);
    // Another app refuses it.
    assert!(verify(&token, &jwks, "crm").is_err());
}

#[test]
fn the_kid_is_the_rfc_7638_thumbprint() {
    // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 public key.
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let digest = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes());
    assert_eq!(URL_SAFE_NO_PAD.encode(digest), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    let a = Assertions::ed25519(None, "tenantgate", Duration::from_secs(60)).unwrap();
    let jwks = a.jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let digest = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes());
    assert_eq!(a.signing_kid(), Some(URL_SAFE_NO_PAD.encode(digest)));
}

#[test]
fn a_rotated_key_is_published_until_its_last_assertion_expires() {
    let (old, new) = (generate_pem(), generate_pem());
    let file = key_file(std::slice::from_ref(&old));
    let a = Assertions::ed25519(Some(file.path()), "tenantgate", Duration::from_secs(1)).unwrap();
    let before = a.sign(&subject(), "app", "r1", "GET", "/").unwrap();
    let old_kid = a.signing_kid();
    assert!(!a.reload().unwrap(), "unchanged file: nothing to do");

    // The new key first, the old one gone from the file.
    std::fs::write(file.path(), &new).unwrap();
    assert!(a.reload().unwrap());
    assert_ne!(a.signing_kid(), old_kid);
    let after = a.sign(&subject(), "app", "r2", "GET", "/").unwrap();
    let jwks = a.jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    assert!(verify(&before, &jwks, "app").is_ok(), "an assertion signed before the rotation still verifies");
    assert!(verify(&after, &jwks, "app").is_ok());
    // A bad edit keeps the keys.
    std::fs::write(file.path(), "not a key").unwrap();
    assert!(a.reload().is_err());
    assert!(!a.reload().unwrap(), "a bad edit is reported once, not on every check");
    assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2);
    // Fixed: the keys follow the file again.
    std::fs::write(file.path(), [old.as_str(), new.as_str()].concat()).unwrap();
    assert!(a.reload().unwrap());
    assert_eq!(a.signing_kid(), old_kid, "the first key of the file signs");
}

#[test]
fn key_files_must_hold_ed25519_pkcs8_keys() {
    let empty = key_file(&[]);
    assert!(Assertions::ed25519(Some(empty.path()), "t", Duration::from_secs(60)).is_err());
    let wrong = key_file(&["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_owned()]);
    let err = Assertions::ed25519(Some(wrong.path()), "t", Duration::from_secs(60)).err().unwrap().to_string();
    assert!(err.contains("CERTIFICATE"), "{err}");
    let two = key_file(&[generate_pem(), generate_pem()]);
    let a = Assertions::ed25519(Some(two.path()), "t", Duration::from_secs(60)).unwrap();
    assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2, "the second key is published ahead of its turn");
}

#[test]
fn hs256_publishes_nothing() {
    let a = Assertions::hs256(&[b'k'; 32], "tenantgate", Duration::from_secs(60));
    let token = a.sign(&subject(), "app", "r", "GET", "/").unwrap();
    assert_eq!(a.jwks(), serde_json::json!({ "keys": [] }));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["app"]);
    assert!(
        jsonwebtoken::decode::<AssertionClaims>(&token, &DecodingKey::from_secret(&[b'k'; 32]), &validation).is_ok()
    );
}
