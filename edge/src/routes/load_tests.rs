//! Loader tests: valid files, every refusal with its line, folders.

use std::path::Path;

use shared::domain::Role;

use super::super::identity::{IdentityHeader, IdentityHeaders};
use super::super::policy::{EncodedSlashes, OnUnauthenticated, RateLimitKey, Requirement, TenantSource};
use super::super::table::RouteTable;
use super::super::upstream::Scheme;
use super::LoadError;

const FULL: &str = r#"
# a comment
[[route]]
name = "app"
hosts = ["app.example.com", "*.App.example.com"]
path_prefix = "/api/"
upstreams = ["127.0.0.1:3000", "127.0.0.1:3001"]
auth = "optional"
tenant = "required"
tenant_from = ["domain", "subdomain", "path", "header"]
min_role = "member"
strip_prefix = true
methods = ["get", "POST"]
connect_timeout = "2s"
read_timeout = "1m"
require_verified_email = true
rate_limit = { requests = 100, window = "1m", key = "tenant" }
headers = { "X-Forwarded-App" = "app", "authorization" = "Bearer upstream-key" }
signed_assertion = true
audience = "billing"
case_sensitive = true
encoded_slashes = "keep"
forward_credentials = true
identity_headers = ["X-User-Id", "x-tenant-role"]

[[route]]
name = "public"
upstreams = ["localhost:8000"]
auth = "required"
on_unauthenticated = "redirect"
"#;

fn parse(text: &str) -> Result<RouteTable, LoadError> {
    RouteTable::parse(Path::new("routes.toml"), text)
}

/// The `file:line:column: message` of a refused file.
fn refusal(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A minimal route with `extra` lines appended (starting at line 4).
fn with(extra: &str) -> String {
    format!("[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\"]\n{extra}\n")
}

#[test]
fn reads_every_key() {
    let table = parse(FULL).unwrap();
    let app = table.get("app").unwrap();
    assert_eq!(app.origin(), "routes.toml:4");
    assert_eq!(
        app.hosts().iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["app.example.com", "*.app.example.com"]
    );
    assert_eq!(app.path_prefix().as_str(), "/api");
    assert_eq!(app.upstreams().len(), 2);
    assert_eq!(app.auth(), Requirement::Optional);
    assert_eq!(app.tenant(), Requirement::Required);
    assert_eq!(
        app.tenant_from(),
        [TenantSource::Domain, TenantSource::Subdomain, TenantSource::Path, TenantSource::Header]
    );
    assert_eq!(app.min_role(), Some(Role::Member));
    assert!(app.strip_prefix());
    assert!(app.allows_method(&http::Method::GET) && app.allows_method(&http::Method::POST));
    assert!(!app.allows_method(&http::Method::DELETE) && !app.allows_method(&http::Method::HEAD));
    assert_eq!(app.connect_timeout(), Some(std::time::Duration::from_secs(2)));
    assert_eq!(app.read_timeout(), Some(std::time::Duration::from_secs(60)));
    assert!(app.require_verified_email());
    let limit = app.rate_limit().unwrap();
    assert_eq!((limit.requests().get(), limit.window().as_secs(), limit.key()), (100, 60, RateLimitKey::Tenant));
    let headers: Vec<_> = app.headers().iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
    assert_eq!(headers, [("x-forwarded-app", "app"), ("authorization", "Bearer upstream-key")]);
    assert!(app.signed_assertion());
    assert_eq!(app.on_unauthenticated(), None);
    assert!(app.case_sensitive() && app.forward_credentials());
    assert_eq!(app.assertion_audience(), "billing");
    assert_eq!(app.encoded_slashes(), EncodedSlashes::Keep);
    assert_eq!(app.identity_headers(), IdentityHeaders::of([IdentityHeader::UserId, IdentityHeader::TenantRole]));

    let public = table.get("public").unwrap();
    assert_eq!((public.auth(), public.tenant()), (Requirement::Required, Requirement::None));
    assert!(public.hosts().is_empty() && public.tenant_from().is_empty());
    assert_eq!(public.path_prefix().as_str(), "/");
    assert_eq!(public.methods(), None);
    assert!(public.allows_method(&http::Method::DELETE));
    assert_eq!(public.on_unauthenticated(), Some(OnUnauthenticated::Redirect));
    assert!(!public.strip_prefix() && !public.signed_assertion() && !public.require_verified_email());
    assert!(!public.case_sensitive() && !public.forward_credentials());
    assert_eq!(public.assertion_audience(), "public");
    assert_eq!(public.encoded_slashes(), EncodedSlashes::Reject);
    assert_eq!(public.identity_headers(), IdentityHeaders::ALL, "every identity header by default");
    assert_ne!(app.id(), public.id());
    let reloaded = parse(FULL).unwrap();
    assert_ne!(reloaded.get("app").unwrap().id(), app.id(), "a reloaded route is a new route");
}

#[test]
fn identity_headers_name_known_headers_once() {
    let none = parse(&with("identity_headers = []")).unwrap();
    assert!(none.get("r").unwrap().identity_headers().is_empty());
    assert!(refusal(&with("identity_headers = [\"x-user-name\"]"))
        .starts_with("routes.toml:4:21: identity_headers: \"x-user-name\" is not one of x-user-id, "));
    assert_eq!(
        refusal(&with("identity_headers = [\"x-user-id\", \"X-User-Id\"]")),
        "routes.toml:4:34: identity_headers: x-user-id is listed twice"
    );
}

#[test]
fn defaults_are_fail_closed() {
    let table = parse(&with("")).unwrap();
    let r = table.get("r").unwrap();
    assert_eq!(r.auth(), Requirement::Required, "auth defaults to required");
    assert_eq!(r.tenant(), Requirement::None);
    assert!(r.rate_limit().is_none() && r.connect_timeout().is_none());
}

#[test]
fn syntax_and_schema_errors_point_at_the_line() {
    let cases: &[(&str, &str)] = &[
        ("nme = \"x\"", "routes.toml:4:1: unknown field `nme`"),
        ("auth = \"sometimes\"", "routes.toml:4:8: unknown variant `sometimes`"),
        ("min_role = \"boss\"", "routes.toml:4:12: unknown variant `boss`"),
        ("strip_prefix = \"yes\"", "routes.toml:4:16: invalid type"),
        ("rate_limit = { requests = 1, window = \"1m\", per = \"ip\" }", "routes.toml:4:"),
        ("upstreams = [\"127.0.0.1:2\"]", "routes.toml:4:1: duplicate key"),
        ("[[routes]]", "routes.toml:4:3: unknown field `routes`"),
        ("x = [", "routes.toml:5:1: invalid array"),
    ];
    for (extra, expected) in cases {
        let got = refusal(&with(extra));
        assert!(got.starts_with(expected), "{extra:?}: {got}");
    }
    assert!(refusal("[[route]]\nname = \"r\"\n").contains("missing field `upstreams`"));
}

#[test]
fn semantic_errors_point_at_the_value() {
    let cases: &[(&str, &str)] = &[
        ("hosts = [\"ok.com\", \"bad host\"]", "routes.toml:4:20: host \"bad host\" has an invalid label"),
        ("hosts = [\"a.com\", \"A.com\"]", "routes.toml:4:19: host a.com is listed twice"),
        ("hosts = []", "routes.toml:4:9: hosts is empty"),
        ("path_prefix = \"api\"", "routes.toml:4:15: path_prefix \"api\" must start with '/'"),
        ("path_prefix = \"/a/../b\"", "routes.toml:4:15: path_prefix \"/a/../b\" is not normalized"),
        ("tenant = \"required\"", "routes.toml:4:10: this route resolves a tenant but has no tenant_from"),
        ("tenant_from = [\"path\"]", "routes.toml:4:15: tenant_from needs tenant"),
        ("tenant = \"optional\"\ntenant_from = []", "routes.toml:5:15: tenant_from is empty"),
        ("tenant = \"optional\"\ntenant_from = [\"path\", \"path\"]", "routes.toml:5:24: tenant_from lists"),
        ("min_role = \"admin\"", "routes.toml:4:12: min_role needs a tenant"),
        (
            "auth = \"none\"\ntenant = \"required\"\ntenant_from = [\"path\"]\nmin_role = \"admin\"",
            "routes.toml:7:12: min_role needs a user",
        ),
        ("methods = [\"G T\"]", "routes.toml:4:12: methods: \"G T\" is not an HTTP method"),
        ("methods = [\"GET\", \"get\"]", "routes.toml:4:19: methods lists GET twice"),
        ("methods = []", "routes.toml:4:11: methods is empty"),
        ("connect_timeout = \"soon\"", "routes.toml:4:19: connect_timeout: \"soon\" is not a duration"),
        ("read_timeout = \"0s\"", "routes.toml:4:16: read_timeout must be longer than zero"),
        ("auth = \"none\"\nrequire_verified_email = true", "routes.toml:5:26: require_verified_email needs a user"),
        ("rate_limit = { requests = 0, window = \"1m\" }", "routes.toml:4:27: rate_limit.requests must be"),
        ("rate_limit = { requests = 1, window = \"x\" }", "routes.toml:4:39: rate_limit.window:"),
        ("rate_limit = { requests = 1, window = \"1s\", key = \"tenant\" }", "routes.toml:4:14: rate_limit.key"),
        ("auth = \"none\"\nrate_limit = { requests = 1, window = \"1s\", key = \"user\" }", "routes.toml:5:14:"),
        ("headers = { \"x-user-id\" = \"42\" }", "routes.toml:4:27: headers: x-user-id may not be set"),
        ("headers = { \"X-Tenant-Slug\" = \"a\" }", "routes.toml:4:31: headers: x-tenant-slug may not"),
        ("headers = { \"host\" = \"a\" }", "routes.toml:4:22: headers: host may not"),
        ("headers = { \"X_User_Id\" = \"1\" }", "routes.toml:4:27: headers: x_user_id may not"),
        ("headers = { \"x-auth-request-user\" = \"1\" }", "routes.toml:4:37: headers: x-auth-request-user may not"),
        ("headers = { \"x-forwarded-for\" = \"1.2.3.4\" }", "routes.toml:4:33: headers: x-forwarded-for may not"),
        ("headers = { \"transfer_encoding\" = \"chunked\" }", "routes.toml:4:35: headers: transfer_encoding may not"),
        ("path_prefix = \"/a%2Fb\"", "routes.toml:4:15: path_prefix \"/a%2Fb\" may not contain an encoded slash"),
        ("path_prefix = \"/a;b\"", "routes.toml:4:15: path_prefix \"/a;b\": the path is ambiguous"),
        ("encoded_slashes = \"decode\"", "routes.toml:4:19: unknown variant `decode`"),
        ("audience = \"app\"", "routes.toml:4:12: audience needs signed_assertion"),
        ("signed_assertion = true\naudience = \"\"", "routes.toml:5:12: audience must be"),
        ("headers = { \"bad name\" = \"a\" }", "routes.toml:4:26: headers: \"bad name\" is not a valid header"),
        ("headers = { \"x-a\" = \"line\\nbreak\" }", "routes.toml:4:21: headers: the value of x-a"),
        ("auth = \"optional\"\non_unauthenticated = \"401\"", "routes.toml:5:22: on_unauthenticated only"),
    ];
    for (extra, expected) in cases {
        let got = refusal(&with(extra));
        assert!(got.starts_with(expected), "{extra:?}\n  got: {got}\n want: {expected}");
    }
}

#[test]
fn names_and_upstreams_are_checked() {
    let bad_upstream = "[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\", \"ftp://x:1\"]\n";
    let got = refusal(bad_upstream);
    assert!(got.starts_with("routes.toml:3:29: upstream \"ftp://x:1\" has an unknown scheme"), "{got}");
    let http_url = "[[route]]\nname = \"r\"\nupstreams = [\"127.0.0.1:1\", \"http://x:1\"]\n";
    assert_eq!(parse(http_url).unwrap().get("r").unwrap().upstreams()[1].as_str(), "x:1");
    let none = "[[route]]\nname = \"r\"\nupstreams = []\n";
    assert!(refusal(none).starts_with("routes.toml:3:13: upstreams needs at least one"));
    for (name, why) in
        [("", "must be 1 to 64"), ("a b", "must be 1 to 64"), ("none", "reserved"), ("auth-api", "reserved")]
    {
        let text = format!("[[route]]\nname = {name:?}\nupstreams = [\"127.0.0.1:1\"]\n");
        let got = refusal(&text);
        assert!(got.starts_with("routes.toml:2:8: ") && got.contains(why), "{name:?}: {got}");
    }
}

#[test]
fn duplicates_point_at_the_second_definition() {
    let text = format!("{}\n{}", with("path_prefix = \"/a\""), with("path_prefix = \"/b\""));
    assert_eq!(refusal(&text), "routes.toml:7:8: route name \"r\" is already used at routes.toml:2");

    let same_place = format!(
        "{}\n[[route]]\nname = \"s\"\nupstreams = [\"127.0.0.1:1\"]\nhosts = [\"b.com\", \"a.com\"]\npath_prefix = \"/x/\"\n",
        with("hosts = [\"a.com\"]\npath_prefix = \"/x\"")
    );
    let got = refusal(&same_place);
    assert!(got.starts_with("routes.toml:11:15: route \"s\" has the path_prefix \"/x\" for host a.com"), "{got}");
    assert!(got.contains("route \"r\" (routes.toml:2)"), "{got}");

    // Prefixes that differ only in case (or in escapes) collide, unless both
    // routes are case-sensitive and really differ.
    let cased =
        format!("{}\n{}", with("path_prefix = \"/Admin\""), with("path_prefix = \"/admin\"").replace("\"r\"", "\"s\""));
    assert!(refusal(&cased).contains("already has as \"/Admin\""), "{}", refusal(&cased));
    let escaped =
        format!("{}\n{}", with("path_prefix = \"/a%40b\""), with("path_prefix = \"/a@b\"").replace("\"r\"", "\"s\""));
    assert!(refusal(&escaped).contains("already has as \"/a%40b\""));
    let both_sensitive = format!(
        "{}\n{}",
        with("path_prefix = \"/Admin\"\ncase_sensitive = true"),
        with("path_prefix = \"/admin\"\ncase_sensitive = true").replace("\"r\"", "\"s\"")
    );
    assert_eq!(parse(&both_sensitive).unwrap().len(), 2);
    let one_sensitive = format!(
        "{}\n{}",
        with("path_prefix = \"/Admin\"\ncase_sensitive = true"),
        with("path_prefix = \"/admin\"").replace("\"r\"", "\"s\"")
    );
    assert!(parse(&one_sensitive).is_err());

    // The same prefix on different hosts, or host vs any host, is fine.
    let fine = format!("{}\n{}", with("hosts = [\"a.com\"]"), with("hosts = [\"b.com\"]").replace("\"r\"", "\"s\""));
    assert_eq!(parse(&fine).unwrap().len(), 2);
    let any_too = format!("{}\n{}", with("hosts = [\"a.com\"]"), with("").replace("\"r\"", "\"s\""));
    assert_eq!(parse(&any_too).unwrap().len(), 2);
}

#[test]
fn empty_files_are_refused() {
    assert_eq!(refusal("# nothing yet\n"), "routes.toml: no routes defined; add a [[route]] table");
}

#[test]
fn columns_count_characters() {
    let got = refusal(&with("headers = { \"x-é\" = \"a\" }"));
    assert!(got.starts_with("routes.toml:4:"), "{got}");
    let got = refusal("# é é é\n[[route]]\nname = \"é\"\nupstreams = [\"127.0.0.1:1\"]\n");
    assert!(got.starts_with("routes.toml:3:8: "), "{got}");
}

#[test]
fn folders_are_read_in_name_order_and_names_are_unique_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.toml"), with("path_prefix = \"/b\"").replace("\"r\"", "\"b\"")).unwrap();
    std::fs::write(dir.path().join("a.toml"), with("path_prefix = \"/a\"").replace("\"r\"", "\"a\"")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a route file").unwrap();
    std::fs::write(dir.path().join(".#a.toml"), "editor lock").unwrap();
    let table = RouteTable::load(dir.path()).unwrap();
    let names: Vec<_> = table.routes().iter().map(|r| r.name().to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(table.files().len(), 2);

    std::fs::write(dir.path().join("c.toml"), with("path_prefix = \"/c\"").replace("\"r\"", "\"a\"")).unwrap();
    let err = RouteTable::load(dir.path()).unwrap_err();
    let (file, line, column) = err.location().unwrap();
    assert_eq!((file.file_name().unwrap().to_str(), line, column), (Some("c.toml"), 2, 8));
    assert!(err.to_string().contains("already used at") && err.to_string().contains("a.toml:2"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(RouteTable::load(empty.path()), Err(LoadError::NoFiles { .. })));
    assert!(matches!(RouteTable::load(&empty.path().join("missing.toml")), Err(LoadError::Read { .. })));
}

#[test]
fn the_shipped_demo_routes_load() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/routes");
    let table = RouteTable::load(&folder).unwrap();
    let demo = table.get("demo").unwrap();
    assert_eq!(demo.upstreams()[0].as_str(), "127.0.0.1:3000");
    assert_eq!(
        (demo.auth(), demo.tenant(), demo.min_role()),
        (Requirement::Required, Requirement::Required, Some(Role::Viewer))
    );
    assert_eq!(demo.tenant_from()[0], TenantSource::Header);
    let path = crate::path::RequestPath::parse("/anything").unwrap();
    assert!(table.match_request("localhost:8080", crate::routes::PathLookup::of(&path)).is_some());
}

/// A folder with a fake CA, client certificate and key (edge only looks for the
/// PEM markers; the gateway parses them) and `routes.toml` holding `route`.
fn tls_folder(route: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    std::fs::write(dir.path().join("tls/ca.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls/client.pem"), cert).unwrap();
    std::fs::write(dir.path().join("tls/client.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let file = dir.path().join("routes.toml");
    std::fs::write(&file, route).unwrap();
    (dir, file)
}

/// A route to `upstreams` with `extra` lines from line 4 on.
fn https_route(upstreams: &str, extra: &str) -> String {
    format!("[[route]]\nname = \"r\"\nupstreams = [{upstreams}]\n{extra}\n")
}

#[test]
fn https_routes_read_their_tls_files_relative_to_the_route_file() {
    let keys = "tls_ca = \"tls/ca.pem\"\ntls_client_cert = \"tls/client.pem\"\ntls_client_key = \"tls/client.key\"\n\
                tls_server_name = \"App.Internal\"";
    let (dir, file) = tls_folder(&https_route("\"https://10.0.0.1\", \"https://b.internal:8443\"", keys));
    let table = RouteTable::load(&file).unwrap();
    let route = table.get("r").unwrap();
    assert_eq!(route.upstreams()[0].scheme(), Scheme::Https);
    assert_eq!(route.upstreams()[0].as_str(), "10.0.0.1:443");
    let tls = route.upstream_tls().unwrap();
    assert!(tls.verify());
    assert_eq!(tls.server_name(), Some("app.internal"));
    let ca = tls.ca().unwrap();
    assert_eq!(ca.path(), dir.path().join("tls/ca.pem"));
    assert!(ca.contents().starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(ca.origin(), format!("{}:4", file.display()));
    let client = tls.client_cert().unwrap();
    assert_eq!((client.cert.key(), client.key.key()), ("tls_client_cert", "tls_client_key"));

    // Defaults: verified against the system roots, each upstream's own name.
    let plain_https = parse(&https_route("\"https://a.internal\"", "")).unwrap();
    let tls = plain_https.get("r").unwrap().upstream_tls().unwrap();
    assert!(tls.verify() && tls.ca().is_none() && tls.client_cert().is_none() && tls.server_name().is_none());
    let dev = parse(&https_route("\"https://a.internal\"", "tls_verify = false")).unwrap();
    assert!(!dev.get("r").unwrap().upstream_tls().unwrap().verify());
    // Plain routes have none.
    assert!(parse(&with("")).unwrap().get("r").unwrap().upstream_tls().is_none());
}

#[test]
fn tls_keys_are_refused_where_they_cannot_apply() {
    let plain = "\"127.0.0.1:1\"";
    let https = "\"https://a.internal\"";
    let cases: &[(&str, &str, &str)] = &[
        (plain, "tls_ca = \"tls/ca.pem\"", "routes.toml:4:10: tls_ca only applies to https upstreams"),
        (plain, "tls_verify = false", "routes.toml:4:14: tls_verify only applies to https upstreams"),
        (plain, "tls_server_name = \"a\"", "routes.toml:4:19: tls_server_name only applies"),
        ("\"http://a:1\"", "tls_client_cert = \"c\"", "routes.toml:4:19: tls_client_cert only applies"),
        (
            "\"https://a.internal\", \"127.0.0.1:1\"",
            "",
            "routes.toml:3:36: upstreams mixes https and http upstreams (https://a.internal:443 and 127.0.0.1:1)",
        ),
        ("\"http://a:1\", \"https://b\"", "", "routes.toml:3:28: upstreams mixes http and https"),
        (https, "tls_client_cert = \"tls/client.pem\"", "routes.toml:4:19: tls_client_cert needs tls_client_key"),
        (https, "tls_client_key = \"tls/client.key\"", "routes.toml:4:18: tls_client_key needs tls_client_cert"),
        (https, "tls_verify = false\ntls_ca = \"tls/ca.pem\"", "routes.toml:5:10: tls_ca has no effect"),
        (https, "tls_server_name = \"*.a.test\"", "routes.toml:4:19: tls_server_name \"*.a.test\" must be"),
        (https, "tls_server_name = \"\"", "routes.toml:4:19: tls_server_name \"\" must be"),
        (https, "tls_ca = \"\"", "routes.toml:4:10: tls_ca is empty"),
        (https, "tls_verify = \"no\"", "routes.toml:4:14: invalid type"),
        (https, "tls_cafile = \"x\"", "routes.toml:4:1: unknown field `tls_cafile`"),
    ];
    for (upstreams, extra, expected) in cases {
        let got = refusal(&https_route(upstreams, extra));
        assert!(got.starts_with(expected), "{extra:?}\n  got: {got}\n want: {expected}");
    }
}

#[test]
fn tls_files_that_cannot_be_used_refuse_the_table_with_the_key_line() {
    for (extra, why) in [
        ("tls_ca = \"tls/missing.pem\"", "missing.pem: cannot read it"),
        ("tls_ca = \"tls/client.key\"", "client.key: the file holds no PEM certificate"),
        ("tls_ca = \"tls\"", "tls: is not a regular file"),
        (
            "tls_client_cert = \"tls/client.pem\"\ntls_client_key = \"tls/client.pem\"",
            "client.pem: the file holds no PEM private key",
        ),
    ] {
        let (dir, file) = tls_folder(&https_route("\"https://a.internal\"", extra));
        let got = RouteTable::load(&file).unwrap_err().to_string();
        let key = extra.lines().last().unwrap().split(' ').next().unwrap();
        let line = 3 + extra.lines().count();
        let at = format!("{}:{line}:", file.display());
        let path = dir.path().join("tls").display().to_string();
        assert!(got.starts_with(&at) && got.contains(&format!("{key} {path}")) && got.contains(why), "{extra}: {got}");
    }
}
