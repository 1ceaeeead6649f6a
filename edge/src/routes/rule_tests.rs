//! Rule tests: parsing, defaults from the route, refusals with their line,
//! unreachable rules, and which rule a request gets.

use std::path::Path;
use std::sync::Arc;

use http::Method;
use shared::domain::Role;

use super::super::lookup::PathLookup;
use super::super::policy::{OnUnauthenticated, Requirement};
use super::super::route::Route;
use super::super::table::RouteTable;
use crate::path::RequestPath;

/// The README's example; the rules' headers are at lines 11, 15 and 20.
const REPORTS: &str = r#"
[[route]]
name = "reports"
path_prefix = "/reports"
upstreams = ["127.0.0.1:3000"]
auth = "required"
tenant = "required"
tenant_from = ["header"]
min_role = "viewer"

[[route.rule]]
methods = ["DELETE"]
min_role = "admin"

[[route.rule]]
methods = ["POST", "PUT", "PATCH"]
path_prefix = "/reports/shared"
min_role = "member"

[[route.rule]]
path_prefix = "/reports/public"
auth = "optional"
"#;

fn parse(text: &str) -> Result<RouteTable, String> {
    RouteTable::parse(Path::new("routes.toml"), text).map_err(|e| e.to_string())
}

fn refusal(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// A route (lines 1 to 8, `route` lines inserted at line 6) followed by `rules`
/// (starting at line 9).
fn with_rules(route: &str, rules: &str) -> String {
    format!(
        "[[route]]\nname = \"r\"\npath_prefix = \"/r\"\nupstreams = [\"127.0.0.1:1\"]\ntenant = \"required\"\n{route}\n\
         tenant_from = [\"header\"]\nmin_role = \"viewer\"\n{rules}"
    )
}

/// The variant a request gets: `None` for the route's own policy, else the
/// rule's line.
fn chosen(route: &Arc<Route>, method: &str, path: &str) -> Option<usize> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let path = RequestPath::parse(path).unwrap();
    let picked = route.for_request(&method, PathLookup::of(&path));
    assert_eq!(picked.rule().is_some(), route.rule_for(&method, PathLookup::of(&path)).is_some());
    if Arc::ptr_eq(picked, route) {
        return None;
    }
    Some(picked.rule().unwrap().line())
}

#[test]
fn rules_are_read_in_order_with_the_rest_from_the_route() {
    let table = parse(REPORTS).unwrap();
    let route = table.get("reports").unwrap();
    assert!(route.rule().is_none());
    let rules = route.rules();
    assert_eq!(rules.len(), 3);
    let lines: Vec<usize> = rules.iter().map(|v| v.rule().unwrap().line()).collect();
    assert_eq!(lines, [11, 15, 20]);

    let delete = &rules[0];
    assert_eq!(delete.rule().unwrap().methods(), Some(&[Method::DELETE][..]));
    assert_eq!(delete.rule().unwrap().path_prefix(), None);
    assert_eq!((delete.auth(), delete.min_role()), (Requirement::Required, Some(Role::Admin)));
    assert_eq!(delete.rule().unwrap().to_string(), "line 11 (DELETE) -> min_role admin");

    let shared = &rules[1];
    assert_eq!(shared.min_role(), Some(Role::Member));
    assert_eq!(shared.rule().unwrap().path_prefix().map(|p| p.as_str()), Some("/reports/shared"));
    assert_eq!(
        shared.rule().unwrap().to_string(),
        "line 15 (POST, PUT, PATCH under /reports/shared) -> min_role member"
    );

    let public = &rules[2];
    assert_eq!((public.auth(), public.min_role()), (Requirement::Optional, None), "auth optional drops min_role");
    assert_eq!(public.rule().unwrap().to_string(), "line 20 (any method under /reports/public) -> auth optional");

    for variant in rules {
        // Everything but the policy is the route's: name (metrics, logs),
        // prefix, upstreams, tenant, the route's own methods.
        assert_eq!(variant.name(), route.name());
        assert_eq!(variant.origin(), route.origin());
        assert_eq!(variant.path_prefix(), route.path_prefix());
        assert_eq!(variant.tenant_from(), route.tenant_from());
        assert_eq!(variant.upstreams().len(), 1);
        assert!(variant.rules().is_empty());
        // Its own id (decisions are remembered by it), the route's base id.
        assert_ne!(variant.id(), route.id());
        assert_eq!(variant.base_id(), route.id());
    }
    assert_eq!(route.base_id(), route.id());
    let ids: std::collections::HashSet<u64> = rules.iter().map(|v| v.id()).collect();
    assert_eq!(ids.len(), 3);
    let reloaded = parse(REPORTS).unwrap();
    assert_ne!(reloaded.get("reports").unwrap().rules()[0].id(), rules[0].id(), "a reload renews rule ids too");
}

#[test]
fn a_rule_sets_auth_min_role_or_both_and_keeps_the_rest() {
    let rules = "[[route.rule]]\nmethods = [\"GET\"]\nauth = \"optional\"\nmin_role = \"member\"\n\
                 [[route.rule]]\nmethods = [\"POST\"]\nauth = \"required\"\n\
                 [[route.rule]]\nmethods = [\"PUT\"]\nauth = \"none\"\n";
    let table = parse(&with_rules("on_unauthenticated = \"redirect\"\nrequire_verified_email = true", rules)).unwrap();
    let route = table.get("r").unwrap();
    let [get, post, put] = route.rules() else { panic!("three rules") };
    assert_eq!((get.auth(), get.min_role()), (Requirement::Optional, Some(Role::Member)));
    assert_eq!(get.rule().unwrap().to_string(), "line 10 (GET) -> auth optional, min_role member");
    // What only concerns a required user stays where auth is required.
    assert_eq!(get.on_unauthenticated(), None);
    assert!(get.require_verified_email());
    assert_eq!((post.auth(), post.min_role()), (Requirement::Required, Some(Role::Viewer)), "min_role inherited");
    assert_eq!(post.on_unauthenticated(), Some(OnUnauthenticated::Redirect));
    assert_eq!((put.auth(), put.min_role(), put.require_verified_email()), (Requirement::None, None, false));
    assert_eq!(put.tenant(), Requirement::Required);
}

#[test]
fn invalid_rules_are_refused_at_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "[[route.rule]]\nmethods = [\"G T\"]\nmin_role = \"admin\"", "routes.toml:10:12: methods: \"G T\" is not"),
        ("", "[[route.rule]]\nmethods = []\nmin_role = \"admin\"", "routes.toml:10:11: methods is empty"),
        (
            "",
            "[[route.rule]]\nmethods = [\"GET\", \"get\"]\nmin_role = \"admin\"",
            "routes.toml:10:19: methods lists GET",
        ),
        (
            "methods = [\"GET\", \"POST\"]",
            "[[route.rule]]\nmethods = [\"POST\", \"DELETE\"]\nmin_role = \"admin\"",
            "routes.toml:10:20: methods: DELETE is not among the route's methods",
        ),
        (
            "",
            "[[route.rule]]\npath_prefix = \"/other\"\nmin_role = \"admin\"",
            "routes.toml:10:15: path_prefix \"/other\" is not within the route's path_prefix \"/r\"",
        ),
        (
            "",
            "[[route.rule]]\npath_prefix = \"/rx\"\nmin_role = \"admin\"",
            "routes.toml:10:15: path_prefix \"/rx\" is not within",
        ),
        (
            "",
            "[[route.rule]]\npath_prefix = \"/r/../x\"\nmin_role = \"admin\"",
            "routes.toml:10:15: path_prefix \"/r/../x\" is not normalized",
        ),
        (
            "",
            "[[route.rule]]\npath_prefix = \"r/x\"\nmin_role = \"admin\"",
            "routes.toml:10:15: path_prefix \"r/x\" must start",
        ),
        ("", "[[route.rule]]\nmethods = [\"DELETE\"]", "routes.toml:9:1: this rule sets nothing"),
        ("", "[[route.rule]]\n", "routes.toml:9:1: this rule sets nothing"),
        ("", "[[route.rule]]\nauth = \"none\"\nmin_role = \"admin\"", "routes.toml:11:12: min_role needs a user"),
        ("", "[[route.rule]]\nmin_role = \"boss\"", "routes.toml:10:12: unknown variant `boss`"),
        ("", "[[route.rule]]\nauth = \"maybe\"", "routes.toml:10:8: unknown variant `maybe`"),
        ("", "[[route.rule]]\ntenant = \"none\"\nmin_role = \"admin\"", "routes.toml:10:1: unknown field `tenant`"),
    ];
    for (route, rules, expected) in cases {
        let got = refusal(&with_rules(route, rules));
        assert!(got.starts_with(expected), "{rules:?}\n  got: {got}\n want: {expected}");
    }
    // A route without a tenant has no roles: neither may its rules.
    let no_tenant = "[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\"]\n[[route.rule]]\nmin_role = \"admin\"\n";
    assert!(refusal(no_tenant).starts_with("routes.toml:5:12: min_role needs a tenant"), "{}", refusal(no_tenant));
    // Nor a rule that lets anonymous users in and sets a role they cannot have.
    let anonymous_route = with_rules("auth = \"none\"", "").replace("min_role = \"viewer\"\n", "");
    let ok =
        format!("{anonymous_route}[[route.rule]]\nmethods = [\"DELETE\"]\nauth = \"required\"\nmin_role = \"admin\"\n");
    assert_eq!(parse(&ok).unwrap().get("r").unwrap().rules()[0].min_role(), Some(Role::Admin));
    let bad = format!("{anonymous_route}[[route.rule]]\nmethods = [\"DELETE\"]\nmin_role = \"admin\"\n");
    assert!(refusal(&bad).starts_with("routes.toml:10:12: min_role needs a user"), "{}", refusal(&bad));
}

#[test]
fn a_rule_an_earlier_one_covers_is_unreachable() {
    let unreachable = |route: &str, rules: &str| refusal(&with_rules(route, rules));
    let message = |line: usize, earlier: usize| {
        format!(
            "routes.toml:{line}:1: this rule is unreachable: the rule at line {earlier} matches every request it would"
        )
    };
    // Same rule twice.
    let twice = "[[route.rule]]\nmethods = [\"DELETE\"]\nmin_role = \"admin\"\n\
                 [[route.rule]]\nmethods = [\"DELETE\"]\nmin_role = \"owner\"\n";
    assert!(unreachable("", twice).starts_with(&message(12, 9)), "{}", unreachable("", twice));
    // Every method before some; the route's prefix before a narrower one.
    let all_then_some = "[[route.rule]]\nmin_role = \"admin\"\n[[route.rule]]\nmethods = [\"GET\"]\n\
                         path_prefix = \"/r/x\"\nauth = \"optional\"\n";
    assert!(unreachable("", all_then_some).starts_with(&message(11, 9)));
    // A wider prefix with more methods before a narrower one with fewer.
    let wider = "[[route.rule]]\nmethods = [\"PUT\", \"POST\"]\npath_prefix = \"/r/a\"\nmin_role = \"admin\"\n\
                 [[route.rule]]\nmethods = [\"POST\"]\npath_prefix = \"/r/a/b\"\nmin_role = \"member\"\n";
    assert!(unreachable("", wider).starts_with(&message(13, 9)));
    // Prefixes compare as the route compares paths: without case by default.
    let case = "[[route.rule]]\npath_prefix = \"/r/A\"\nmin_role = \"admin\"\n\
                [[route.rule]]\npath_prefix = \"/r/a/b\"\nmin_role = \"member\"\n";
    assert!(unreachable("", case).starts_with(&message(12, 9)));
    assert!(parse(&with_rules("case_sensitive = true", case)).is_ok(), "a case-sensitive route tells them apart");
    // A rule for every method shadows one for the methods the route allows.
    let allowed = "[[route.rule]]\nmethods = [\"GET\", \"POST\"]\nmin_role = \"admin\"\n\
                   [[route.rule]]\npath_prefix = \"/r/x\"\nmin_role = \"member\"\n";
    assert!(unreachable("methods = [\"GET\", \"POST\"]", allowed).starts_with(&message(12, 9)));
    assert!(parse(&with_rules("", allowed)).is_ok(), "any method is more than GET and POST");
    // GET includes HEAD.
    let head = "[[route.rule]]\nmethods = [\"GET\"]\nmin_role = \"admin\"\n\
                [[route.rule]]\nmethods = [\"HEAD\"]\nmin_role = \"member\"\n";
    assert!(unreachable("", head).starts_with(&message(12, 9)));
    // The second of three is the one refused, naming the first.
    let third = "[[route.rule]]\nmethods = [\"PUT\"]\nmin_role = \"admin\"\n\
                 [[route.rule]]\nmethods = [\"POST\"]\nmin_role = \"admin\"\n\
                 [[route.rule]]\nmethods = [\"POST\"]\npath_prefix = \"/r/x\"\nmin_role = \"member\"\n";
    assert!(unreachable("", third).starts_with(&message(15, 12)), "{}", unreachable("", third));

    // Not shadowed: a narrower prefix first, disjoint methods, some methods
    // before all, HEAD before GET, a sibling prefix.
    for fine in [
        "[[route.rule]]\npath_prefix = \"/r/a/b\"\nmin_role = \"member\"\n[[route.rule]]\npath_prefix = \"/r/a\"\nmin_role = \"admin\"\n",
        "[[route.rule]]\nmethods = [\"PUT\"]\nmin_role = \"member\"\n[[route.rule]]\nmethods = [\"POST\"]\nmin_role = \"admin\"\n",
        "[[route.rule]]\nmethods = [\"PUT\"]\nmin_role = \"member\"\n[[route.rule]]\nmin_role = \"admin\"\n",
        "[[route.rule]]\nmethods = [\"HEAD\"]\nmin_role = \"member\"\n[[route.rule]]\nmethods = [\"GET\"]\nmin_role = \"admin\"\n",
        "[[route.rule]]\npath_prefix = \"/r/a\"\nmin_role = \"member\"\n[[route.rule]]\npath_prefix = \"/r/ab\"\nmin_role = \"admin\"\n",
        "[[route.rule]]\nmethods = [\"PUT\", \"POST\"]\npath_prefix = \"/r/a/b\"\nmin_role = \"member\"\n\
         [[route.rule]]\nmethods = [\"POST\"]\npath_prefix = \"/r/a\"\nmin_role = \"admin\"\n",
    ] {
        assert!(parse(&with_rules("", fine)).is_ok(), "{fine}: {:?}", parse(&with_rules("", fine)).err());
    }
}

#[test]
fn the_first_rule_that_applies_decides() {
    let table = parse(REPORTS).unwrap();
    let route = table.get("reports").unwrap();
    for (method, path, rule) in [
        ("GET", "/reports", None),
        ("GET", "/reports/x", None),
        ("DELETE", "/reports/1", Some(11)),
        ("DELETE", "/reports", Some(11)),
        // DELETE under /reports/public: the DELETE rule comes first.
        ("DELETE", "/reports/public/a", Some(11)),
        ("POST", "/reports/shared", Some(15)),
        ("PATCH", "/reports/shared/a/b", Some(15)),
        ("POST", "/reports/x", None),
        ("GET", "/reports/shared/a", None),
        // Segment-aware: /reports/sharedx is not under /reports/shared.
        ("POST", "/reports/sharedx", None),
        ("GET", "/reports/public", Some(20)),
        ("POST", "/reports/public/a", Some(20)),
        ("GET", "/reports/publicity", None),
        // Prefixes ignore case as the route does.
        ("POST", "/REPORTS/Shared/a", Some(15)),
        ("GET", "/Reports/PUBLIC", Some(20)),
        // Methods are compared without regard to case: `delete` is DELETE.
        ("delete", "/reports/1", Some(11)),
        ("Delete", "/reports/1", Some(11)),
        ("post", "/reports/shared/a", Some(15)),
    ] {
        assert_eq!(chosen(route, method, path), rule, "{method} {path}");
    }
}

#[test]
fn paths_are_matched_on_their_view_with_the_route_case_sensitivity() {
    let rules = "[[route.rule]]\npath_prefix = \"/r/caf%C3%A9\"\nmin_role = \"admin\"\n\
                 [[route.rule]]\nmethods = [\"GET\"]\nmin_role = \"member\"\n";
    let insensitive = parse(&with_rules("", rules)).unwrap();
    let route = insensitive.get("r").unwrap();
    // Decoded once: %61 is a, and é may be sent raw-encoded in any case.
    assert_eq!(chosen(route, "POST", "/r/caf%c3%a9/x"), Some(9));
    assert_eq!(chosen(route, "POST", "/%72/CAF%C3%89"), Some(9), "É folds to é");
    assert_eq!(chosen(route, "POST", "/r/cafe"), None);
    // GET covers HEAD; the rule for every method came first for the café path.
    assert_eq!(chosen(route, "HEAD", "/r/x"), Some(12));
    assert_eq!(chosen(route, "get", "/r/x"), Some(12));
    assert_eq!(chosen(route, "HEAD", "/r/caf%C3%A9"), Some(9));

    let sensitive = parse(&with_rules("case_sensitive = true", rules)).unwrap();
    let route = sensitive.get("r").unwrap();
    assert_eq!(chosen(route, "POST", "/r/caf%C3%A9"), Some(9));
    assert_eq!(chosen(route, "POST", "/r/CAF%C3%89"), None, "a case-sensitive route's rules are too");
}

#[test]
fn rules_apply_after_a_tenant_path_prefix() {
    let text =
        "[[route]]\nname = \"t\"\npath_prefix = \"/app\"\nupstreams = [\"127.0.0.1:1\"]\ntenant = \"required\"\n\
                tenant_from = [\"path\"]\n[[route.rule]]\npath_prefix = \"/app/admin\"\nmin_role = \"admin\"\n";
    let table = parse(text).unwrap();
    let path = RequestPath::parse("/t/acme/app/admin/x").unwrap();
    let (_, rest) = super::super::tenant::path_slug(PathLookup::of(&path)).unwrap();
    let found = table.match_request("h", rest).unwrap();
    assert_eq!(found.route.for_request(&Method::GET, rest).min_role(), Some(Role::Admin));
}

#[test]
fn routes_without_rules_are_their_own_policy() {
    let table = parse("[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\"]\n").unwrap();
    let route = table.get("r").unwrap();
    assert!(route.rules().is_empty());
    assert_eq!(chosen(route, "DELETE", "/x"), None);
}

#[test]
fn the_readme_example_loads_as_described() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let example = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(toml, _)| toml))
        .find(|toml| toml.contains("[[route.rule]]"))
        .expect("README shows a route with rules");
    let table = parse(example).unwrap();
    let route = table.get("reports").unwrap();
    assert_eq!(route.rules().len(), 3);
    assert_eq!(chosen(route, "DELETE", "/reports/public/x"), route.rules()[0].rule().map(|r| r.line()));
    assert_eq!(
        route.for_request(&Method::GET, PathLookup::of(&RequestPath::parse("/reports/public").unwrap())).auth(),
        Requirement::Optional
    );
}
