//! The hosted login portal: server-rendered pages under `/auth/ui/` for browser
//! users of apps that know nothing of JWTs. The pages call the same handlers as
//! the JSON API (login, register, refresh, logout, password reset, email
//! verification) and keep the token pair in cookies (`cookies`); the proxy
//! refreshes an expired access cookie on the fly (`session`). The signed-in
//! pages (invitations, a tenant's API keys) call the API router in process as
//! the user ([`Portal::call_api`]). Every form is protected by an Origin/Referer
//! check and a double-submit CSRF token.

mod account;
mod api_keys;
mod pages;
pub mod render;
pub mod return_to;

use shared::portal_paths as paths;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{Map, Value};
use shared::db::users::{self, User};
use shared::domain::Slug;
use subtle::ConstantTimeEq;
use tower::ServiceExt;

use self::render::Pages;
use crate::api::extract::{ClientIp, RequestId};
use crate::routes::{tenant, PathLookup, Requirement, RouteTable, TenantSource};
use crate::web_session::cookies::{CookiePolicy, CSRF_COOKIE, LANG_COOKIE};
use crate::web_session::rotation::{Presenter, Sessions};
use crate::web_session::site::SitePolicy;
use edge::path::RequestPath;

pub use shared::portal_paths::{owns, PREFIX};

/// What the pages need. Built once at start.
pub struct Portal {
    /// Token rotation and the API state behind it.
    pub sessions: Arc<Sessions>,
    /// The JSON API router, for calls into flows that live there (invitations,
    /// API keys): see [`Portal::call_api`].
    pub api: Router,
    /// Cookie names and attributes.
    pub cookies: CookiePolicy,
    /// Hosts return URLs and form posts may come from.
    pub site: SitePolicy,
    /// The route table, to tell whether a return URL needs a tenant picked.
    pub routes: Arc<ArcSwap<RouteTable>>,
    /// Templates and strings.
    pub pages: Pages,
}

/// Builds the portal router; `body_limit` caps form bodies.
pub fn router(portal: Arc<Portal>, body_limit: usize) -> Router {
    Router::new()
        .route(paths::PREFIX, get(account::index))
        .route(paths::INDEX, get(account::index))
        .route(paths::LOGIN, get(pages::login_page).post(pages::login))
        .route(paths::REGISTER, get(pages::register_page).post(pages::register))
        .route(paths::FORGOT, get(pages::forgot_page).post(pages::forgot))
        .route(paths::RESET, get(pages::reset_page).post(pages::reset))
        .route(paths::VERIFIED, get(pages::verified_page).post(pages::verified))
        .route(paths::INVITATION, get(account::invitation_page).post(account::invitation))
        .route(paths::TENANTS, get(account::tenants_page).post(account::tenants))
        .route(paths::LOGOUT, get(account::logout_page).post(account::logout))
        .route(paths::API_KEYS, get(api_keys::page).post(api_keys::create))
        .route(paths::API_KEYS_REVOKE, post(api_keys::revoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(portal)
}

async fn not_found(visit: Visit, axum::extract::State(portal): axum::extract::State<Arc<Portal>>) -> Response {
    let page = portal.pages.message(
        StatusCode::NOT_FOUND,
        visit.lang,
        "error_title",
        "not_found",
        paths::LOGIN,
        "back_to_sign_in",
    );
    visit.finish(page)
}

/// One page view: language, host, the CSRF token, request id and client address.
pub struct Visit {
    /// The page language.
    pub lang: &'static str,
    /// Whether `?lang=` chose it (then it is remembered in a cookie).
    lang_chosen: bool,
    /// The Host (with port, as sent).
    pub host: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The CSRF token forms carry: the cookie's, or a new one.
    pub csrf: String,
    /// Whether `csrf` is new and needs its cookie set.
    csrf_is_new: bool,
    /// For audit rows and logs.
    pub request_id: String,
    /// For rate limits.
    pub ip: Option<IpAddr>,
    /// Cookies to set on the answer (a refreshed session, a chosen tenant...).
    pub set_cookies: Vec<HeaderValue>,
    cookies: CookiePolicy,
}

impl FromRequestParts<Arc<Portal>> for Visit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, portal: &Arc<Portal>) -> Result<Self, Self::Rejection> {
        let query_lang = parts
            .uri
            .query()
            .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "lang").map(|(_, v)| v.into_owned()));
        let lang = render::language(query_lang.as_deref(), &parts.headers);
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
            .unwrap_or_default();
        let existing = crate::web_session::cookies::read(&parts.headers, CSRF_COOKIE)
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        let csrf_is_new = existing.is_none();
        let csrf = existing.unwrap_or_else(|| {
            let bytes: [u8; 32] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        let RequestId(request_id) = RequestId::from_request_parts(parts, &()).await?;
        let ClientIp(ip) = ClientIp::from_request_parts(parts, &()).await?;
        Ok(Visit {
            lang,
            lang_chosen: query_lang.is_some_and(|q| q.eq_ignore_ascii_case(lang)),
            host,
            headers: parts.headers.clone(),
            csrf,
            csrf_is_new,
            request_id,
            ip,
            set_cookies: Vec::new(),
            cookies: portal.cookies.clone(),
        })
    }
}

impl Visit {
    /// Whether a form post is genuine: it comes from this site (Origin, else
    /// Referer) and carries the CSRF cookie's token (compared in constant time).
    pub fn form_is_genuine(&self, portal: &Portal, form_token: &str) -> bool {
        let same_site = portal.site.same_site_request(&self.headers, &self.host);
        let token_ok = !self.csrf_is_new && bool::from(self.csrf.as_bytes().ct_eq(form_token.as_bytes()));
        same_site && token_ok
    }

    /// The request's host without port, for cookie domains.
    pub fn host_name(&self) -> &str {
        crate::routes::host_name(&self.host)
    }

    /// The response with this visit's cookies added.
    pub fn finish(self, response: Response) -> Response {
        let mut response = response;
        let headers = response.headers_mut();
        for cookie in self.set_cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
        if self.csrf_is_new {
            headers.append(header::SET_COOKIE, self.cookies.portal(CSRF_COOKIE, &self.csrf, None));
        }
        if self.lang_chosen {
            let year = std::time::Duration::from_secs(365 * 86400);
            headers.append(header::SET_COOKIE, self.cookies.portal(LANG_COOKIE, self.lang, Some(year)));
        }
        response
    }

    /// A 303 to `location` with this visit's cookies.
    pub fn redirect(self, location: &str) -> Response {
        self.finish(Redirect::to(location).into_response())
    }
}

/// The signed-in user of a visit, from the access cookie or, when it has expired,
/// by rotating the refresh cookie (the new cookies go on the visit).
pub struct SignedIn {
    /// The user.
    pub user: User,
}

impl Portal {
    /// The visitor's account, if signed in. A refresh cookie is rotated when the
    /// access cookie is missing or no longer valid; a failed rotation clears the
    /// cookies.
    pub async fn signed_in(&self, visit: &mut Visit) -> Option<SignedIn> {
        let api = self.sessions.api();
        let from_access = match crate::web_session::cookies::read(&visit.headers, &self.cookies.access) {
            Some(token) => api.tokens.verify(token).ok(),
            None => None,
        };
        let claims = match from_access {
            Some(claims) => claims,
            None => {
                let refresh = crate::web_session::cookies::read(&visit.headers, &self.cookies.refresh)?.to_owned();
                let ua = visit.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let presenter = Presenter { user_agent: ua.as_deref(), ip: visit.ip };
                match self.sessions.refresh(&refresh, &visit.request_id, presenter).await {
                    Ok(pair) => {
                        visit.set_cookies.extend(self.cookies.session(
                            &pair.access,
                            pair.refresh_text(),
                            visit.host_name(),
                        ));
                        api.tokens.verify(&pair.access).ok()?
                    }
                    Err(_) => {
                        visit.set_cookies.extend(self.cookies.cleared(visit.host_name()));
                        return None;
                    }
                }
            }
        };
        let user = users::find_by_id(&api.pool, claims.sub).await.ok()??;
        (user.token_version == claims.ver).then_some(SignedIn { user })
    }

    /// Whether the route a return URL leads to resolves its tenant by path or
    /// header (so the user has to pick one), and the URL does not name one.
    pub fn needs_tenant_choice(&self, return_to: &str, request_host: &str) -> bool {
        let Ok(path) = RequestPath::parse(return_to::path_of(return_to)) else { return false };
        let path = PathLookup::of(&path);
        if tenant::path_slug(path).is_some() {
            return false;
        }
        let host = crate::web_session::site::url_host(return_to)
            .unwrap_or_else(|| crate::routes::host_name(request_host).to_ascii_lowercase());
        let table = self.routes.load();
        let Some(found) = table.match_request(&host, path) else { return false };
        let route = &found.route;
        route.tenant() != Requirement::None
            && route.tenant_from().iter().any(|s| matches!(s, TenantSource::Path | TenantSource::Header))
    }

    /// `return_to` for `slug`: a `/t/{other}/` path gets the new slug, and a local
    /// path whose route resolves tenants by path only gets a `/t/{slug}` prefix.
    pub fn with_tenant(&self, return_to: &str, slug: &Slug, request_host: &str) -> String {
        if !return_to.starts_with('/') {
            return return_to.to_owned();
        }
        let raw_path = return_to::path_of(return_to);
        let suffix = &return_to[raw_path.len()..];
        let Ok(path) = RequestPath::parse(raw_path) else { return return_to.to_owned() };
        let path = PathLookup::of(&path);
        if let Some((_, rest)) = tenant::path_slug(path) {
            return format!("/t/{slug}{}{suffix}", rest.wire());
        }
        let table = self.routes.load();
        let host = crate::routes::host_name(request_host).to_ascii_lowercase();
        let path_only = table.match_request(&host, path).is_some_and(|m| {
            m.route.tenant_from().contains(&TenantSource::Path)
                && !m.route.tenant_from().contains(&TenantSource::Header)
        });
        if path_only {
            format!("/t/{slug}{return_to}")
        } else {
            return_to.to_owned()
        }
    }

    /// A validated return URL, or `/`.
    pub fn return_to(&self, raw: Option<&str>, visit: &Visit) -> String {
        raw.and_then(|r| return_to::validate(r, &visit.host, &self.site))
            .unwrap_or_else(|| return_to::DEFAULT.to_owned())
    }

    /// The access token of a signed-in visit: the one [`Portal::signed_in`] just
    /// refreshed (the last session cookie set on the visit), else the request's
    /// cookie.
    pub fn access_token(&self, visit: &Visit) -> Option<String> {
        let prefix = format!("{}=", self.cookies.access);
        let refreshed = visit
            .set_cookies
            .iter()
            .filter_map(|c| c.to_str().ok())
            .rev()
            .find_map(|c| c.strip_prefix(&prefix).and_then(|rest| rest.split(';').next()).map(str::to_owned));
        refreshed.or_else(|| crate::web_session::cookies::read(&visit.headers, &self.cookies.access).map(str::to_owned))
    }

    /// Calls the JSON API in process as the visit's signed-in user (its access
    /// token as `Authorization: Bearer`), with the visit's request id and client
    /// address, so that parsing, policy, throttling and audit are the API's own.
    /// `body` is sent as JSON. Returns the status and the JSON body (`Null` when
    /// there is none); a request that cannot be built or an answer that cannot be
    /// read is a 500.
    pub async fn call_api(&self, visit: &Visit, method: Method, uri: &str, body: Option<&Value>) -> ApiAnswer {
        let access = self.access_token(visit).unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .extension(RequestId(visit.request_id.clone()))
            .extension(ClientIp(visit.ip));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = match request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))) {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(error = %e, request_id = %visit.request_id, "portal could not build an API request");
                return ApiAnswer { status: StatusCode::INTERNAL_SERVER_ERROR, body: Value::Null };
            }
        };
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), API_ANSWER_LIMIT).await {
            Ok(bytes) if bytes.is_empty() => ApiAnswer { status, body: Value::Null },
            Ok(bytes) => ApiAnswer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) },
            Err(e) => {
                tracing::error!(error = %e, request_id = %visit.request_id, "portal could not read an API answer");
                ApiAnswer { status: StatusCode::INTERNAL_SERVER_ERROR, body: Value::Null }
            }
        }
    }

    /// The 403 page for a form that failed the CSRF checks.
    pub fn forged(&self, visit: Visit) -> Response {
        let page = self.pages.message(
            StatusCode::FORBIDDEN,
            visit.lang,
            "error_title",
            "error_csrf",
            paths::LOGIN,
            "back_to_sign_in",
        );
        visit.finish(page)
    }
}

/// The most of an in-process API answer the portal reads (a listing of 1,000
/// API keys is about 400 KB).
const API_ANSWER_LIMIT: usize = 8 << 20;

/// An answer of [`Portal::call_api`].
pub struct ApiAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its JSON body, or `Null`.
    pub body: Value,
}

impl ApiAnswer {
    /// Whether the answer is the API error `code`.
    pub fn is(&self, code: crate::error_code::ErrorCode) -> bool {
        self.body.get("error").and_then(Value::as_str) == Some(code.as_str())
    }
}

/// The common page context: CSRF token and return URL (raw and query-encoded).
pub fn context(visit: &Visit, return_to: &str) -> Map<String, Value> {
    let mut ctx = Map::new();
    ctx.insert("csrf".into(), Value::from(visit.csrf.as_str()));
    ctx.insert("return_to".into(), Value::from(return_to));
    ctx.insert("return_to_q".into(), Value::from(encode(return_to)));
    ctx
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
