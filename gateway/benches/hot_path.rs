#![allow(clippy::expect_used)] // a benchmark: a failed setup should stop it loudly
//! In-memory costs on the proxied request path (no I/O is involved once the cache
//! is warm): JWT verification, path normalization plus route matching on a
//! 50-route table, and reading the token from headers.
//!
//! `cargo bench -p tenantgate-gateway --bench hot_path`

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use edge::credentials::access_token;
use edge::path::RequestPath;
use gateway::routes::{PathLookup, RouteTable};
use http::{HeaderMap, HeaderValue};
use shared::config::Settings;
use shared::domain::UserId;
use shared::jwt::AccessTokens;

fn table() -> RouteTable {
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!(
            "[[route]]\nname = \"r{i}\"\nhosts = [\"app{i}.example.com\", \"*.t{i}.example.com\"]\npath_prefix = \"/api/v{i}\"\nupstreams = [\"127.0.0.1:3000\"]\nauth = \"required\"\ntenant = \"required\"\ntenant_from = [\"header\"]\nmin_role = \"member\"\n\n"
        ));
    }
    RouteTable::parse(Path::new("bench.toml"), &text).expect("bench routes parse")
}

fn hot_path(c: &mut Criterion) {
    let mut jwt = Settings::default().jwt;
    jwt.secret = "bench-secret-bench-secret-bench-secret-0123".to_owned().into();
    let tokens = AccessTokens::new(&jwt);
    let token = tokens
        .issue(UserId::new(), &shared::domain::Email::parse("bench@example.test").expect("email"), 0)
        .expect("issue")
        .token;
    // A client's first request with a token: full HS256 verification (and the
    // insert into the verified-token memory); issuing is outside the timing.
    c.bench_function("jwt_verify_hs256_first_use", |b| {
        b.iter_batched(
            || {
                tokens
                    .issue(UserId::new(), &shared::domain::Email::parse("bench@example.test").expect("email"), 0)
                    .expect("issue")
                    .token
            },
            |fresh| tokens.verify(black_box(&fresh)).expect("valid"),
            BatchSize::SmallInput,
        )
    });
    // Every later request with it: answered from that memory.
    c.bench_function("jwt_verify_hs256_remembered", |b| b.iter(|| tokens.verify(black_box(&token)).expect("valid")));

    let routes = table();
    c.bench_function("normalize_and_match_50_routes", |b| {
        b.iter(|| {
            let path = RequestPath::parse(black_box("/api/v42/projects/./123/../456")).expect("normal");
            routes
                .match_request(black_box("acme.t42.example.com:443"), PathLookup::of(&path))
                .map(|m| m.route.name().len())
        })
    });
    c.bench_function("canonical_path_and_match_50_routes", |b| {
        b.iter(|| {
            let path = RequestPath::parse(black_box("/api/v42/projects/456")).expect("normal");
            routes
                .match_request(black_box("acme.t42.example.com:443"), PathLookup::of(&path))
                .map(|m| m.route.name().len())
        })
    });

    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    c.bench_function("access_token_from_headers", |b| b.iter(|| access_token(black_box(&headers), "tg_access")));

    let rules = edge::headers::HeaderRules::default();
    let names: Vec<http::HeaderName> =
        ["host", "user-agent", "accept", "authorization", "x-tenant-id", "accept-encoding"]
            .into_iter()
            .map(http::HeaderName::from_static)
            .collect();
    c.bench_function("classify_six_ordinary_headers", |b| {
        b.iter(|| names.iter().filter(|n| rules.classify(black_box(n)) != edge::headers::Kind::Ordinary).count())
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
