//! `gateway check-route URL [--method M] [--user EMAIL] [--header "Name: value"]`:
//! a dry run of the proxied path for one request, printed for an operator. It
//! reads the request exactly as the proxy does (the same route table, host and
//! path rules, tenant facts and access decision, against the same database), so
//! what it prints is what a real request would get: which route matches, how the
//! tenant is found, what role is required, whether the user would be allowed and
//! which identity headers the app would receive. On a route with
//! `[[route.rule]]` entries it names the rule that applied to the method and
//! path, and prints the policy that rule makes.
//!
//! With `--user` it signs an access token for that user with the configured
//! `JWT_SECRET` (printed nowhere) and decides with it; without, it decides for the
//! request as given (anonymous, or with the `Authorization` a `--header` sets).
//! Nothing is counted, remembered or rate-limited; it needs Postgres only (the
//! shared Redis tier is skipped, as when Redis is down).

use std::fmt::Write as _;

use anyhow::Context;
use http::{HeaderName, HeaderValue, Method};
use pingora::http::RequestHeader;
use prometheus::Registry;
use shared::cache::{Cache, CacheConfig, Ttls};
use shared::config::Settings;
use shared::domain::Email;
use shared::jwt::AccessTokens;
use sqlx::PgPool;

use crate::memo::DecisionMemo;
use crate::metrics::Metrics;
use crate::proxy::access::{AccessControl, Decision, Identity, Refusal, RequestFacts};
use crate::proxy::routing::{self, Target};
use crate::routes::Route;
use crate::web_session::cookies::CookiePolicy;

/// What to check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The request's URL, `http://host[:port]/path?query`.
    pub url: String,
    /// The method.
    pub method: String,
    /// Decide as this user (by email), with a token signed for them.
    pub user: Option<String>,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
}

/// What the check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A real request would be forwarded.
    Allowed,
    /// It would be refused (or no route matches).
    Refused,
}

/// Runs the check on a runtime of its own and returns the report and the verdict.
///
/// # Errors
/// A URL, method or header that cannot be a request, unreadable route files, a
/// database that cannot be reached, or an unknown `--user`.
pub fn run(settings: &Settings, check: &Check) -> anyhow::Result<(String, Verdict)> {
    let table = crate::routes::load(&settings.gateway.routes)
        .with_context(|| format!("GATEWAY_ROUTES {}", settings.gateway.routes.display()))?;
    let mut req = request(check)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut out = String::new();
        let target = match routing::resolve(&table, &req) {
            Ok(target) => target,
            Err(refusal) => {
                refused(&mut out, "no route takes this request", &refusal);
                return Ok((out, Verdict::Refused));
            }
        };
        describe_route(&mut out, &target);
        if !target.route.allows_method(&req.method) {
            refused(&mut out, "method", &routing::METHOD_NOT_ALLOWED);
            return Ok((out, Verdict::Refused));
        }
        let (access, pool) = access_control(settings)?;
        if let Some(email) = &check.user {
            let bearer = token_for(&access, &pool, settings, email).await?;
            req.insert_header(http::header::AUTHORIZATION, bearer)?;
        }
        let cookies = CookiePolicy::new(settings);
        let facts = match routing::facts(&req, &target, &cookies.tenant) {
            Ok(facts) => facts,
            Err(refusal) => {
                refused(&mut out, "tenant", &refusal);
                return Ok((out, Verdict::Refused));
            }
        };
        describe_facts(&mut out, &target.route, &facts);
        let verdict = match access.decide_once(&target.route, &req.headers, &facts).await {
            Decision::Allow(identity) => {
                allowed(&mut out, &target.route, &identity);
                Verdict::Allowed
            }
            Decision::Deny(refusal) => {
                refused(&mut out, "decision", &refusal);
                Verdict::Refused
            }
        };
        pool.close().await;
        Ok((out, verdict))
    })
}

/// The request the proxy would have parsed.
fn request(check: &Check) -> anyhow::Result<RequestHeader> {
    let uri: http::Uri = check.url.parse().with_context(|| format!("{:?} is not a URL", check.url))?;
    let (Some(authority), Some("http" | "https")) = (uri.authority(), uri.scheme_str()) else {
        anyhow::bail!("{:?}: give an absolute http:// or https:// URL, like http://app.example.com/path", check.url);
    };
    let method = Method::from_bytes(check.method.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("{:?} is not an HTTP method", check.method))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = RequestHeader::build(method, path.as_bytes(), Some(2 + check.headers.len()))?;
    req.insert_header(http::header::HOST, authority.as_str())?;
    for line in &check.headers {
        let (name, value) =
            line.split_once(':').with_context(|| format!("{line:?}: give a header as \"Name: value\""))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).with_context(|| format!("{name:?}: header name"))?;
        let value = HeaderValue::from_str(value.trim()).with_context(|| format!("{line:?}: header value"))?;
        req.append_header(name, value)?;
    }
    Ok(req)
}

/// The decision's parts, as the gateway builds them, over the database only.
fn access_control(settings: &Settings) -> anyhow::Result<(AccessControl, PgPool)> {
    let pool = shared::db::pool(&settings.database).context("building the database pool")?;
    // No shared tier: every fact comes from Postgres, as in single-node mode.
    let config = CacheConfig {
        ttls: Ttls { negative: settings.cache.negative_ttl, ..Ttls::default() },
        max_entries: 1_000,
        prefix: settings.redis.key_prefix.clone(),
    };
    let cache = Cache::new(pool.clone(), None, config, &Registry::new()).context("cache")?;
    let access = AccessControl {
        tokens: AccessTokens::new(&settings.jwt),
        cache,
        access_cookie: settings.gateway.access_cookie.clone(),
        base_domain: settings.gateway.base_domain.clone(),
        memo: DecisionMemo::new(1),
        memo_counters: Metrics::new().context("metrics")?.memo,
        // Nothing is written: a check is not a use.
        key_uses: std::sync::Arc::default(),
        key_guard: crate::proxy::key_guard::KeyGuard::default(),
    };
    Ok((access, pool))
}

/// `Bearer <token>` for the user with `email`.
async fn token_for(
    access: &AccessControl,
    pool: &PgPool,
    settings: &Settings,
    email: &str,
) -> anyhow::Result<HeaderValue> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--user {email:?}: {e}"))?;
    let user = shared::db::users::find_by_email(pool, &email)
        .await
        .with_context(|| format!("looking up {} in {}", email.as_str(), redacted(&settings.database.url)))?
        .with_context(|| format!("--user: no user {} in this database", email.as_str()))?;
    let issued = access.tokens.issue(user.id, &user.email, user.token_version).context("signing a token")?;
    Ok(HeaderValue::from_str(&format!("Bearer {}", issued.token))?)
}

fn redacted(url: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    // Host and database only: a password can sit in the user info or the query.
    match url::Url::parse(url.expose_secret()) {
        Ok(url) => format!("{}{}", url.host_str().unwrap_or("localhost"), url.path()),
        Err(_) => "DATABASE_URL".to_owned(),
    }
}

fn describe_route(out: &mut String, target: &Target) {
    let route = &target.route;
    let _ = writeln!(out, "route      {} ({})", route.name(), route.origin());
    match route.rule() {
        Some(rule) => {
            let _ = writeln!(out, "rule       {rule}");
        }
        None if !route.rules().is_empty() => {
            let _ = writeln!(out, "rule       none of {} applies: the route's own policy", route.rules().len());
        }
        None => {}
    }
    let upstreams: Vec<String> = route.upstreams().iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "upstream   {} {}", upstreams.join(", "), target.upstream_uri);
    let _ = writeln!(out, "auth       {}", route.auth().as_str());
    let role = route.min_role().map_or_else(|| "none".to_owned(), |r| r.to_string());
    let verified = if route.require_verified_email() { ", verified email" } else { "" };
    let _ = writeln!(out, "requires   role {role}{verified}");
    if let Some(limit) = route.rate_limit() {
        let _ = writeln!(
            out,
            "rate limit {} per {:?} per {:?} (not counted by a dry run)",
            limit.requests(),
            limit.window(),
            limit.key()
        );
    }
}

fn describe_facts(out: &mut String, route: &Route, facts: &RequestFacts<'_>) {
    let sources: Vec<&str> = route.tenant_from().iter().map(|s| s.as_str()).collect();
    let _ = writeln!(out, "tenant     {}, from {}", route.tenant().as_str(), sources.join(" then "));
    let _ = writeln!(out, "  host {}", facts.host);
    if let Some(slug) = facts.path_slug {
        let _ = writeln!(out, "  path slug {}", slug.as_str());
    }
    if let Some(id) = facts.header_tenant_id {
        let _ = writeln!(out, "  X-Tenant-Id {id}");
    }
    if let Some(slug) = facts.header_tenant_slug {
        let _ = writeln!(out, "  X-Tenant-Slug {slug}");
    }
}

fn allowed(out: &mut String, route: &Route, identity: &Identity) {
    let _ = writeln!(out, "decision   ALLOWED");
    match (&identity.user, &identity.api_key) {
        (Some(user), _) => {
            let _ = writeln!(out, "  user   {} <{}>", user.id, user.email.as_str());
        }
        (None, Some(key)) => {
            let _ = writeln!(out, "  API key {} (tgk_{}_...)", key.id, key.public_id);
        }
        (None, None) => {
            let _ = writeln!(out, "  user   (anonymous)");
        }
    }
    if let (Some(tenant), Some(role)) = (&identity.tenant, identity.role) {
        let _ = writeln!(out, "  tenant {} ({}), role {role}", tenant.slug.as_str(), tenant.id);
    }
    let _ = writeln!(out, "the app receives:");
    for (name, value) in identity.headers.iter() {
        let _ = writeln!(out, "  {}: {}", name, value.to_str().unwrap_or("(not text)"));
    }
    if route.signed_assertion() {
        let _ =
            writeln!(out, "  x-tenantgate-assertion: (signed per request, audience {})", route.assertion_audience());
    }
    let _ = writeln!(out, "  x-forwarded-for, x-forwarded-proto, x-request-id: set per request");
    if identity.via_header && !route.forward_credentials() {
        let _ = writeln!(out, "  (the gateway's Authorization header is removed)");
    }
    if identity.via_api_key_header && !route.forward_credentials() {
        let _ = writeln!(out, "  (the X-Api-Key header with the API key is removed)");
    }
}

fn refused(out: &mut String, stage: &str, refusal: &Refusal) {
    let _ = writeln!(
        out,
        "decision   REFUSED at {stage}: {} {} ({})",
        refusal.status().as_u16(),
        refusal.code.as_str(),
        refusal.message
    );
}
