//! Identity headers: everything a client could use to impersonate someone, or to
//! make the app believe something else about the request, is removed before
//! forwarding (in every spelling, see [`edge::headers`]); then the gateway's own
//! are set.

use edge::headers::{HeaderRules, Kind};
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::routes::{IdentityHeader, IdentityHeaders};

use shared::cache::{CachedApiKey, CachedTenant, CachedUser};
use shared::domain::Role;

/// The signed identity assertion's header (see [`shared::assertion`]).
pub const ASSERTION: &str = "x-tenantgate-assertion";

/// What [`strip`] needs to know about the request.
pub struct StripPolicy<'a> {
    /// The identity and override rules in force.
    pub rules: &'a HeaderRules,
    /// The TCP peer is a trusted proxy: its override headers (in their exact
    /// spelling) stay.
    pub trusted_peer: bool,
    /// The route reads `X-Tenant-Id`/`X-Tenant-Slug` as its tenant source: those
    /// two, spelled so, are input rather than a spoof (still removed).
    pub tenant_headers_are_input: bool,
}

/// Every identity header and every override header a trusted proxy did not set,
/// to be removed from the upstream request ([`remove`], on its plain header map,
/// see [`super::forward`]); calls `spoofed` with the metrics label and name of
/// each one that was an attempt (everything but tenant headers a route reads, and
/// the `X-Forwarded-For`/`-Proto` the gateway rewrites anyway). Empty, without
/// allocating, for the usual request that sends none.
pub fn strip(
    req: &RequestHeader,
    policy: &StripPolicy<'_>,
    mut spoofed: impl FnMut(&'static str, &HeaderName),
) -> Vec<HeaderName> {
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in req.headers.keys() {
        match policy.rules.classify(name) {
            Kind::Ordinary => {}
            Kind::Identity(label) => {
                let input = policy.tenant_headers_are_input && matches!(name.as_str(), "x-tenant-id" | "x-tenant-slug");
                if !input {
                    spoofed(label, name);
                }
                remove.push(name.clone());
            }
            Kind::Override { exact: true, .. } if policy.trusted_peer => {}
            Kind::Override { label, exact } => {
                let rewritten = exact && matches!(label, "x-forwarded-for" | "x-forwarded-proto");
                if !rewritten {
                    spoofed(label, name);
                }
                remove.push(name.clone());
            }
        }
    }
    remove
}

/// Removes what [`strip`] found (every value of each name).
pub fn remove(headers: &mut http::HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
}

/// Headers written on every request an entry serves (see [`crate::memo`]).
pub use crate::memo::HeaderBlock;

/// Who a decided request is, for its headers.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user: `X-User-*` and `X-Actor-Type: user`.
    User(&'a CachedUser),
    /// A tenant API key: `X-Api-Key-Id` and `X-Actor-Type: api_key`, no `X-User-*`.
    ApiKey(&'a CachedApiKey),
}

/// The identity headers `wanted` by a route, for a decided actor, tenant and role: built once per
/// decision from the values each cached user, key and tenant built once (clones are
/// reference counts), and kept with the decision in the memo.
///
/// `None` when a value is not a valid header value (cannot happen for ids and
/// slugs; emails are validated at registration).
pub fn block(
    actor: Option<Actor<'_>>,
    tenant: Option<&CachedTenant>,
    role: Option<Role>,
    wanted: IdentityHeaders,
) -> Option<HeaderBlock> {
    let user = match actor {
        Some(Actor::User(user)) => Some((user.header_values()?, user.email_verified)),
        _ => None,
    };
    let key_id = match actor {
        Some(Actor::ApiKey(key)) => Some(key.header_value()?),
        _ => None,
    };
    let tenant = match tenant {
        Some(tenant) => Some(tenant.header_values()?),
        None => None,
    };
    let value = |header: IdentityHeader| -> Option<HeaderValue> {
        match header {
            IdentityHeader::UserId => user.map(|([id, _], _)| id.clone()),
            IdentityHeader::UserEmail => user.map(|([_, email], _)| email.clone()),
            IdentityHeader::UserEmailVerified => {
                user.map(|(_, verified)| HeaderValue::from_static(if verified { "true" } else { "false" }))
            }
            IdentityHeader::TenantId => tenant.map(|[id, _]| id.clone()),
            IdentityHeader::TenantSlug => tenant.map(|[_, slug]| slug.clone()),
            IdentityHeader::TenantRole => role.map(|role| HeaderValue::from_static(role.as_str())),
            IdentityHeader::ActorType => actor.map(|actor| {
                HeaderValue::from_static(match actor {
                    Actor::User(_) => "user",
                    Actor::ApiKey(_) => "api_key",
                })
            }),
            IdentityHeader::ApiKeyId => key_id.cloned(),
        }
    };
    Some(wanted.iter().filter_map(|header| Some((header.name(), value(header)?))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(pairs: &[(&str, &str)], trusted_peer: bool, tenant_input: bool) -> (Vec<String>, Vec<&'static str>) {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in pairs {
            req.append_header(name.to_string(), *value).unwrap();
        }
        let rules = HeaderRules::default();
        let policy = StripPolicy { rules: &rules, trusted_peer, tenant_headers_are_input: tenant_input };
        let mut labels = Vec::new();
        let names = strip(&req, &policy, |label, _| labels.push(label));
        let mut parts = http::request::Parts::from(req);
        remove(&mut parts.headers, &names);
        let mut left: Vec<String> = parts.headers.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort_unstable();
        labels.sort_unstable();
        (left, labels)
    }

    #[test]
    fn strips_every_spelling_and_keeps_the_rest() {
        let (left, labels) = stripped(
            &[
                ("X-User-Id", "spoofed"),
                ("x_user_id", "spoofed"),
                ("X.User.Email", "spoofed"),
                ("x-tenant-role", "owner"),
                ("X-Tenantgate-Assertion", "forged"),
                ("X-Auth-Request-Email", "a@b.c"),
                ("Remote_User", "root"),
                ("accept", "text/html"),
                ("x-users-count", "3"),
            ],
            false,
            false,
        );
        assert_eq!(left, ["accept", "x-users-count"]);
        assert_eq!(labels.len(), 7, "{labels:?}");
        assert!(labels.contains(&"x-user-id") && labels.contains(&"x-user-email"));
    }

    #[test]
    fn overrides_stay_only_from_a_trusted_proxy_in_their_own_spelling() {
        let pairs =
            [("X-Forwarded-Host", "evil.test"), ("x_forwarded_host", "evil.test"), ("X-Original-URL", "/admin")];
        let (left, labels) = stripped(&pairs, false, false);
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(labels, ["x-forwarded-host", "x-forwarded-host", "x-original-url"]);
        let (left, labels) = stripped(&pairs, true, false);
        assert_eq!(left, ["x-forwarded-host", "x-original-url"]);
        assert_eq!(labels, ["x-forwarded-host"]);
        // Rewritten anyway, not counted as an attempt.
        let (left, labels) = stripped(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")], false, false);
        assert!(left.is_empty() && labels.is_empty());
    }

    #[test]
    fn tenant_headers_are_input_only_where_the_route_reads_them() {
        let pairs = [("x-tenant-id", "1"), ("x_tenant_id", "2")];
        assert_eq!(stripped(&pairs, false, true).1, ["x-tenant-id"]);
        assert_eq!(stripped(&pairs, false, false).1, ["x-tenant-id", "x-tenant-id"]);
    }
}
