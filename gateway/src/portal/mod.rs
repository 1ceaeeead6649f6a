//! The hosted login portal: server-rendered pages under `/auth/ui/` for browser
//! users of apps that know nothing of JWTs. The pages call the same handlers as
//! the JSON API (login, register, refresh, logout, password reset, email
//! verification) and keep the token pair in cookies (`cookies`); the proxy
//! refreshes an expired access cookie on the fly (`session`). Every form is
//! protected by an Origin/Referer check and a double-submit CSRF token.

mod account;
mod pages;
pub mod render;
pub mod return_to;

use shared::portal_paths as paths;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{Map, Value};
use shared::db::users::{self, User};
use shared::domain::Slug;
use subtle::ConstantTimeEq;

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
    /// The JSON API router, for calls into flows that live there (invitations).
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
