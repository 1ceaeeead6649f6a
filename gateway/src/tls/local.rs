//! `gateway tls-cert`: a local certificate authority and one certificate it
//! signs, for HTTPS on one machine (the Quick start). Like mkcert, minus the
//! trust-store installation: the authority's key is dropped once it has signed,
//! so trusting `ca.pem` lets it vouch for these names only.

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// How long the local certificate lasts.
const DAYS: i64 = 90;

/// Writes `ca.pem`, `localhost.pem` and `localhost.key` into `dir`.
///
/// # Errors
/// A name rcgen refuses, or a file that cannot be written.
pub(crate) fn write(dir: &Path, hosts: &[String]) -> anyhow::Result<()> {
    let (ca_pem, cert_pem, key_pem) = issue(hosts)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("localhost.pem"), dir.join("localhost.key"));
    std::fs::write(&ca, ca_pem).with_context(|| format!("writing {}", ca.display()))?;
    std::fs::write(&cert, cert_pem).with_context(|| format!("writing {}", cert.display()))?;
    write_private(&key, &key_pem)?;
    println!("Wrote {} (trust it: curl --cacert, or your browser's authorities)", ca.display());
    println!("  and a certificate for {} valid {DAYS} days. Set:", hosts.join(", "));
    println!("GATEWAY_TLS_LISTEN=127.0.0.1:8443");
    println!("GATEWAY_TLS_CERT={}", cert.display());
    println!("GATEWAY_TLS_KEY={}", key.display());
    Ok(())
}

/// The key file, readable by its owner only: written to a new file (never
/// through an existing one, whatever its mode, or a symlink), then renamed over
/// the old.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fresh = path.with_extension(format!("key.new-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&fresh)
        .with_context(|| format!("writing {}", fresh.display()))?;
    file.write_all(pem.as_bytes()).with_context(|| format!("writing {}", fresh.display()))?;
    std::fs::rename(&fresh, path).with_context(|| format!("replacing {}", path.display()))
}

/// The authority's certificate, the leaf's and the leaf's key, in PEM.
fn issue(hosts: &[String]) -> anyhow::Result<(String, String, String)> {
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("tenantgate local development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(DAYS);
    let ca_key = KeyPair::generate().context("generating the authority's key")?;
    let ca_cert = ca.self_signed(&ca_key).context("signing the authority")?;

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = name(hosts.first().map_or("localhost", String::as_str));
    leaf.subject_alt_names = hosts
        .iter()
        .map(|host| match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => host.clone().try_into().map(SanType::DnsName).with_context(|| format!("host {host:?}")),
        })
        .collect::<anyhow::Result<_>>()?;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(DAYS);
    let key = KeyPair::generate().context("generating the certificate's key")?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).context("signing the certificate")?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::Certificate;

    #[test]
    fn the_local_certificate_loads_and_covers_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let hosts: Vec<String> = ["localhost", "*.localhost", "127.0.0.1"].map(String::from).to_vec();
        // An existing, world-readable key file is replaced, not written through.
        let key = dir.path().join("localhost.key");
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        write(dir.path(), &hosts).unwrap();
        let now = crate::tls::unix_now();
        let cert = Certificate::load(
            "localhost".into(),
            &dir.path().join("localhost.pem"),
            &dir.path().join("localhost.key"),
            now,
        )
        .unwrap();
        assert_eq!(cert.names, ["localhost", "*.localhost", "127.0.0.1"]);
        assert!(cert.names.iter().any(|name| crate::tls::certs::covers(name, "acme.localhost")));
        assert!(cert.not_after > now + 80 * 86_400);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("localhost.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
