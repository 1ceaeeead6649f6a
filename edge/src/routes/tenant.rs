//! Pure helpers that find a tenant slug in a request's Host or path. The proxy
//! looks the slug up afterwards; these functions do no I/O.

use shared::domain::{DomainName, Slug};

use super::host::host_name;
use super::lookup::PathLookup;

/// The tenant slug of a Host of the form `{slug}.{base_domain}` (one label only;
/// port and case ignored), as in `acme.example.com` with base domain `example.com`.
///
/// Returns `None` when the Host is not directly under the base domain, or when the
/// label is not a valid [`Slug`]: reserved labels such as `www`, `api` or `app` are
/// never tenants, so those hosts fall through to the route's next tenant source.
pub fn subdomain_slug(host: &str, base_domain: &DomainName) -> Option<Slug> {
    let label = base_domain.child_label(host_name(host))?;
    Slug::parse(&label.to_ascii_lowercase()).ok()
}

/// The tenant slug of a path of the form `/t/{slug}/rest`, and the path after it:
/// `/t/acme/projects` gives `acme` and `/projects`, and `/t/acme` gives `acme` and
/// `/`. Like route prefixes, `/t/` and the slug are read without regard to case
/// (`/T/Acme/` is `acme`'s), since apps behind the gateway may read them so.
///
/// Returns `None` when the path does not start with `/t/` followed by a valid slug.
pub fn path_slug(path: PathLookup<'_>) -> Option<(Slug, PathLookup<'_>)> {
    let view = path.view();
    let after = view.strip_prefix("/t/").or_else(|| view.strip_prefix("/T/"))?;
    let slug = after.split('/').next()?;
    Some((Slug::parse(&slug.to_ascii_lowercase()).ok()?, path.skip(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_under_the_base_domain() {
        let base = DomainName::parse("Example.com.").unwrap();
        let slug = |host: &str| subdomain_slug(host, &base).map(|s| s.as_str().to_owned());
        assert_eq!(slug("acme.example.com").as_deref(), Some("acme"));
        assert_eq!(slug("ACME.Example.COM:8443").as_deref(), Some("acme"));
        assert_eq!(slug("acme.example.com.").as_deref(), Some("acme"));
        for none in [
            "example.com",
            ".example.com",
            "a.b.example.com",
            "acme.example.org",
            "acmeexample.com",
            "acme.notexample.com",
            "www.example.com",
            "ab.example.com",
            "acme_co.example.com",
            "é.example.com",
            "",
        ] {
            assert_eq!(slug(none), None, "{none:?}");
        }
    }

    #[test]
    fn tenant_paths() {
        let parts = |path: &str| {
            let parsed = crate::path::RequestPath::parse(path).unwrap();
            path_slug(PathLookup::of(&parsed)).map(|(s, rest)| (s.as_str().to_owned(), rest.wire().to_owned()))
        };
        assert_eq!(parts("/t/acme/projects/1"), Some(("acme".into(), "/projects/1".into())));
        assert_eq!(parts("/t/acme/"), Some(("acme".into(), "/".into())));
        assert_eq!(parts("/t/acme"), Some(("acme".into(), "/".into())));
        assert_eq!(parts("/T/Acme/x"), Some(("acme".into(), "/x".into())));
        assert_eq!(parts("/t/ac%6De/x%20y"), Some(("acme".into(), "/x%20y".into())));
        for none in ["/t/", "/t", "/t//x", "/t/ab/x", "/tx/acme/", "/api/t/acme/", "/t/admin/x", "/t/a%20b/x"] {
            assert_eq!(parts(none), None, "{none:?}");
        }
    }
}
