//! Checks of the fields a route and its rules share: `methods` and `min_role`.

use http::Method;
use shared::domain::Role;
use toml::Spanned;

use super::policy::Requirement;
use super::problem::{problem, Problem};

/// `min_role`, of a route or of a rule's policy (`auth` and `tenant` being the
/// policy's): only where a user is looked at and a tenant resolved.
pub(super) fn min_role(
    raw: Option<Spanned<Role>>,
    auth: Requirement,
    tenant: Requirement,
) -> Result<Option<Role>, Problem> {
    match raw {
        None => Ok(None),
        Some(role) if tenant == Requirement::None => {
            problem(role.span(), "min_role needs a tenant: set tenant = \"required\" or \"optional\" on the route")
        }
        Some(role) if auth == Requirement::None => {
            problem(role.span(), "min_role needs a user: set auth = \"required\" or \"optional\"")
        }
        Some(role) => Ok(Some(role.into_inner())),
    }
}

/// `methods`, of a route or a rule: HTTP methods (uppercased), each once, at least one.
pub(super) fn methods(list: Spanned<Vec<Spanned<String>>>) -> Result<Vec<Method>, Problem> {
    let span = list.span();
    let mut methods = Vec::new();
    for raw in list.into_inner() {
        let upper = raw.get_ref().to_ascii_uppercase();
        let method = match Method::from_bytes(upper.as_bytes()) {
            Ok(m) if !upper.is_empty() => m,
            _ => return problem(raw.span(), format!("methods: {:?} is not an HTTP method", raw.get_ref())),
        };
        if methods.contains(&method) {
            return problem(raw.span(), format!("methods lists {method} twice"));
        }
        methods.push(method);
    }
    if methods.is_empty() {
        return problem(span, "methods is empty, so nothing could match it; leave it out for every method");
    }
    Ok(methods)
}
