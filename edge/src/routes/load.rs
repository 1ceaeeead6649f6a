//! Reading route files: TOML into checked [`Route`]s, with errors that name the
//! file, the line and column, and the problem, for syntax and semantic mistakes
//! alike (every value keeps its span from the `toml` parser).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use shared::domain::Role;
use toml::Spanned;

use super::fields::{methods, min_role};
use super::host::HostPattern;
use super::identity::{IdentityHeader, IdentityHeaders};
use super::policy::{EncodedSlashes, OnUnauthenticated, RateLimit, RateLimitKey, Requirement, TenantSource};
use super::prefix::PathPrefix;
use super::problem::{locate, problem, LoadError, Problem};
use super::route::Route;
use super::upstream::{self, ClientCert, PemFile, Scheme, Upstream, UpstreamTls};
use super::variants::{self, RawRule};
use crate::headers::{canonical, HeaderRules};

/// The files to read for `path`: the file itself, or the folder's `*.toml` files
/// (not hidden ones, not recursively) sorted by name.
pub(super) fn route_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_err = |source| LoadError::Read { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let file = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_route_file_name(&name) && file.is_file() {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(LoadError::NoFiles { path: path.to_owned() });
    }
    files.sort();
    Ok(files)
}

/// `*.toml`, but not editor leftovers such as `.#app.toml`.
pub fn is_route_file_name(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with('.')
}

/// Names already taken and (host, prefix) pairs already routed, across files.
/// Prefixes are compared folded (decoded, lowercase): two routes whose prefixes
/// differ only in case collide unless both are `case_sensitive`.
#[derive(Default)]
pub(super) struct Seen {
    names: HashMap<Arc<str>, String>,
    places: HashMap<(Option<HostPattern>, Box<str>), Vec<Place>>,
}

/// A route holding a (host, folded prefix) place.
struct Place {
    name: Arc<str>,
    origin: String,
    prefix: PathPrefix,
    case_sensitive: bool,
}

/// Parses one file's text and appends its routes to `out`.
pub(super) fn parse_file(file: &Path, text: &str, seen: &mut Seen, out: &mut Vec<Route>) -> Result<(), LoadError> {
    let invalid = |span: Range<usize>, message: String| {
        let (line, column) = locate(text, span.start);
        LoadError::Invalid { file: file.to_owned(), line, column, message }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| invalid(e.span().unwrap_or(0..0), e.message().to_owned()))?;
    for raw in raw.route {
        let name_span = raw.name.span();
        let (line, _) = locate(text, name_span.start);
        let origin = format!("{}:{line}", file.display());
        let prefix_span = raw.path_prefix.as_ref().map_or(name_span.clone(), Spanned::span);
        let route = build(raw, origin, &Source { file, text }).map_err(|p| invalid(p.span, p.message))?;

        if let Some(first) = seen.names.get(&route.name) {
            return Err(invalid(name_span, format!("route name {:?} is already used at {first}", route.name)));
        }
        let hosts: Vec<Option<HostPattern>> =
            if route.hosts.is_empty() { vec![None] } else { route.hosts.iter().cloned().map(Some).collect() };
        for host in hosts {
            let key = (host, Box::from(route.path_prefix.folded()));
            let taken = seen.places.get(&key).and_then(|places| {
                places.iter().find(|p| {
                    !(p.case_sensitive && route.case_sensitive) || p.prefix.as_str() == route.path_prefix.as_str()
                })
            });
            if let Some(other) = taken {
                let host = key.0.as_ref().map_or("any host".to_owned(), |h| format!("host {h}"));
                return Err(invalid(
                    prefix_span,
                    format!(
                        "route {:?} has the path_prefix {:?} for {host}, which route {:?} ({}) already has as {:?} \
                         (prefixes match without regard to case unless both routes are case_sensitive), \
                         so one of them could never match",
                        route.name,
                        route.path_prefix.as_str(),
                        other.name,
                        other.origin,
                        other.prefix.as_str()
                    ),
                ));
            }
            seen.places.entry(key).or_default().push(Place {
                name: route.name.clone(),
                origin: route.origin.clone(),
                prefix: route.path_prefix.clone(),
                case_sensitive: route.case_sensitive,
            });
        }
        seen.names.insert(route.name.clone(), route.origin.clone());
        out.push(route);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    path_prefix: Option<Spanned<String>>,
    upstreams: Spanned<Vec<Spanned<String>>>,
    auth: Option<Spanned<Requirement>>,
    tenant: Option<Spanned<Requirement>>,
    tenant_from: Option<Spanned<Vec<Spanned<TenantSource>>>>,
    min_role: Option<Spanned<Role>>,
    strip_prefix: Option<bool>,
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    connect_timeout: Option<Spanned<String>>,
    read_timeout: Option<Spanned<String>>,
    require_verified_email: Option<Spanned<bool>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
    headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    on_unauthenticated: Option<Spanned<OnUnauthenticated>>,
    signed_assertion: Option<bool>,
    audience: Option<Spanned<String>>,
    case_sensitive: Option<bool>,
    encoded_slashes: Option<EncodedSlashes>,
    forward_credentials: Option<bool>,
    identity_headers: Option<Spanned<Vec<Spanned<String>>>>,
    tls_ca: Option<Spanned<String>>,
    tls_client_cert: Option<Spanned<String>>,
    tls_client_key: Option<Spanned<String>>,
    tls_server_name: Option<Spanned<String>>,
    tls_verify: Option<Spanned<bool>>,
    rule: Option<Vec<Spanned<RawRule>>>,
}

/// The route file being read: where relative paths start, and the text spans
/// point into.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// The route file's folder (empty for a bare file name: the working directory).
    fn folder(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new(""))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests: Spanned<u32>,
    window: Spanned<String>,
    key: Option<RateLimitKey>,
}

/// Labels the proxy itself uses for requests that match no route.
const RESERVED_NAMES: &[&str] = &["auth-api", "none"];

/// Headers a route may not set, in any spelling: identity headers the gateway
/// strips and injects itself (setting them from config would forge an identity),
/// the forwarding headers it writes, and hop-by-hop or framing headers that belong
/// to the connection. Other forwarding headers (`X-Forwarded-Prefix` for an app
/// behind `strip_prefix`...) are the operator's to set.
fn forbidden_header(name: &HeaderName) -> bool {
    use crate::headers::Kind;
    let owned = match HeaderRules::default().classify(name) {
        Kind::Identity(_) => true,
        Kind::Override { label, .. } => matches!(label, "x-forwarded-for" | "x-forwarded-proto" | "forwarded"),
        Kind::Ordinary => false,
    };
    owned
        || [
            "x-request-id",
            "host",
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "content-length",
        ]
        .contains(&canonical(name.as_str()).as_str())
}

/// Checks one raw route and builds the typed one; the first problem wins.
fn build(raw: RawRoute, origin: String, source: &Source<'_>) -> Result<Route, Problem> {
    let name_span = raw.name.span();
    let name = raw.name.into_inner();
    let valid_name = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_name {
        return problem(name_span, format!("route name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    if RESERVED_NAMES.contains(&name.as_str()) {
        return problem(name_span, format!("route name {name:?} is reserved for the gateway's own metrics labels"));
    }

    let hosts = match raw.hosts {
        None => Vec::new(),
        Some(list) => {
            let span = list.span();
            let list = list.into_inner();
            if list.is_empty() {
                return problem(span, "hosts is empty; leave it out to match any host");
            }
            let mut hosts: Vec<HostPattern> = Vec::with_capacity(list.len());
            for host in list {
                let parsed = HostPattern::parse(host.get_ref()).or_else(|m| problem(host.span(), m))?;
                if hosts.contains(&parsed) {
                    return problem(host.span(), format!("host {parsed} is listed twice"));
                }
                hosts.push(parsed);
            }
            hosts
        }
    };

    let path_prefix = match &raw.path_prefix {
        None => PathPrefix::parse("/").or_else(|m| problem(name_span.clone(), m))?,
        Some(p) => PathPrefix::parse(p.get_ref()).or_else(|m| problem(p.span(), m))?,
    };

    let upstreams = upstreams(raw.upstreams)?;
    let tls = RawTls {
        ca: raw.tls_ca,
        client_cert: raw.tls_client_cert,
        client_key: raw.tls_client_key,
        server_name: raw.tls_server_name,
        verify: raw.tls_verify,
    };
    let upstream_tls = upstream_tls(upstreams[0].scheme(), tls, source)?;

    let auth = raw.auth.as_ref().map_or(Requirement::Required, |a| *a.get_ref());
    let tenant = raw.tenant.as_ref().map_or(Requirement::None, |t| *t.get_ref());
    let tenant_from = tenant_sources(tenant, raw.tenant.map(|t| t.span()), raw.tenant_from, &name_span)?;

    let min_role = min_role(raw.min_role, auth, tenant)?;

    let methods = match raw.methods {
        None => None,
        Some(list) => Some(methods(list)?),
    };

    let require_verified_email = match raw.require_verified_email {
        Some(v) if *v.get_ref() && auth == Requirement::None => {
            return problem(v.span(), "require_verified_email needs a user: set auth = \"required\" or \"optional\"")
        }
        v => v.is_some_and(|v| v.into_inner()),
    };

    let rate_limit = match raw.rate_limit {
        None => None,
        Some(limit) => Some(rate_limit(limit, auth, tenant)?),
    };

    let mut headers = Vec::new();
    if let Some(table) = raw.headers {
        for (name, value) in table.into_inner() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .or_else(|_| problem(value.span(), format!("headers: {name:?} is not a valid header name")))?;
            if forbidden_header(&header) {
                return problem(
                    value.span(),
                    format!("headers: {header} may not be set by a route (identity and hop-by-hop headers are the gateway's)"),
                );
            }
            let parsed = HeaderValue::from_str(value.get_ref()).or_else(|_| {
                problem(value.span(), format!("headers: the value of {header} is not a valid header value"))
            })?;
            headers.push((header, parsed));
        }
    }

    let on_unauthenticated = match raw.on_unauthenticated {
        Some(o) if auth != Requirement::Required => {
            return problem(o.span(), "on_unauthenticated only applies to routes with auth = \"required\"")
        }
        o => o.map(Spanned::into_inner),
    };

    let signed_assertion = raw.signed_assertion.unwrap_or(false);
    let audience = match raw.audience {
        None => None,
        Some(a) if !signed_assertion => return problem(a.span(), "audience needs signed_assertion = true"),
        Some(a) if a.get_ref().is_empty() || a.get_ref().len() > 255 || a.get_ref().chars().any(char::is_control) => {
            return problem(a.span(), "audience must be 1 to 255 printable characters")
        }
        Some(a) => Some(a.into_inner()),
    };

    let identity_headers = identity_headers(raw.identity_headers)?;
    let id = super::route::next_route_id();
    let mut route = Route {
        name: Arc::from(name),
        origin,
        hosts,
        path_prefix,
        upstreams,
        upstream_tls,
        auth,
        tenant,
        tenant_from,
        min_role,
        strip_prefix: raw.strip_prefix.unwrap_or(false),
        methods,
        connect_timeout: raw.connect_timeout.map(|t| duration("connect_timeout", t)).transpose()?,
        read_timeout: raw.read_timeout.map(|t| duration("read_timeout", t)).transpose()?,
        require_verified_email,
        rate_limit,
        headers,
        on_unauthenticated,
        signed_assertion,
        audience,
        case_sensitive: raw.case_sensitive.unwrap_or(false),
        encoded_slashes: raw.encoded_slashes.unwrap_or_default(),
        forward_credentials: raw.forward_credentials.unwrap_or(false),
        identity_headers,
        id,
        base_id: id,
        rules: Box::new([]),
        rule: None,
    };
    if let Some(rules) = raw.rule {
        route.rules = variants::variants(&route, rules, source.text)?;
    }
    Ok(route)
}

/// `upstreams`: at least one, all of one scheme (a route's TLS settings apply to
/// all of them, and a request must not go out encrypted or not by chance).
fn upstreams(raw: Spanned<Vec<Spanned<String>>>) -> Result<Vec<Upstream>, Problem> {
    let span = raw.span();
    let mut upstreams: Vec<Upstream> = Vec::new();
    for upstream in raw.into_inner() {
        let parsed = Upstream::parse(upstream.get_ref()).or_else(|m| problem(upstream.span(), m))?;
        if let Some(first) = upstreams.first().filter(|first| first.scheme() != parsed.scheme()) {
            return problem(
                upstream.span(),
                format!(
                    "upstreams mixes {} and {} upstreams ({first} and {parsed}); a route's upstreams must all use one scheme",
                    first.scheme().as_str(),
                    parsed.scheme().as_str()
                ),
            );
        }
        upstreams.push(parsed);
    }
    if upstreams.is_empty() {
        return problem(span, "upstreams needs at least one host:port or https://host:port");
    }
    Ok(upstreams)
}

/// A route's `tls_*` keys as written.
struct RawTls {
    ca: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
    server_name: Option<Spanned<String>>,
    verify: Option<Spanned<bool>>,
}

impl RawTls {
    /// The first key that is set, for the refusal on a plain-HTTP route.
    fn first_set(&self) -> Option<(&'static str, Range<usize>)> {
        let strings = [
            ("tls_ca", &self.ca),
            ("tls_client_cert", &self.client_cert),
            ("tls_client_key", &self.client_key),
            ("tls_server_name", &self.server_name),
        ];
        let strings = strings.into_iter().filter_map(|(key, value)| value.as_ref().map(|v| (key, v.span())));
        let verify = self.verify.as_ref().map(|v| ("tls_verify", v.span()));
        strings.chain(verify).min_by_key(|(_, span)| span.start)
    }
}

/// The `tls_*` keys: allowed only on routes whose upstreams are `https://`; the
/// files they name are read now (relative to the route file's folder), so a
/// missing or empty one refuses the table here, with the key's line.
fn upstream_tls(scheme: Scheme, raw: RawTls, source: &Source<'_>) -> Result<Option<Arc<UpstreamTls>>, Problem> {
    if scheme == Scheme::Http {
        return match raw.first_set() {
            Some((key, span)) => problem(
                span,
                format!(
                    "{key} only applies to https upstreams, and this route's upstreams are plain HTTP \
                     (write them as https://host:port)"
                ),
            ),
            None => Ok(None),
        };
    }
    let verify = raw.verify.as_ref().is_none_or(|v| *v.get_ref());
    if let (false, Some(ca)) = (verify, &raw.ca) {
        return problem(ca.span(), "tls_ca has no effect with tls_verify = false; remove one of them");
    }
    let client = match (raw.client_cert, raw.client_key) {
        (None, None) => None,
        (Some(cert), None) => return problem(cert.span(), "tls_client_cert needs tls_client_key (both or neither)"),
        (None, Some(key)) => return problem(key.span(), "tls_client_key needs tls_client_cert (both or neither)"),
        (Some(cert), Some(key)) => Some(ClientCert {
            cert: pem_file(source, "tls_client_cert", cert)?,
            key: pem_file(source, "tls_client_key", key)?,
        }),
    };
    let ca = raw.ca.map(|ca| pem_file(source, "tls_ca", ca)).transpose()?;
    let server_name =
        raw.server_name.map(|n| upstream::server_name(n.get_ref()).or_else(|m| problem(n.span(), m))).transpose()?;
    Ok(Some(Arc::new(UpstreamTls { ca, client, server_name, verify })))
}

/// Reads the PEM file a `tls_*` key names.
fn pem_file(source: &Source<'_>, key: &'static str, raw: Spanned<String>) -> Result<PemFile, Problem> {
    let span = raw.span();
    if raw.get_ref().trim().is_empty() {
        return problem(span, format!("{key} is empty; give the path of a PEM file"));
    }
    let (line, column) = locate(source.text, span.start);
    PemFile::read(key, source.folder().join(raw.get_ref()), (source.file, line, column)).or_else(|m| problem(span, m))
}

/// `identity_headers`: names from [`IdentityHeader::ALL`], each once; all six
/// when left out.
fn identity_headers(raw: Option<Spanned<Vec<Spanned<String>>>>) -> Result<IdentityHeaders, Problem> {
    let Some(list) = raw else { return Ok(IdentityHeaders::ALL) };
    let mut seen = Vec::new();
    for name in list.into_inner() {
        let Some(header) = IdentityHeader::parse(name.get_ref()) else {
            let known: Vec<&str> = IdentityHeader::ALL.iter().map(|h| h.as_str()).collect();
            return problem(
                name.span(),
                format!("identity_headers: {:?} is not one of {}", name.get_ref(), known.join(", ")),
            );
        };
        if seen.contains(&header) {
            return problem(name.span(), format!("identity_headers: {header} is listed twice"));
        }
        seen.push(header);
    }
    Ok(IdentityHeaders::of(seen))
}

/// `tenant_from` is required (non-empty, no repeats) when the route resolves a
/// tenant, and forbidden when it does not.
fn tenant_sources(
    tenant: Requirement,
    tenant_span: Option<Range<usize>>,
    raw: Option<Spanned<Vec<Spanned<TenantSource>>>>,
    name_span: &Range<usize>,
) -> Result<Vec<TenantSource>, Problem> {
    match (tenant, raw) {
        (Requirement::None, None) => Ok(Vec::new()),
        (Requirement::None, Some(list)) => {
            problem(list.span(), "tenant_from needs tenant = \"required\" or \"optional\" (tenant is \"none\")")
        }
        (_, None) => problem(
            tenant_span.unwrap_or_else(|| name_span.clone()),
            "this route resolves a tenant but has no tenant_from; list where to look, \
             e.g. tenant_from = [\"subdomain\", \"header\"]",
        ),
        (_, Some(list)) => {
            let span = list.span();
            let mut sources = Vec::new();
            for source in list.into_inner() {
                if sources.contains(source.get_ref()) {
                    return problem(source.span(), "tenant_from lists this source twice");
                }
                sources.push(*source.get_ref());
            }
            if sources.is_empty() {
                return problem(span, "tenant_from is empty; list at least one of domain, subdomain, path, header");
            }
            Ok(sources)
        }
    }
}

fn duration(key: &str, raw: Spanned<String>) -> Result<Duration, Problem> {
    match shared::duration::parse_duration(raw.get_ref()) {
        Ok(d) if d.is_zero() => problem(raw.span(), format!("{key} must be longer than zero")),
        Ok(d) => Ok(d),
        Err(m) => problem(raw.span(), format!("{key}: {m}")),
    }
}

fn rate_limit(raw: Spanned<RawRateLimit>, auth: Requirement, tenant: Requirement) -> Result<RateLimit, Problem> {
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(requests) = std::num::NonZeroU32::new(*raw.requests.get_ref()) else {
        return problem(raw.requests.span(), "rate_limit.requests must be at least 1");
    };
    let window = duration("rate_limit.window", raw.window)?;
    let key = raw.key.unwrap_or(RateLimitKey::Ip);
    match key {
        RateLimitKey::User if auth == Requirement::None => {
            problem(span, "rate_limit.key = \"user\" needs a user: set auth = \"required\" or \"optional\"")
        }
        RateLimitKey::Tenant if tenant == Requirement::None => {
            problem(span, "rate_limit.key = \"tenant\" needs a tenant: set tenant = \"required\" or \"optional\"")
        }
        _ => Ok(RateLimit { requests, window, key }),
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
