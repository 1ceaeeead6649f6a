#![allow(clippy::expect_used)] // a benchmark: a failed setup should stop it loudly
//! In-memory costs on the proxied request path (no I/O is involved once the cache
//! is warm): JWT verification, path normalization plus route matching on a
//! 50-route table, reading the token from headers, the warm decision (a memo
//! hit among 20,000 remembered identities) and writing the identity header block.
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

/// The warm decision: a memo hit for one of 20,000 remembered (token, tenant)
/// pairs, key encoding and expiry check included; and the header block write.
fn warm_decision(c: &mut Criterion) {
    use gateway::memo::{self, DecisionMemo, Inputs};
    let memo: DecisionMemo<(u64, memo::HeaderBlock)> = DecisionMemo::new(100_000);
    let block: memo::HeaderBlock = gateway::routes::IdentityHeaders::ALL
        .iter()
        .map(|h| (h.name(), HeaderValue::from_static("0f8b4c3e-5a0d-4c1e-9a7b-2d3c4e5f6a7b")))
        .collect();
    // JWT-sized tokens, as clients send them.
    let tokens: Vec<String> = (0..20_000).map(|i| format!("eyJhbGciOiJIUzI1NiJ9.{i:0>280}.sig{i:0>40}")).collect();
    let tenant = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let presented: Vec<_> = tokens
        .iter()
        .map(|t| edge::credentials::Presented { token: t, in_header: true, in_cookie: false, in_api_key: false })
        .collect();
    let inputs = |p| Inputs {
        route: 1,
        token: Some(p),
        host: "app.example.com",
        header_tenant_id: Some(tenant),
        ..Inputs::default()
    };
    // Entries live 10 s (`memo::TTL`): the memo is filled again, outside the
    // timing, before any sample could outlive them.
    let fill = || {
        for p in &presented {
            if let Err(Some(key)) = memo.get(&inputs(p), |_| false) {
                memo.insert(key, (1, block.clone()), memo::unix_now() + 3600);
            }
        }
        std::time::Instant::now()
    };
    let mut filled = fill();
    let mut i = 0;
    c.bench_function("decision_memo_hit_20000_identities", |b| {
        b.iter_custom(|iters| {
            if filled.elapsed() > std::time::Duration::from_secs(4) {
                filled = fill();
            }
            let started = std::time::Instant::now();
            for _ in 0..iters {
                i = (i + 1) % presented.len();
                let hit = memo.get(black_box(&inputs(&presented[i])), |(generation, _)| *generation == 1);
                black_box(hit.ok().expect("hit"));
            }
            started.elapsed()
        })
    });
    c.bench_function("identity_header_block_write", |b| {
        b.iter_batched_ref(
            || {
                // A request's usual headers are already there.
                let mut headers = HeaderMap::with_capacity(16);
                for (name, value) in [("host", "app.example.com"), ("user-agent", "curl/8"), ("accept", "*/*")] {
                    headers.insert(http::HeaderName::from_static(name), HeaderValue::from_static(value));
                }
                headers
            },
            |headers| memo::write(headers, black_box(&block)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, hot_path, warm_decision);
criterion_main!(benches);
