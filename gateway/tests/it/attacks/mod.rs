//! The attack suite: each test tries a class of tricks an attacker would use to
//! make the app behind the gateway act on something the gateway did not
//! authorize, against an upstream that reads requests the way common servers do.
//!
//! [`DecodingUpstream`] reports, for every request it receives, the path as nginx,
//! Tomcat, IIS, a double-decoding framework and a case-insensitive router would
//! route it, and the headers as a CGI/WSGI/PHP app sees them (`HTTP_X_USER_ID`,
//! where `X-User-Id`, `X_User_Id` and `x.user.id` all land). [`raw_request`] sends
//! exact bytes, since HTTP client libraries normalize the tricks away.

mod api_keys;
mod headers;
mod paths;
mod tenants;
mod tokens;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A real HTTP upstream that reports how each kind of server would read the
/// request it got.
pub struct DecodingUpstream {
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DecodingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DecodingUpstream {
    pub async fn start() -> DecodingUpstream {
        async fn report(req: axum::extract::Request) -> axum::response::Response {
            use axum::response::IntoResponse;
            let body = axum::Json(readings(req.uri().path(), req.headers()));
            if req.uri().path().ends_with("/set-cookie") {
                // An app (or an attacker who owns one) trying to plant a session.
                let planted = [("set-cookie", "tg_access=planted; Path=/"), ("set-cookie", "app=1; Path=/")];
                let mut response = body.into_response();
                for (k, v) in planted {
                    response.headers_mut().append(k, http::HeaderValue::from_static(v));
                }
                return response;
            }
            body.into_response()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = axum::Router::new().fallback(report);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DecodingUpstream { addr, task }
    }
}

/// The readings of `raw` (the path exactly as received) and of the headers.
fn readings(raw: &str, headers: &http::HeaderMap) -> Value {
    let decode =
        |s: &str| String::from_utf8_lossy(&percent_encoding::percent_decode_str(s).collect::<Vec<u8>>()).into_owned();
    let nginx = resolve(&decode(raw));
    let tomcat =
        resolve(&decode(&raw.split('/').map(|seg| seg.split(';').next().unwrap_or("")).collect::<Vec<_>>().join("/")));
    let iis = resolve(&decode(raw).replace('\\', "/"));
    let double = resolve(&decode(&decode(raw)).replace('\\', "/"));
    let lower = nginx.to_lowercase();
    // CGI variables: HTTP_ + name uppercased with every non-alphanumeric as `_`;
    // when several headers land on one variable, the last one wins (PHP-FPM).
    let mut cgi = BTreeMap::new();
    for (name, value) in headers {
        let var: String = name
            .as_str()
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b.to_ascii_uppercase()) } else { '_' })
            .collect();
        cgi.insert(format!("HTTP_{var}"), value.to_str().unwrap_or("").to_owned());
    }
    let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    json!({
        "raw": raw,
        "readings": [nginx, tomcat, iis, double, lower],
        "cgi": cgi,
        "names": names,
        "headers": headers.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("")))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Dot segments resolved and empty segments dropped, as servers do after decoding.
fn resolve(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The answer to a raw request: status, headers (lowercase names) and JSON body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RawAnswer {
    /// The gateway's error code, if the answer is one.
    pub fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    /// Every path reading of the upstream, when the request got there.
    pub fn readings(&self) -> Vec<String> {
        self.body["readings"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// Sends `GET {target}` with `headers` exactly as given (no normalization) on its
/// own connection, and reads the whole answer.
pub async fn raw_request(base: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> RawAnswer {
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut bytes)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    RawAnswer { status, headers, body: serde_json::from_str(&body).unwrap_or(Value::Null) }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
