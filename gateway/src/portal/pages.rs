//! The account pages: login, register, forgot, reset, verified. Each POST checks
//! the form's origin and CSRF token, then calls the JSON API's handler for the
//! same flow, so parsing, hashing, throttling and auditing are shared.

use shared::portal_paths as paths;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{context, encode, Portal, Visit};
use crate::api::auth::{login as login_api, password_reset, register as register_api, verify_email};
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ClientIp, RequestId};
use crate::api::wire::{
    ForgotPasswordRequest, LoginRequest, RegisterRequest, ResetPasswordRequest, SessionBody, VerifyEmailRequest,
};
use crate::error_code::ErrorCode;

/// The query every page accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    /// Where to go after signing in.
    pub return_to: Option<String>,
    /// A one-time token from an email link.
    pub token: Option<String>,
    /// Set after logging out, to say so.
    pub signed_out: Option<String>,
}

/// The query, or an empty one when it does not parse.
pub fn query(q: Result<Query<PageQuery>, QueryRejection>) -> PageQuery {
    q.map(|Query(q)| q).unwrap_or_default()
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

/// The login and register forms.
#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    csrf: String,
    /// Register only: the token of the invitation the person follows, to join
    /// that tenant instead of creating one.
    #[serde(default)]
    invite_token: String,
}

/// The forms carrying a one-time token (reset, verify, invitation).
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    pub token: String,
    #[serde(default = "empty_secret")]
    password: SecretString,
    #[serde(default)]
    pub csrf: String,
}

/// The string key for an API error shown on a form.
fn error_key(e: &ApiError) -> &'static str {
    match e.code {
        ErrorCode::InvalidCredentials => "error_credentials",
        ErrorCode::RateLimited => "error_rate_limited",
        ErrorCode::EmailTaken => "error_email_taken",
        ErrorCode::WeakPassword => "error_weak_password",
        ErrorCode::InvalidOneTimeToken | ErrorCode::InvalidToken => "invalid_link",
        ErrorCode::InvitationEmailMismatch => "error_invitation_email",
        _ if e.status().is_server_error() => "error_generic",
        _ => "error_invalid",
    }
}

/// A form page again, with an error.
fn form_again(
    portal: &Portal,
    visit: Visit,
    template: &str,
    status: StatusCode,
    error: &str,
    fields: Value,
) -> Response {
    let return_to = fields.get("return_to").and_then(Value::as_str).unwrap_or("/").to_owned();
    let mut ctx = context(&visit, &return_to);
    if let Value::Object(fields) = fields {
        ctx.extend(fields);
    }
    ctx.insert("error".into(), Value::from(portal.pages.text(visit.lang, error)));
    let page = portal.pages.page(status, template, visit.lang, ctx);
    visit.finish(page)
}

/// `GET /auth/ui/login`.
pub async fn login_page(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = query(q);
    let return_to = portal.return_to(q.return_to.as_deref(), &visit);
    let mut ctx = context(&visit, &return_to);
    if q.signed_out.is_some() {
        ctx.insert("notice".into(), Value::from(portal.pages.text(visit.lang, "signed_out")));
    }
    let page = portal.pages.page(StatusCode::OK, "login.html", visit.lang, ctx);
    visit.finish(page)
}

/// `POST /auth/ui/login`: signs in, sets the session cookies, and goes back to the
/// return URL (through the tenant picker when the user has to choose).
pub async fn login(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return form_again(&portal, visit, "login.html", StatusCode::BAD_REQUEST, "error_invalid", json!({}));
    };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let return_to = portal.return_to(Some(&form.return_to), &visit);
    let req = LoginRequest { email: form.email.clone(), password: form.password };
    let api = portal.sessions.api().clone();
    let answer = login_api::login(
        State(api),
        RequestId(visit.request_id.clone()),
        ClientIp(visit.ip),
        visit.headers.clone(),
        ApiJson(req),
    )
    .await;
    match answer {
        Ok(axum::Json(body)) => start(&portal, visit, body, &return_to),
        Err(e) => {
            let fields = json!({"email": form.email, "return_to": return_to});
            form_again(&portal, visit, "login.html", e.status(), error_key(&e), fields)
        }
    }
}

/// Sets the session cookies and redirects: to the tenant picker when the user has
/// several tenants, none chosen yet, and the return route needs one; else back.
fn start(portal: &Portal, mut visit: Visit, body: SessionBody, return_to: &str) -> Response {
    let host = visit.host_name().to_owned();
    visit.set_cookies.extend(portal.cookies.session(&body.tokens.access_token, &body.tokens.refresh_token, &host));
    let chosen = crate::web_session::cookies::read(&visit.headers, &portal.cookies.tenant)
        .and_then(|slug| body.tenants.iter().find(|t| t.slug.as_str() == slug))
        .map(|t| t.slug.clone());
    let location = match (chosen, body.tenants.as_slice()) {
        (Some(slug), _) => portal.with_tenant(return_to, &slug, &visit.host),
        (None, [only]) => {
            visit.set_cookies.push(portal.cookies.tenant(&only.slug, &host));
            portal.with_tenant(return_to, &only.slug, &visit.host)
        }
        (None, [_, _, ..]) if portal.needs_tenant_choice(return_to, &visit.host) => {
            format!("{}?return_to={}", paths::TENANTS, encode(return_to))
        }
        (None, _) => return_to.to_owned(),
    };
    visit.redirect(&location)
}

/// `GET /auth/ui/register`.
pub async fn register_page(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = query(q);
    let return_to = portal.return_to(q.return_to.as_deref(), &visit);
    let mut ctx = context(&visit, &return_to);
    // Arriving from an invitation link: the account joins that tenant.
    if let Some(token) = link_token(q.token) {
        ctx.insert("invite_token".into(), Value::from(token));
    }
    let page = portal.pages.page(StatusCode::OK, "register.html", visit.lang, ctx);
    visit.finish(page)
}

/// `POST /auth/ui/register`: creates the account (and its first tenant) like
/// `POST /auth/register`, then signs in.
pub async fn register(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return form_again(&portal, visit, "register.html", StatusCode::BAD_REQUEST, "error_invalid", json!({}));
    };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let return_to = portal.return_to(Some(&form.return_to), &visit);
    let fields =
        json!({"email": form.email, "name": form.name, "return_to": return_to, "invite_token": form.invite_token});
    // Built through serde so that fields the API adds later keep their defaults.
    let mut body = json!({"email": form.email, "name": form.name, "language": visit.lang});
    body["password"] = Value::from(secrecy::ExposeSecret::expose_secret(&form.password));
    if !form.invite_token.is_empty() {
        body["inviteToken"] = Value::from(form.invite_token.as_str());
    }
    let req: RegisterRequest = match serde_json::from_value(body) {
        Ok(req) => req,
        Err(_) => return form_again(&portal, visit, "register.html", StatusCode::BAD_REQUEST, "error_invalid", fields),
    };
    let api = portal.sessions.api().clone();
    match register_api::register(
        State(api),
        RequestId(visit.request_id.clone()),
        ClientIp(visit.ip),
        visit.headers.clone(),
        ApiJson(req),
    )
    .await
    {
        Ok((_, axum::Json(body))) => start(&portal, visit, body, &return_to),
        Err(e) => form_again(&portal, visit, "register.html", e.status(), error_key(&e), fields),
    }
}

/// `GET /auth/ui/forgot`.
pub async fn forgot_page(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let return_to = portal.return_to(query(q).return_to.as_deref(), &visit);
    let ctx = context(&visit, &return_to);
    let page = portal.pages.page(StatusCode::OK, "forgot.html", visit.lang, ctx);
    visit.finish(page)
}

/// `POST /auth/ui/forgot`: the same answer whether or not an account uses the
/// address (the API's handler does the work after answering).
pub async fn forgot(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return form_again(&portal, visit, "forgot.html", StatusCode::BAD_REQUEST, "error_invalid", json!({}));
    };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let return_to = portal.return_to(Some(&form.return_to), &visit);
    let api = portal.sessions.api().clone();
    let req = ForgotPasswordRequest { email: form.email };
    let answer = password_reset::forgot_password(
        State(api),
        ClientIp(visit.ip),
        RequestId(visit.request_id.clone()),
        ApiJson(req),
    )
    .await;
    match answer {
        Err(e) if e.code == ErrorCode::RateLimited => {
            form_again(&portal, visit, "forgot.html", e.status(), "error_rate_limited", json!({"return_to": return_to}))
        }
        _ => {
            let mut ctx = context(&visit, &return_to);
            ctx.insert("sent".into(), Value::Bool(true));
            ctx.insert("notice".into(), Value::from(portal.pages.text(visit.lang, "forgot_sent")));
            let page = portal.pages.page(StatusCode::OK, "forgot.html", visit.lang, ctx);
            visit.finish(page)
        }
    }
}

/// A one-time token from an email link's query, if it has a plausible size.
pub fn link_token(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty() && t.len() <= 128)
}

/// The "this link is invalid" page (400).
pub fn invalid_link(portal: &Portal, visit: Visit) -> Response {
    let page = portal.pages.message(
        StatusCode::BAD_REQUEST,
        visit.lang,
        "error_title",
        "invalid_link",
        paths::LOGIN,
        "back_to_sign_in",
    );
    visit.finish(page)
}

/// A page for a one-time token from an email link, or "invalid link" without one.
fn token_page(portal: &Portal, visit: Visit, template: &str, token: Option<String>) -> Response {
    let Some(token) = link_token(token) else { return invalid_link(portal, visit) };
    let mut ctx = context(&visit, "/");
    ctx.insert("token".into(), Value::from(token));
    let page = portal.pages.page(StatusCode::OK, template, visit.lang, ctx);
    visit.finish(page)
}

/// `GET /auth/ui/reset?token=`: the new-password form (the link in the email).
pub async fn reset_page(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    token_page(&portal, visit, "reset.html", query(q).token)
}

/// `POST /auth/ui/reset`: sets the password (ending every session).
pub async fn reset(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return token_page(&portal, visit, "reset.html", None) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let api = portal.sessions.api().clone();
    let req = ResetPasswordRequest { token: SecretString::from(form.token.clone()), password: form.password };
    match password_reset::reset_password(State(api), RequestId(visit.request_id.clone()), ApiJson(req)).await {
        Ok(_) => {
            let page =
                portal.pages.message(StatusCode::OK, visit.lang, "reset_title", "reset_done", paths::LOGIN, "sign_in");
            visit.finish(page)
        }
        Err(e) if e.code == ErrorCode::WeakPassword => {
            form_again(&portal, visit, "reset.html", e.status(), "error_weak_password", json!({"token": form.token}))
        }
        Err(e) => {
            let page = portal.pages.message(
                e.status(),
                visit.lang,
                "error_title",
                error_key(&e),
                paths::FORGOT,
                "forgot_password",
            );
            visit.finish(page)
        }
    }
}

/// `GET /auth/ui/verified?token=`: asks to confirm (a POST, so mail scanners that
/// open links do not spend the token).
pub async fn verified_page(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    token_page(&portal, visit, "verified.html", query(q).token)
}

/// `POST /auth/ui/verified`: marks the address verified.
pub async fn verified(
    State(portal): State<Arc<Portal>>,
    visit: Visit,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return token_page(&portal, visit, "verified.html", None) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let api = portal.sessions.api().clone();
    let req = VerifyEmailRequest { token: SecretString::from(form.token) };
    let (status, title, text) =
        match verify_email::verify_email(State(api), RequestId(visit.request_id.clone()), ApiJson(req)).await {
            Ok(_) => (StatusCode::OK, "verify_title", "verified_done"),
            Err(e) => (e.status(), "error_title", error_key(&e)),
        };
    let page = portal.pages.message(status, visit.lang, title, text, "/", "continue");
    visit.finish(page)
}
