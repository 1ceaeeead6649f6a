//! `[[route.rule]]`: method- and path-aware policies inside a route. A rule says
//! when it applies (`methods`, `path_prefix`) and what it changes (`auth`,
//! `min_role`); the first rule that applies to a request decides it, and a
//! request no rule applies to gets the route's own policy.
//!
//! Each rule becomes a variant of its route at load time (the route with the
//! rule's policy and an id of its own, see [`super::Route::rules`]), so everything
//! after the selection ([`super::Route::for_request`]) reads one route as before.

use std::fmt;

use http::Method;
use shared::domain::Role;

use super::lookup::PathLookup;
use super::policy::Requirement;
use super::prefix::PathPrefix;

/// One rule: when it applies and what it sets. Read-only, built by the loader.
#[derive(Debug)]
pub struct Rule {
    /// 1-based line of its `[[route.rule]]` header.
    pub(super) line: usize,
    /// The methods as written (uppercase, each once); `None` for every method.
    pub(super) methods: Option<Box<[Method]>>,
    /// What the methods match: the written ones, and `HEAD` with `GET`.
    pub(super) matched: Option<Box<[Method]>>,
    /// `None` for the route's whole prefix.
    pub(super) path_prefix: Option<PathPrefix>,
    /// What the rule sets itself; the rest comes from the route.
    pub(super) auth: Option<Requirement>,
    pub(super) min_role: Option<Role>,
}

impl Rule {
    /// The line of its `[[route.rule]]` header in the route's file.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The methods it is written for; `None` for every method. A rule for `GET`
    /// applies to `HEAD` too (apps answer `HEAD` with their `GET` handler).
    pub fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    /// The prefix it is written for, within the route's; `None` for the route's.
    pub fn path_prefix(&self) -> Option<&PathPrefix> {
        self.path_prefix.as_ref()
    }

    /// The `auth` it sets, if it sets one.
    pub fn auth(&self) -> Option<Requirement> {
        self.auth
    }

    /// The `min_role` it sets, if it sets one.
    pub fn min_role(&self) -> Option<Role> {
        self.min_role
    }

    /// Whether it applies to a request with `method` and `path` (the path the
    /// route matched). Methods are compared without regard to ASCII case:
    /// Pingora passes `delete` on as sent, and an app that reads it as `DELETE`
    /// must not escape a `DELETE` rule.
    pub(super) fn applies(&self, method: &Method, path: PathLookup<'_>, case_sensitive: bool) -> bool {
        let method_ok = self
            .matched
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == method || m.as_str().eq_ignore_ascii_case(method.as_str())));
        method_ok && self.path_prefix.as_ref().is_none_or(|p| p.matches(path.view(), path.folded(), case_sensitive))
    }
}

/// `line 14 (DELETE) -> min_role admin`, as `gateway check-route` prints it.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (", self.line)?;
        match &self.methods {
            Some(methods) => {
                let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
                f.write_str(&names.join(", "))?;
            }
            None => f.write_str("any method")?,
        }
        if let Some(prefix) = &self.path_prefix {
            write!(f, " under {prefix}")?;
        }
        f.write_str(") ->")?;
        if let Some(auth) = self.auth {
            write!(f, " auth {}", auth.as_str())?;
        }
        if let Some(role) = self.min_role {
            let sep = if self.auth.is_some() { "," } else { "" };
            write!(f, "{sep} min_role {role}")?;
        }
        Ok(())
    }
}
