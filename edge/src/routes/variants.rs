//! Loading `[[route.rule]]` tables: each is checked and becomes a variant of
//! its route (see [`super::rule`]).

use std::ops::Range;
use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use shared::domain::Role;
use toml::Spanned;

use super::fields;
use super::policy::Requirement;
use super::prefix::PathPrefix;
use super::problem::{locate, problem, Problem};
use super::route::Route;
use super::rule::Rule;

/// One `[[route.rule]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    path_prefix: Option<Spanned<String>>,
    auth: Option<Spanned<Requirement>>,
    min_role: Option<Spanned<Role>>,
}

/// Builds the variants of `route` for its `raw` rules, in order: each checked
/// alone (methods the route allows, a prefix within the route's, a valid
/// policy) and against the rules before it (one that matches every request it
/// would makes it unreachable). `text` is the route file's, for line numbers.
pub(super) fn variants(route: &Route, raw: Vec<Spanned<RawRule>>, text: &str) -> Result<Box<[Arc<Route>]>, Problem> {
    let mut built: Vec<Rule> = Vec::with_capacity(raw.len());
    for raw in raw {
        let span = raw.span();
        let rule = rule(route, raw.into_inner(), locate(text, span.start).0, &span)?;
        if let Some(earlier) = built.iter().find(|earlier| shadows(route, earlier, &rule)) {
            return problem(
                span,
                format!(
                    "this rule is unreachable: the rule at line {} matches every request it would \
                     (rules apply in order, the first that matches wins)",
                    earlier.line
                ),
            );
        }
        built.push(rule);
    }
    Ok(built.into_iter().map(|rule| Arc::new(variant(route, rule))).collect())
}

/// Checks one rule on its own.
fn rule(route: &Route, raw: RawRule, line: usize, span: &Range<usize>) -> Result<Rule, Problem> {
    if raw.auth.is_none() && raw.min_role.is_none() {
        return problem(
            span.clone(),
            "this rule sets nothing: give it min_role or auth (or both); the route's own settings apply otherwise",
        );
    }
    let methods = match raw.methods {
        None => None,
        Some(list) => {
            let spans: Vec<Range<usize>> = list.get_ref().iter().map(Spanned::span).collect();
            let methods = fields::methods(list)?;
            for (method, span) in methods.iter().zip(spans) {
                if !route.allows_method(method) {
                    return problem(
                        span,
                        format!(
                            "methods: {method} is not among the route's methods, so this rule could never apply to it"
                        ),
                    );
                }
            }
            Some(methods.into_boxed_slice())
        }
    };
    let matched = methods.as_ref().map(|list| {
        let mut matched = list.to_vec();
        if matched.contains(&Method::GET) && !matched.contains(&Method::HEAD) {
            matched.push(Method::HEAD);
        }
        matched.into_boxed_slice()
    });
    let path_prefix = match raw.path_prefix {
        None => None,
        Some(raw) => {
            let prefix = PathPrefix::parse(raw.get_ref()).or_else(|m| problem(raw.span(), m))?;
            if !route.path_prefix.covers(&prefix, route.case_sensitive) {
                return problem(
                    raw.span(),
                    format!(
                        "path_prefix {:?} is not within the route's path_prefix {:?}, so this rule could never apply",
                        prefix.as_str(),
                        route.path_prefix.as_str()
                    ),
                );
            }
            Some(prefix)
        }
    };
    let auth = raw.auth.map(Spanned::into_inner);
    // The effective policy must be one a route could have.
    let min_role = fields::min_role(raw.min_role, auth.unwrap_or(route.auth), route.tenant)?;
    Ok(Rule { line, methods, matched, path_prefix, auth, min_role })
}

/// The route as `rule` makes it. A field the rule does not set comes from the
/// route, except that a rule setting `auth = "optional"` or `"none"` does not
/// take the route's `min_role` (such a rule is there to let anonymous requests
/// in, which a `min_role` refuses), and that settings which only mean something
/// under some policies stay only there: `on_unauthenticated` where auth is
/// required, `require_verified_email` where a user is looked at.
fn variant(route: &Route, rule: Rule) -> Route {
    let auth = rule.auth.unwrap_or(route.auth);
    let min_role = match (rule.min_role, rule.auth) {
        (Some(role), _) => Some(role),
        (None, Some(Requirement::Optional | Requirement::None)) => None,
        (None, _) => route.min_role,
    };
    let id = super::route::next_route_id();
    Route {
        auth,
        min_role,
        on_unauthenticated: route.on_unauthenticated.filter(|_| auth == Requirement::Required),
        require_verified_email: route.require_verified_email && auth != Requirement::None,
        id,
        base_id: route.base_id,
        rules: Box::new([]),
        rule: Some(Arc::new(rule)),
        ..route.clone()
    }
}

/// Whether `earlier` applies to every request `later` would: its methods
/// include `later`'s (of those the route allows; no list is every method) and
/// its prefix covers `later`'s (no prefix is the route's own).
fn shadows(route: &Route, earlier: &Rule, later: &Rule) -> bool {
    let allowed = |rule: &Rule| -> Option<Vec<Method>> {
        match (&rule.matched, route.methods()) {
            (Some(list), _) => Some(list.iter().filter(|m| route.allows_method(m)).cloned().collect()),
            (None, Some(route_list)) => Some(route_list.to_vec()),
            (None, None) => None,
        }
    };
    let methods_covered = match (allowed(earlier), allowed(later)) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|m| e.contains(m)),
    };
    let earlier_prefix = earlier.path_prefix.as_ref().unwrap_or(&route.path_prefix);
    let later_prefix = later.path_prefix.as_ref().unwrap_or(&route.path_prefix);
    methods_covered && earlier_prefix.covers(later_prefix, route.case_sensitive)
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
