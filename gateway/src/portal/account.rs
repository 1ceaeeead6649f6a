//! The signed-in pages: the tenant picker, invitations, logout (API keys: `api_keys`).

use shared::portal_paths as paths;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::db::memberships;
use shared::domain::Role;

use super::pages::{invalid_link, link_token, query, PageQuery, TokenForm};
use super::{context, encode, Portal, Visit};

/// `GET /auth/ui`: the picker when signed in, else the login page.
pub async fn index(State(portal): State<Arc<Portal>>, mut visit: Visit) -> Response {
    let location = if portal.signed_in(&mut visit).await.is_some() { paths::TENANTS } else { paths::LOGIN };
    visit.redirect(location)
}

/// To the login page, coming back to `here` afterwards.
pub(super) fn to_login(visit: Visit, here: &str) -> Response {
    visit.redirect(&format!("{}?return_to={}", paths::LOGIN, encode(here)))
}

/// `GET /auth/ui/tenants`: the user's tenants; the current one marked.
pub async fn tenants_page(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let return_to = portal.return_to(query(q).return_to.as_deref(), &visit);
    let Some(me) = portal.signed_in(&mut visit).await else {
        return to_login(visit, &format!("{}?return_to={}", paths::TENANTS, encode(&return_to)));
    };
    let tenants = match memberships::list_for_user(&portal.sessions.api().pool, me.user.id).await {
        Ok(tenants) => tenants,
        Err(e) => return trouble(&portal, visit, &e),
    };
    let mut ctx = context(&visit, &return_to);
    // Admins and owners get a link to the tenant's API keys.
    let list: Vec<Value> = tenants
        .iter()
        .map(|t| {
            let api_keys = (t.role >= Role::Admin).then(|| paths::api_keys(t.slug.as_str()));
            json!({"slug": t.slug, "name": t.name, "role": t.role.as_str(), "api_keys": api_keys})
        })
        .collect();
    if list.is_empty() {
        ctx.insert("notice".into(), Value::from(portal.pages.text(visit.lang, "no_tenants")));
    }
    ctx.insert("tenants".into(), Value::Array(list));
    let current = crate::web_session::cookies::read(&visit.headers, &portal.cookies.tenant).unwrap_or("").to_owned();
    ctx.insert("current".into(), Value::from(current));
    let page = portal.pages.page(StatusCode::OK, "tenants.html", visit.lang, ctx);
    visit.finish(page)
}

/// The picker's form.
#[derive(Deserialize)]
pub struct TenantForm {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /auth/ui/tenants`: remembers the chosen tenant (one of the user's) in the
/// tenant cookie and goes back.
pub async fn tenants(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    form: Result<Form<TenantForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return visit.redirect(paths::TENANTS) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let return_to = portal.return_to(Some(&form.return_to), &visit);
    let Some(me) = portal.signed_in(&mut visit).await else {
        return to_login(visit, &format!("{}?return_to={}", paths::TENANTS, encode(&return_to)));
    };
    let tenants = match memberships::list_for_user(&portal.sessions.api().pool, me.user.id).await {
        Ok(tenants) => tenants,
        Err(e) => return trouble(&portal, visit, &e),
    };
    let Some(chosen) = tenants.iter().find(|t| t.slug.as_str() == form.tenant) else {
        return visit.redirect(&format!("{}?return_to={}", paths::TENANTS, encode(&return_to)));
    };
    let host = visit.host_name().to_owned();
    visit.set_cookies.push(portal.cookies.tenant(&chosen.slug, &host));
    let location = portal.with_tenant(&return_to, &chosen.slug, &visit.host);
    visit.redirect(&location)
}

/// `GET /auth/ui/invitation?token=`: accept (signed in) or sign in first.
pub async fn invitation_page(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query(q).token) else { return invalid_link(&portal, visit) };
    let signed_in = portal.signed_in(&mut visit).await.is_some();
    let here = format!("{}?token={}", paths::INVITATION, encode(&token));
    let mut ctx = context(&visit, "/");
    ctx.insert("token_q".into(), Value::from(encode(&token)));
    ctx.insert("token".into(), Value::from(token));
    ctx.insert("signed_in".into(), Value::Bool(signed_in));
    ctx.insert("here_q".into(), Value::from(encode(&here)));
    let page = portal.pages.page(StatusCode::OK, "invitation.html", visit.lang, ctx);
    visit.finish(page)
}

/// `POST /auth/ui/invitation`: accepts through the API's
/// `POST /auth/invitations/accept {token}` with the user's access token, then
/// shows the tenant picker.
pub async fn invitation(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return visit.redirect(paths::LOGIN) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let here = format!("{}?token={}", paths::INVITATION, encode(&form.token));
    if portal.signed_in(&mut visit).await.is_none() {
        return to_login(visit, &here);
    }
    let body = json!({"token": form.token});
    let answer = portal.call_api(&visit, Method::POST, "/auth/invitations/accept", Some(&body)).await;
    let accepted = answer.status.is_success();
    if accepted {
        return visit.redirect(&format!("{}?accepted=1", paths::TENANTS));
    }
    let page = portal.pages.message(
        StatusCode::BAD_REQUEST,
        visit.lang,
        "invitation_title",
        "invalid_link",
        paths::TENANTS,
        "continue",
    );
    visit.finish(page)
}

/// `GET /auth/ui/logout`: asks to confirm (logging out is a POST).
pub async fn logout_page(State(portal): State<Arc<Portal>>, visit: Visit) -> Response {
    let ctx = context(&visit, "/");
    let page = portal.pages.page(StatusCode::OK, "logout.html", visit.lang, ctx);
    visit.finish(page)
}

/// The logout form.
#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /auth/ui/logout`: revokes the session behind the refresh cookie, clears
/// the cookies, and shows the login page.
pub async fn logout(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !visit.form_is_genuine(&portal, &csrf) {
        return portal.forged(visit);
    }
    if let Some(refresh) = crate::web_session::cookies::read(&visit.headers, &portal.cookies.refresh) {
        if let Err(e) = portal.sessions.end(refresh).await {
            return trouble(&portal, visit, &e);
        }
    }
    let host = visit.host_name().to_owned();
    visit.set_cookies.extend(portal.cookies.cleared(&host));
    visit.redirect(&format!("{}?signed_out=1", paths::LOGIN))
}

/// The "something went wrong" page for a failure on our side (already logged by
/// the error's conversion).
pub(super) fn trouble(portal: &Portal, visit: Visit, e: &dyn std::fmt::Debug) -> Response {
    tracing::warn!(error = ?e, request_id = %visit.request_id, "portal page failed");
    let page = portal.pages.message(
        StatusCode::SERVICE_UNAVAILABLE,
        visit.lang,
        "error_title",
        "error_generic",
        paths::LOGIN,
        "back_to_sign_in",
    );
    visit.finish(page)
}
