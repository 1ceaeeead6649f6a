//! The Pingora service: every request enters here. Hooks are in lifecycle order and
//! each delegates to a named function.
//!
//! Requests under `/auth` are answered by the in-process API; everything else is
//! matched against the route table, authorized (`access`), stripped of spoofed
//! identity headers, given ours, and proxied to a healthy upstream.

pub mod access;
pub mod api_bridge;
pub mod browser;
mod forward;
pub(crate) mod https;
pub mod identity_headers;
pub mod key_guard;
pub mod rate_limit;
mod request_id;
pub mod respond;
pub(crate) mod routing;
pub(crate) mod upstream_tls;
pub mod upstreams;
mod verify;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::Router;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use shared::assertion::Assertions;

use edge::client_ip::{self, Client, TrustedProxies};
use edge::credentials;
use edge::headers::HeaderRules;

use self::access::{AccessControl, Decision, Identity, Refusal};
use self::browser::{Browser, Refreshed};
use self::https::SchemePolicy;
use self::rate_limit::{RateLimits, Verdict};
use self::request_id::RequestId;
use self::upstreams::Pools;
use crate::api;
use crate::error_code::ErrorCode;
use crate::metrics::{Metrics, RouteMeters};
use crate::portal;
use crate::revocation::{Grant, Holder, Revocations, Tap, Watch};
use crate::routes::{Requirement, Route, RouteTable, TenantSource};
use crate::web_session::rotation::Presenter;

/// Per-request state.
pub struct RequestCtx {
    /// The id logged, forwarded and returned in `X-Request-Id`.
    pub request_id: RequestId,
    /// When the request arrived.
    pub started: Instant,
    /// The route label for logs and metrics (`auth-api`, a route name, `none`).
    pub route_label: Arc<str>,
    /// The matched route.
    pub route: Option<Arc<Route>>,
    /// The matched route's request metrics.
    pub meters: Option<Arc<RouteMeters>>,
    /// Who, which tenant, which role.
    pub identity: Identity,
    /// The client, as decided from the TCP peer and trusted proxies.
    pub client: Option<Client>,
    /// The request came in on `GATEWAY_VERIFY_LISTEN` (forward-auth only).
    pub on_verify_listener: bool,
    /// The scheme the client used (`X-Forwarded-Proto` for the app): `https` over
    /// the TLS listener or when a trusted proxy says so, else `http`.
    pub forwarded_proto: &'static str,
    /// `Authorization` carried the gateway's token: removed before forwarding
    /// (unless the route forwards credentials).
    pub strip_authorization: bool,
    /// `X-Api-Key` carried one of the gateway's API keys: removed likewise.
    pub strip_api_key: bool,
    /// Client-sent identity and override headers: removed before forwarding.
    pub spoofed: Vec<HeaderName>,
    /// Path and query to send upstream.
    pub upstream_uri: http::Uri,
    /// The upstream the request was sent to.
    pub upstream: Option<std::net::SocketAddr>,
    /// When the upstream request was sent.
    pub upstream_started: Option<Instant>,
    /// The status the gateway answered itself, if it did.
    pub status: Option<StatusCode>,
    /// The existing tenant a refused request was for (metrics only).
    pub refused_tenant: Option<Arc<str>>,
    /// `Set-Cookie` values for the answer (a silently refreshed browser session).
    pub set_cookies: Vec<HeaderValue>,
    /// A long-lived request (WebSocket upgrade, event stream) of a user: what it
    /// was admitted with, re-checked while it is open.
    pub stream_grant: Option<Grant>,
    /// Ends that stream when its grant ends; dropped (stopped) with the request.
    pub stream_watch: Option<Watch>,
    /// Set when the stream's grant ended: its next body chunk ends the exchange.
    pub stream_ended: Option<Arc<AtomicBool>>,
}

/// The gateway service: shared state for every request.
pub struct Gateway {
    /// The auth API router.
    pub api: Router,
    /// The login portal's router (`/auth/ui/`).
    pub portal: Router,
    /// Browser sessions: silent refresh, login redirects, CSRF.
    pub browser: Browser,
    /// Largest accepted API body.
    pub body_limit: usize,
    /// The current route table (swapped whole on reload).
    pub routes: Arc<ArcSwap<RouteTable>>,
    /// Authentication, tenant resolution, roles.
    pub access: AccessControl,
    /// Upstream balancers.
    pub pools: Arc<Pools>,
    /// Per-route rate limits.
    pub limits: Arc<RateLimits>,
    /// Signs the upstream identity assertion (for routes that ask for it).
    pub assertions: Arc<Assertions>,
    /// Which client headers are identity or override headers.
    pub header_rules: HeaderRules,
    /// Proxies whose forwarding headers are believed (`GATEWAY_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// `GATEWAY_VERIFY_LISTEN`: the forward-auth-only listener, if any.
    pub verify_listen: Option<std::net::SocketAddr>,
    /// Re-checks the grants of open streams.
    pub revocations: Revocations,
    /// Metrics.
    pub metrics: Metrics,
    /// `LOG_ACCESS_SAMPLE`: the share of access-log lines below 400 written.
    pub access_sample: f64,
    /// The redirect to HTTPS and `Strict-Transport-Security`.
    pub scheme: SchemePolicy,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: RequestId::default(),
            started: Instant::now(),
            route_label: Arc::from("none"),
            route: None,
            meters: None,
            identity: Identity::default(),
            client: None,
            on_verify_listener: false,
            forwarded_proto: "http",
            strip_authorization: false,
            strip_api_key: false,
            spoofed: Vec::new(),
            upstream_uri: http::Uri::from_static("/"),
            upstream: None,
            upstream_started: None,
            status: None,
            refused_tenant: None,
            set_cookies: Vec::new(),
            stream_grant: None,
            stream_watch: None,
            stream_ended: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.request_id = request_id::assign(session);
        ctx.on_verify_listener = self.on_verify_listener(session);
        ctx.client = self.client_of(session, ctx.on_verify_listener);
        let trusted_peer = ctx.client.as_ref().is_some_and(|c| c.via_trusted_proxy);
        let over_tls = https::over_tls(session);
        ctx.forwarded_proto = forwarded_proto(session.req_header(), trusted_peer, over_tls);
        // Forward-auth asks about another request: this one's scheme does not matter.
        if verify::owns(session.req_header().uri.path()) {
            ctx.route_label = Arc::from("forward-auth");
            return Box::pin(self.verify(session, ctx)).await;
        }
        if ctx.on_verify_listener {
            // That listener answers forward-auth only.
            return Box::pin(self.refuse(session, ctx, &verify::NOT_ON_VERIFY_LISTENER)).await;
        }
        if over_tls || self.scheme.redirect {
            if let Some(answered) = Box::pin(self.check_scheme(session, ctx, over_tls)).await {
                return answered;
            }
        }
        let path = session.req_header().uri.path();
        if api::owns(path) {
            let (label, router) =
                if portal::owns(path) { ("auth-portal", &self.portal) } else { ("auth-api", &self.api) };
            ctx.route_label = Arc::from(label);
            let client_ip = ctx.client.as_ref().map(|c| c.ip);
            let hsts = self.scheme.hsts(ctx.forwarded_proto);
            let served =
                Box::pin(api_bridge::serve(session, router, self.body_limit, ctx.request_id.as_str(), client_ip, hsts))
                    .await?;
            ctx.status = Some(served);
            return Ok(true);
        }
        // Paths off the proxied hot path are boxed: this hook's future is moved
        // whole into a box on every request, so it must not carry their state.
        match self.admit(session.req_header(), ctx, Rotate::Yes).await {
            Ok(()) => Ok(false),
            Err(refusal) => match self.browser_redirect(session.req_header(), &refusal) {
                Some(location) => Box::pin(self.redirect(session, ctx, &location)).await,
                None => Box::pin(self.refuse(session, ctx, &refusal)).await,
            },
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let route =
            ctx.route.as_ref().ok_or_else(|| Error::explain(ErrorType::InternalError, "no route in context"))?;
        let (addr, mut peer) = self.pools.peer(route)?;
        ctx.upstream = Some(addr);
        peer.options.connection_timeout = Some(route.connect_timeout().unwrap_or(Duration::from_secs(5)));
        peer.options.read_timeout = Some(route.read_timeout().unwrap_or(Duration::from_secs(60)));
        if let Some(grant) = ctx.stream_grant.clone() {
            self.watch_stream(&mut peer, ctx, grant);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_started = Some(Instant::now());
        forward::prepare_upstream_request(upstream_request, ctx, &self.browser.cookies, &self.assertions)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.watch_untracked_stream(upstream_response, ctx);
        if let (Some(sent), Some(meters)) = (ctx.upstream_started, &ctx.meters) {
            meters.upstream_duration.observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        forward::prepare_response(upstream_response, |headers| {
            headers.insert(request_id::HEADER, ctx.request_id.header());
            if let Some(hsts) = self.scheme.hsts(ctx.forwarded_proto) {
                headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            self.drop_gateway_set_cookies(headers, ctx);
            for cookie in ctx.set_cookies.drain(..) {
                headers.append(http::header::SET_COOKIE, cookie);
            }
            Ok(())
        })
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if ctx.stream_ended.as_ref().is_some_and(|ended| ended.load(Ordering::Acquire)) {
            return Error::e_explain(ErrorType::ConnectionClosed, "access ended: stream closed");
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &pingora::Error, ctx: &mut RequestCtx) -> FailToProxy {
        let Some(mut refusal) = routing::proxy_failure(e, &ctx.route_label) else {
            // The client hung up: nobody to answer; logged and counted as 499.
            ctx.status = Some(routing::CLIENT_CLOSED);
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        };
        // The connection is not reused after a failed proxy attempt; say so, so the
        // client does not send its next request into a closing socket.
        refusal.close_connection = true;
        let code = match self.refuse(session, ctx, &refusal).await {
            Ok(_) => refusal.status().as_u16(),
            Err(_) => 0,
        };
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, error: Option<&pingora::Error>, ctx: &mut RequestCtx) {
        self.record(session, error, ctx);
    }

    /// What Pingora's own error lines name the request by: the method, the path
    /// without its query (which can hold reset or invitation tokens) and the
    /// request id.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {} request_id={}", req.method, req.uri.path(), ctx.request_id)
    }
}

impl Gateway {
    /// Matches the route and decides access; on success `ctx` holds the route, the
    /// identity and the upstream path.
    async fn admit(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
        rotate: Rotate,
    ) -> std::result::Result<(), Refusal> {
        let table = self.routes.load();
        let target = routing::resolve(&table, req)?;
        ctx.route_label = target.route.name().clone();
        ctx.meters = Some(self.metrics.route(target.route.name()));
        if !target.route.allows_method(&req.method) {
            return Err(routing::METHOD_NOT_ALLOWED);
        }
        let client_ip = ctx.client.as_ref().map(|c| c.ip);
        let mut facts = routing::facts(req, &target, &self.browser.cookies.tenant)?;
        facts.client_ip = client_ip;
        let mut decision = self.access.decide(&target.route, &req.headers, &facts).await;
        let candidate =
            self.browser.refresh_candidate(&req.headers, &target.route, &decision).filter(|_| rotate == Rotate::Yes);
        if let Some(refresh) = candidate {
            let retried = Box::pin(self.refresh_and_decide(req, ctx, &target, &facts, refresh.to_owned())).await;
            // On an optional route, an ended session still browses anonymously.
            if !(matches!(retried, Decision::Deny(_)) && matches!(decision, Decision::Allow(_))) {
                decision = retried;
            }
        }
        let trusted_peer = ctx.client.as_ref().is_some_and(|c| c.via_trusted_proxy);
        ctx.spoofed = self.spoofed(req, &target.route, trusted_peer, ctx.request_id.as_str());
        let identity = match decision {
            Decision::Allow(identity) => identity,
            Decision::Deny(refusal) => return Err(refusal),
        };
        let https = ctx.forwarded_proto == "https";
        if identity.via_cookie && !self.browser.csrf_ok(req, &target.host, https) {
            return Err(browser::CSRF_REJECTED);
        }
        if let Some(key) = &identity.api_key {
            self.access.key_uses.touch(key);
        }
        if let Verdict::Limited(wait) = self.limits.check(&target.route, client_ip, &identity) {
            ctx.status = Some(StatusCode::TOO_MANY_REQUESTS);
            return Err(Refusal::rate_limited(wait));
        }
        let unauthenticated = target.route.auth() == Requirement::None;
        ctx.strip_authorization = identity.via_header || (unauthenticated && self.access.is_own_bearer(&req.headers));
        // An API key of ours never reaches the app (the app's own X-Api-Key does):
        // on other routes the decision read it, and refused two of them.
        ctx.strip_api_key =
            identity.via_api_key_header || (unauthenticated && credentials::holds_api_key(&req.headers));
        ctx.upstream_uri = target.upstream_uri;
        ctx.stream_grant = stream_grant(req, &target.route, &identity);
        ctx.route = Some(target.route);
        ctx.identity = identity;
        Ok(())
    }

    /// An event stream the request did not announce (no `Accept:
    /// text/event-stream`) has no connection of its own to cut: it is watched all
    /// the same, and ends at its next chunk (keep-alives included) once its grant
    /// has ended.
    fn watch_untracked_stream(&self, response: &ResponseHeader, ctx: &mut RequestCtx) {
        if ctx.stream_watch.is_some() || (ctx.identity.user.is_none() && ctx.identity.api_key.is_none()) {
            return;
        }
        let event_stream = response
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().get(..17).is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream")));
        let Some(route) = ctx.route.as_ref().filter(|_| event_stream) else { return };
        let Some(grant) = grant_of(route, &ctx.identity) else { return };
        self.start_watch(ctx, grant, Arc::new(Tap::default()));
    }

    /// Gives a long-lived request its own upstream connection through a [`Tap`],
    /// and a [`Watch`] that cuts it when `grant` ends (logout-all, role change,
    /// removal, tenant deactivation): within a second, on every instance.
    fn watch_stream(&self, peer: &mut HttpPeer, ctx: &mut RequestCtx, grant: Grant) {
        let tap = Arc::new(Tap::default());
        peer.options.custom_l4 = Some(tap.clone());
        // A connection of its own: never one from the pool, never back into it.
        peer.group_key = STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        peer.options.total_connection_timeout = peer.options.connection_timeout;
        self.start_watch(ctx, grant, tap);
    }

    /// Watches `grant` for the rest of the request: when it ends, `tap` is cut
    /// (and the stream's next chunk refused), counted and logged.
    fn start_watch(&self, ctx: &mut RequestCtx, grant: Grant, tap: Arc<Tap>) {
        ctx.stream_ended = Some(tap.ended.clone());
        let (ended, request_id) = (self.metrics.streams_ended.clone(), ctx.request_id.to_string());
        ctx.stream_watch = Some(Watch::start(self.revocations.clone(), grant, tap, move || {
            ended.inc();
            tracing::info!(request_id, "access ended: closing the open stream");
        }));
    }

    /// The client of the request: the TCP peer, or the address a trusted proxy
    /// forwarded. `None` for a peer that is not an IP socket.
    fn client_of(&self, session: &Session, on_verify_listener: bool) -> Option<Client> {
        let peer = session.client_addr()?.as_inet()?.ip();
        let forwarded = session.req_header().headers.get_all(forward::X_FORWARDED_FOR);
        let forwarded = forwarded.iter().filter_map(|v| v.to_str().ok());
        Some(match on_verify_listener {
            // Only the proxies it serves reach that listener.
            true => client_ip::resolve_from_trusted_peer(peer, forwarded, &self.trusted_proxies),
            false => client_ip::resolve(peer, forwarded, &self.trusted_proxies),
        })
    }

    /// The spoofed identity and override headers the upstream request must not
    /// carry, counting and logging each attempt (the name only: values can be
    /// tokens).
    fn spoofed(&self, req: &RequestHeader, route: &Route, trusted_peer: bool, request_id: &str) -> Vec<HeaderName> {
        let policy = identity_headers::StripPolicy {
            rules: &self.header_rules,
            trusted_peer,
            tenant_headers_are_input: route.tenant_from().contains(&TenantSource::Header),
        };
        identity_headers::strip(req, &policy, |label, name| {
            self.metrics.spoofed_headers.with_label_values(&[label]).inc();
            tracing::debug!(request_id, header = name.as_str(), "spoofed header stripped");
        })
    }

    /// Removes upstream `Set-Cookie`s that would set one of the gateway's cookies.
    fn drop_gateway_set_cookies(&self, headers: &mut http::HeaderMap, ctx: &RequestCtx) {
        let cookies = &self.browser.cookies;
        let all = headers.get_all(http::header::SET_COOKIE);
        if !all.iter().any(|v| forward::sets_gateway_cookie(v, cookies)) {
            return;
        }
        let kept: Vec<HeaderValue> =
            all.iter().filter(|v| !forward::sets_gateway_cookie(v, cookies)).cloned().collect();
        headers.remove(http::header::SET_COOKIE);
        for value in kept {
            headers.append(http::header::SET_COOKIE, value);
        }
        tracing::warn!(request_id = %ctx.request_id, route = %ctx.route_label, "upstream tried to set a gateway cookie; dropped");
    }

    /// Rotates the refresh cookie and decides again with the new access token; the
    /// new cookies (or, when the session has ended, cleared ones) go on the answer.
    async fn refresh_and_decide(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
        target: &routing::Target,
        facts: &access::RequestFacts<'_>,
        refresh: String,
    ) -> Decision {
        let headers = &req.headers;
        let user_agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok());
        let presenter = Presenter { user_agent, ip: ctx.client.as_ref().map(|c| c.ip) };
        match self.browser.refresh(&refresh, ctx.request_id.as_str(), presenter).await {
            Refreshed::Pair(pair) => {
                ctx.set_cookies.extend(self.browser.cookies.session(&pair.access, pair.refresh_text(), &target.host));
                let headers = browser::with_bearer(headers, &pair.access);
                match self.access.decide_once(&target.route, &headers, facts).await {
                    // The refresh cookie authenticated this request: CSRF applies.
                    Decision::Allow(identity) => {
                        Decision::Allow(Identity { via_cookie: true, via_header: false, ..identity })
                    }
                    deny => deny,
                }
            }
            Refreshed::Ended(refusal) => {
                ctx.set_cookies.extend(self.browser.cookies.cleared(&target.host));
                Decision::Deny(refusal)
            }
        }
    }

    /// Where to send a browser instead of refusing, if anywhere. Only refusals a
    /// browser can act on (401, no tenant) from requests without `Authorization`
    /// get this far; the route is looked up again here, off the allowed path.
    fn browser_redirect(&self, req: &RequestHeader, refusal: &Refusal) -> Option<String> {
        let actionable = refusal.status() == StatusCode::UNAUTHORIZED || refusal.code == ErrorCode::TenantRequired;
        // Bearer and API key clients are programs: they get the refusal.
        if !actionable
            || req.headers.contains_key(http::header::AUTHORIZATION)
            || credentials::holds_api_key(&req.headers)
        {
            return None;
        }
        let table = self.routes.load();
        let target = routing::resolve(&table, req).ok()?;
        self.browser.redirect_for(req, &target.route, refusal)
    }

    /// Sends a browser elsewhere (302 for reads, 303 otherwise) and stops the request.
    async fn redirect(&self, session: &mut Session, ctx: &mut RequestCtx, location: &str) -> Result<bool> {
        let status = match session.req_header().method {
            http::Method::GET | http::Method::HEAD => StatusCode::FOUND,
            _ => StatusCode::SEE_OTHER,
        };
        let mut header = ResponseHeader::build(status, Some(4 + ctx.set_cookies.len()))?;
        header.insert_header(http::header::LOCATION, location)?;
        header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        header.insert_header(request_id::HEADER, ctx.request_id.header())?;
        if let Some(hsts) = self.scheme.hsts(ctx.forwarded_proto) {
            header.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts)?;
        }
        for cookie in ctx.set_cookies.drain(..) {
            header.append_header(http::header::SET_COOKIE, cookie)?;
        }
        respond::write_full(session, header, bytes::Bytes::new()).await?;
        ctx.status = Some(status);
        Ok(true)
    }

    /// On HTTPS and on a plain listener that redirects: the host must be valid,
    /// covered by the connection's certificate, and a plain request is sent to
    /// HTTPS. `Some` when the request was answered here.
    async fn check_scheme(&self, session: &mut Session, ctx: &mut RequestCtx, over_tls: bool) -> Option<Result<bool>> {
        let host = match https::required_host(session.req_header()) {
            Ok(host) => host,
            Err(refusal) => return Some(self.refuse(session, ctx, &refusal).await),
        };
        if over_tls && https::misdirected(session, &host) {
            return Some(self.refuse(session, ctx, &Refusal::of(ErrorCode::MisdirectedRequest)).await);
        }
        let location = self.scheme.redirect_target(session.req_header(), ctx.forwarded_proto, &host)?;
        Some(self.redirect_to_https(session, ctx, &location).await)
    }

    /// Answers a plain-HTTP request with a 308 to its HTTPS address.
    async fn redirect_to_https(&self, session: &mut Session, ctx: &mut RequestCtx, location: &str) -> Result<bool> {
        ctx.route_label = Arc::from("https-redirect");
        let mut header = https::redirect_header(location)?;
        header.insert_header(request_id::HEADER, ctx.request_id.header())?;
        respond::write_full(session, header, bytes::Bytes::new()).await?;
        ctx.status = Some(StatusCode::PERMANENT_REDIRECT);
        Ok(true)
    }

    /// Answers with a JSON error and stops the request.
    async fn refuse(&self, session: &mut Session, ctx: &mut RequestCtx, refusal: &Refusal) -> Result<bool> {
        self.refuse_with(session, ctx, refusal, Vec::new()).await
    }

    /// [`Self::refuse`], with `extra` headers on the answer.
    async fn refuse_with(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refusal: &Refusal,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<bool> {
        ctx.refused_tenant.clone_from(&refusal.tenant);
        let tenant = self.metrics.tenant_label(refusal.tenant.as_deref());
        let mut headers = extra;
        headers.push((request_id::HEADER, ctx.request_id.header()));
        if let Some(hsts) = self.scheme.hsts(ctx.forwarded_proto) {
            headers.push((http::header::STRICT_TRANSPORT_SECURITY, hsts.clone()));
        }
        if refusal.status() == StatusCode::UNAUTHORIZED {
            self.metrics.auth_failures.with_label_values(&[refusal.code.as_str(), &tenant]).inc();
            headers.push((http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        } else if refusal.status() == StatusCode::FORBIDDEN {
            self.metrics.auth_failures.with_label_values(&[refusal.code.as_str(), &tenant]).inc();
        }
        if refusal.close_connection {
            headers.push((http::header::CONNECTION, HeaderValue::from_static("close")));
            // Pingora would otherwise answer `keep-alive` over our `close`, then
            // close anyway: a client reusing the socket would see a reset.
            session.set_keepalive(None);
        }
        if let Some(secs) = refusal.retry_after {
            headers.push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        headers.extend(ctx.set_cookies.drain(..).map(|c| (http::header::SET_COOKIE, c)));
        respond::json_error(session, refusal.code, refusal.message, &headers).await?;
        ctx.status = Some(refusal.status());
        Ok(true)
    }

    /// The request metrics, and the access-log line (target `tenantgate::access`):
    /// every answer of 400 and more or with an error, a `LOG_ACCESS_SAMPLE` share
    /// of the others.
    /// Logs the path without its query string: queries can carry tokens.
    fn record(&self, session: &Session, error: Option<&pingora::Error>, ctx: &RequestCtx) {
        let status = match ctx.status {
            // Even when part of the answer went out before the client hung up.
            Some(routing::CLIENT_CLOSED) => routing::CLIENT_CLOSED,
            _ => {
                session.response_written().map(|r| r.status).or(ctx.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        let req = session.req_header();
        let elapsed = ctx.started.elapsed();
        let slug = ctx.identity.tenant.as_ref().map(|t| t.slug.as_str()).or(ctx.refused_tenant.as_deref());
        let tenant = self.metrics.tenant_label(slug);
        match &ctx.meters {
            Some(meters) => {
                meters.count(&req.method, status, tenant);
                meters.duration.observe(elapsed.as_secs_f64());
            }
            None => {
                let method = crate::metrics::method_label(&req.method);
                let labels = [&*ctx.route_label, method, status.as_str(), &*tenant];
                self.metrics.requests.with_label_values(&labels).inc();
                self.metrics.duration.with_label_values(&[&*ctx.route_label]).observe(elapsed.as_secs_f64());
            }
        }
        let sample = self.access_sample;
        let always = status.as_u16() >= 400 || error.is_some();
        if !always && sample < 1.0 && (sample <= 0.0 || rand::random::<f64>() >= sample) {
            return;
        }
        // Field values are only evaluated when the line is enabled: nothing is
        // formatted per request at LOG_LEVEL=warn.
        tracing::info!(
            target: "tenantgate::access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = %req.uri.path(),
            route = %ctx.route_label,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            user_id = ctx.identity.user.as_ref().map(|u| u.id.to_string()),
            api_key_id = ctx.identity.api_key.as_ref().map(|k| k.id.to_string()),
            tenant_id = ctx.identity.tenant.as_ref().map(|t| t.id.to_string()),
            tenant_slug = ctx.identity.tenant.as_ref().map(|t| t.slug.as_str()),
            upstream = ctx.upstream.map(|a| a.to_string()),
            client = %session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
            error = error.map(|e| e.to_string()),
            "request"
        );
    }
}

/// Whether `admit` may rotate a browser's refresh cookie (silent refresh): not
/// where the answer's cookies might not reach the browser (forward-auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotate {
    Yes,
    No,
}

/// Distinct group keys for the upstream connections of long-lived requests.
static STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The grant to re-check while the request is open, for a user's long-lived
/// request: a WebSocket (or any) upgrade, or an event stream (`Accept:
/// text/event-stream`, as every `EventSource` sends).
fn stream_grant(req: &RequestHeader, route: &Route, identity: &Identity) -> Option<Grant> {
    if identity.user.is_none() && identity.api_key.is_none() {
        return None;
    }
    let event_stream = req
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .any(|v| v.as_bytes().windows(17).any(|w| w.eq_ignore_ascii_case(b"text/event-stream")));
    if !event_stream && !req.headers.contains_key(http::header::UPGRADE) {
        return None;
    }
    grant_of(route, identity)
}

/// What `identity` was admitted to `route` with.
fn grant_of(route: &Route, identity: &Identity) -> Option<Grant> {
    let holder = match (&identity.user, &identity.api_key) {
        (Some(user), _) => Holder::User { id: user.id, token_version: user.token_version },
        (None, Some(key)) => Holder::ApiKey(Arc::from(key.public_id.as_str())),
        (None, None) => return None,
    };
    Some(Grant {
        holder,
        tenant: identity.tenant.as_ref().map(|t| (t.id, route.min_role())),
        expires_at: identity.expires_at?,
    })
}

/// The scheme the client used, for `X-Forwarded-Proto`, HSTS and the redirect to
/// HTTPS: what a trusted proxy said (`https` or `http`: it saw the client), else
/// the gateway's own listener's (`https` over TLS). The proxy's word is the last
/// value (a proxy appends; what comes before it is the client's), as for
/// `X-Forwarded-For`.
fn forwarded_proto(req: &RequestHeader, trusted_peer: bool, over_tls: bool) -> &'static str {
    let said = req
        .headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .filter(|_| trusted_peer)
        .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
        .map(<[u8]>::trim_ascii);
    match said {
        Some(proto) if proto.eq_ignore_ascii_case(b"https") => "https",
        Some(proto) if proto.eq_ignore_ascii_case(b"http") => "http",
        _ if over_tls => "https",
        _ => "http",
    }
}
