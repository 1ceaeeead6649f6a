//! A tiny upstream for trying the gateway: it answers every method and path with
//! what it received (method, path, query and all headers) as JSON, or as a small
//! HTML page highlighting the `X-User-*` and `X-Tenant-*` headers when the client
//! prefers `text/html` (a browser).
//!
//! ```text
//! cargo run -p tenantgate-gateway --bin demo_upstream -- --listen 127.0.0.1:3000
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use axum::extract::OriginalUri;
use axum::http::{header, HeaderMap, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use clap::Parser;
use serde::Serialize;

/// Echoes requests back, for trying the gateway.
#[derive(Debug, Parser)]
#[command(name = "demo_upstream", about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Answer every request with the same small body instead of the echo (for load
    /// benchmarks, so the response size does not depend on the headers sent).
    #[arg(long)]
    fixed: bool,
}

/// What the upstream received.
#[derive(Debug, Serialize)]
struct Echo {
    method: String,
    path: String,
    query: Option<String>,
    /// Header name -> value; repeated headers are joined with ", ".
    headers: BTreeMap<String, String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    println!("demo upstream listening on http://{}", listener.local_addr()?);
    let app = if args.fixed {
        Router::new().fallback(|| async { Json(serde_json::json!({"ok": true})) })
    } else {
        Router::new().fallback(echo)
    };
    axum::serve(listener, app).await.context("serving")
}

async fn echo(method: Method, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let mut received = BTreeMap::<String, String>::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        received.entry(name.as_str().to_owned()).and_modify(|v| *v = format!("{v}, {value}")).or_insert(value.into());
    }
    let echo = Echo {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: received,
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if prefers_html(accept) {
        Html(page(&echo)).into_response()
    } else {
        Json(echo).into_response()
    }
}

/// True when `text/html` has a higher q-value than `application/json` (so a
/// browser gets HTML, and curl's `*/*` gets JSON).
fn prefers_html(accept: &str) -> bool {
    let quality = |wanted: &str| {
        let (kind, _) = wanted.split_once('/').unwrap_or((wanted, ""));
        let mut best: Option<(u8, f32)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = if media == wanted {
                2
            } else if media == format!("{kind}/*") {
                1
            } else if media == "*/*" {
                0
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    quality("text/html") > quality("application/json")
}

fn page(echo: &Echo) -> String {
    let rows = |identity: bool| {
        echo.headers
            .iter()
            .filter(|(name, _)| (name.starts_with("x-user-") || name.starts_with("x-tenant-")) == identity)
            .map(|(name, value)| format!("<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value)))
            .collect::<String>()
    };
    let identity = rows(true);
    let identity = if identity.is_empty() {
        "<tr><td>No X-User-* or X-Tenant-* headers: this request did not come through the gateway.</td></tr>".to_owned()
    } else {
        identity
    };
    let query = echo.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tenantgate demo upstream</title>\
         <style>body{{font-family:sans-serif;margin:2rem}}th{{text-align:left;padding-right:1rem}}\
         td,th{{font-family:monospace;vertical-align:top}}</style></head><body>\
         <h1>tenantgate demo upstream</h1><p><code>{} {}{}</code></p>\
         <h2>Identity headers from the gateway</h2><table>{identity}</table>\
         <h2>Other headers</h2><table>{}</table></body></html>",
        escape(&echo.method),
        escape(&echo.path),
        escape(&query),
        rows(false),
    )
}

/// Escapes text for HTML: header values are client-controlled.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_clients_get_json() {
        assert!(prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(!prefers_html("*/*"));
        assert!(!prefers_html(""));
        assert!(!prefers_html("application/json"));
        assert!(!prefers_html("text/html;q=0.5, application/json"));
        assert!(prefers_html("text/*"));
    }

    #[test]
    fn pages_escape_what_clients_send() {
        let echo = Echo {
            method: "GET".into(),
            path: "/".into(),
            query: None,
            headers: BTreeMap::from([("x-user-id".into(), "<script>".into()), ("accept".into(), "a&b".into())]),
        };
        let html = page(&echo);
        assert!(html.contains("&lt;script&gt;") && html.contains("a&amp;b") && !html.contains("<script>"));
    }
}
