//! The API keys page: one tenant's keys for its owners and admins, a form to make
//! one and a Revoke button per active key. Every action is a call into the JSON
//! API (`/auth/tenants/{id}/api-keys`, through [`Portal::call_api`]), so parsing,
//! policy, cache invalidation and audit are the API's; the page only turns forms
//! into requests and answers into HTML.
//!
//! A new key is shown once, in the answer to the form that made it (200, never a
//! redirect, `Cache-Control: no-store` like every page): it never goes into a URL,
//! cookie or log, and no later page can show it again.

use shared::portal_paths as paths;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::db::memberships::{self, TenantMembership};
use shared::domain::{Role, Slug};
use uuid::Uuid;

use super::account::{to_login, trouble};
use super::{context, ApiAnswer, Portal, Visit};
use crate::error_code::ErrorCode;

/// The lifetimes the form offers, in days; or [`NEVER`].
const EXPIRY_DAYS: [i64; 3] = [30, 90, 365];
/// The form's value for a key that does not expire.
const NEVER: &str = "never";
/// What the form proposes: the least privilege, and a lifetime that forces a
/// rotation now and then.
const DEFAULT_ROLE: Role = Role::Viewer;
const DEFAULT_EXPIRY: &str = "90";

/// The create form.
#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Days (one of [`EXPIRY_DAYS`]) or [`NEVER`].
    #[serde(default)]
    expires: String,
    #[serde(default)]
    csrf: String,
}

/// A Revoke button's form.
#[derive(Deserialize)]
pub struct RevokeForm {
    /// The key's id.
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
}

/// The page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    /// Set after a revocation, to say so.
    revoked: Option<String>,
}

/// `active`, `revoked` or `expired`, as the API lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Revoked,
    Expired,
}

/// A key as the API lists it (`ApiKey` in the OpenAPI document).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    id: Uuid,
    public_id: String,
    name: String,
    role: Role,
    status: Status,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

/// `{"apiKeys": [...]}`, newest first.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    api_keys: Vec<Listed>,
}

/// The create answer: the key, this once.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    key: SecretString,
    api_key: Listed,
}

/// Why the page is not shown.
enum Refusal {
    /// Signed out: to the login page, back here afterwards.
    SignIn,
    /// No such tenant, or the user is not a member (the same answer, so nobody
    /// learns which tenants exist).
    NotFound,
    /// A member below admin.
    Forbidden,
    /// The database or the API failed.
    Trouble(String),
}

/// What the page shows besides the keys.
struct View {
    status: StatusCode,
    /// A string key of an error.
    error: Option<&'static str>,
    /// A string key of a notice.
    notice: Option<&'static str>,
    /// The form's values (kept after an error).
    name: String,
    role: String,
    expires: String,
    /// The key just made.
    created: Option<Created>,
}

impl View {
    fn new() -> View {
        View {
            status: StatusCode::OK,
            error: None,
            notice: None,
            name: String::new(),
            role: DEFAULT_ROLE.as_str().to_owned(),
            expires: DEFAULT_EXPIRY.to_owned(),
            created: None,
        }
    }

    fn error(status: StatusCode, error: &'static str) -> View {
        View { status, error: Some(error), ..View::new() }
    }

    /// The create form again with its values and `error`.
    fn form_again(form: CreateForm, status: StatusCode, error: &'static str) -> View {
        View { name: form.name, role: form.role, expires: form.expires, ..View::error(status, error) }
    }
}

/// `GET /auth/ui/tenants/{slug}/api-keys`: the keys, newest first, and the form.
pub async fn page(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    slug: Result<Path<String>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let Some(slug) = parse_slug(slug) else { return refuse(&portal, visit, None, Refusal::NotFound) };
    let tenant = match admin_of(&portal, &mut visit, &slug).await {
        Ok(tenant) => tenant,
        Err(refusal) => return refuse(&portal, visit, Some(&slug), refusal),
    };
    let mut view = View::new();
    if q.is_ok_and(|Query(q)| q.revoked.is_some()) {
        view.notice = Some("api_keys_revoked");
    }
    show(&portal, visit, &tenant, view).await
}

/// `POST /auth/ui/tenants/{slug}/api-keys`: makes a key through
/// `POST /auth/tenants/{id}/api-keys` and answers the page with the key shown
/// this once; or the form again with the API's refusal and the values kept.
pub async fn create(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    let Some(slug) = parse_slug(slug) else { return refuse(&portal, visit, None, Refusal::NotFound) };
    let Ok(Form(form)) = form else { return visit.redirect(&paths::api_keys(slug.as_str())) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let tenant = match admin_of(&portal, &mut visit, &slug).await {
        Ok(tenant) => tenant,
        Err(refusal) => return refuse(&portal, visit, Some(&slug), refusal),
    };
    // The role and the lifetime come from the page's own selects: a value they do
    // not offer is a bad form, answered here. What they mean (a role above the
    // caller's...) is the API's to judge.
    let (Ok(role), Some(days)) = (Role::parse(&form.role), expiry_days(&form.expires)) else {
        return show(&portal, visit, &tenant, View::form_again(form, StatusCode::BAD_REQUEST, "error_invalid")).await;
    };
    let mut body = json!({"name": form.name, "role": role.as_str()});
    if let Some(days) = days {
        body["expiresAt"] = Value::from((Utc::now() + Duration::days(days)).to_rfc3339());
    }
    let uri = format!("/auth/tenants/{}/api-keys", tenant.tenant_id);
    let answer = portal.call_api(&visit, Method::POST, &uri, Some(&body)).await;
    if answer.status == StatusCode::CREATED {
        return match serde_json::from_value::<Created>(answer.body) {
            Ok(created) => show(&portal, visit, &tenant, View { created: Some(created), ..View::new() }).await,
            Err(e) => trouble(&portal, visit, &format!("unreadable create answer: {e}")),
        };
    }
    // The form's only free field is the name, so an unreadable request is about it.
    let error = match refused(&answer) {
        Err(refusal) => return refuse(&portal, visit, Some(&slug), refusal),
        Ok(_) if answer.is(ErrorCode::InvalidRequest) => "api_keys_error_name",
        Ok(_) if answer.is(ErrorCode::ApiKeyRoleTooHigh) => "api_keys_error_role",
        Ok(key) => key,
    };
    show(&portal, visit, &tenant, View::form_again(form, answer.status, error)).await
}

/// `POST /auth/ui/tenants/{slug}/api-keys/revoke {key}`: revokes through
/// `DELETE /auth/tenants/{id}/api-keys/{key}` and goes back to the list (303);
/// or the list with the API's refusal.
pub async fn revoke(
    State(portal): State<Arc<Portal>>,
    mut visit: Visit,
    slug: Result<Path<String>, PathRejection>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    let Some(slug) = parse_slug(slug) else { return refuse(&portal, visit, None, Refusal::NotFound) };
    let Ok(Form(form)) = form else { return visit.redirect(&paths::api_keys(slug.as_str())) };
    if !visit.form_is_genuine(&portal, &form.csrf) {
        return portal.forged(visit);
    }
    let tenant = match admin_of(&portal, &mut visit, &slug).await {
        Ok(tenant) => tenant,
        Err(refusal) => return refuse(&portal, visit, Some(&slug), refusal),
    };
    let Ok(key) = Uuid::parse_str(&form.key) else {
        return show(&portal, visit, &tenant, View::error(StatusCode::NOT_FOUND, "api_keys_error_not_found")).await;
    };
    let uri = format!("/auth/tenants/{}/api-keys/{key}", tenant.tenant_id);
    let answer = portal.call_api(&visit, Method::DELETE, &uri, None).await;
    if answer.status.is_success() {
        return visit.redirect(&format!("{}?revoked=1", paths::api_keys(tenant.slug.as_str())));
    }
    let error = match refused(&answer) {
        Err(refusal) => return refuse(&portal, visit, Some(&slug), refusal),
        Ok(_) if answer.is(ErrorCode::ApiKeyNotFound) => "api_keys_error_not_found",
        Ok(_) if answer.is(ErrorCode::ApiKeyRoleTooHigh) => "api_keys_error_revoke_role",
        Ok(key) => key,
    };
    show(&portal, visit, &tenant, View::error(answer.status, error)).await
}

/// The form's lifetime: `Some(None)` for never, `Some(Some(days))` for one of
/// [`EXPIRY_DAYS`], `None` for anything else.
fn expiry_days(raw: &str) -> Option<Option<i64>> {
    if raw == NEVER {
        return Some(None);
    }
    EXPIRY_DAYS.iter().copied().find(|d| d.to_string() == raw).map(Some)
}

/// The URL's tenant slug; `None` when it is not one (no tenant has it).
fn parse_slug(raw: Result<Path<String>, PathRejection>) -> Option<Slug> {
    raw.ok().and_then(|Path(raw)| Slug::parse(&raw).ok())
}

/// The signed-in user's membership of the tenant `slug`, if they are an admin
/// or owner of it.
async fn admin_of(portal: &Portal, visit: &mut Visit, slug: &Slug) -> Result<TenantMembership, Refusal> {
    let me = portal.signed_in(visit).await.ok_or(Refusal::SignIn)?;
    let tenants = memberships::list_for_user(&portal.sessions.api().pool, me.user.id)
        .await
        .map_err(|e| Refusal::Trouble(format!("{e:?}")))?;
    let tenant = tenants.into_iter().find(|t| t.slug == *slug).ok_or(Refusal::NotFound)?;
    if tenant.role < Role::Admin {
        return Err(Refusal::Forbidden);
    }
    Ok(tenant)
}

/// An API refusal that ends the page (`Err`), or the string key of one to show on
/// it (`Ok`).
fn refused(answer: &ApiAnswer) -> Result<&'static str, Refusal> {
    if answer.is(ErrorCode::TenantNotFound) {
        Err(Refusal::NotFound)
    } else if answer.is(ErrorCode::InsufficientRole) {
        Err(Refusal::Forbidden)
    } else if answer.status.is_server_error() || answer.status == StatusCode::UNAUTHORIZED {
        Err(Refusal::Trouble(format!("API answered {} {}", answer.status, answer.body)))
    } else if answer.is(ErrorCode::TenantInactive) {
        Ok("api_keys_inactive")
    } else if answer.is(ErrorCode::RateLimited) {
        Ok("error_rate_limited")
    } else {
        Ok("error_invalid")
    }
}

/// The answer for a refusal on the page of `slug`.
fn refuse(portal: &Portal, visit: Visit, slug: Option<&Slug>, refusal: Refusal) -> Response {
    let (status, title, text, link, link_text) = match (refusal, slug) {
        (Refusal::SignIn, Some(slug)) => return to_login(visit, &paths::api_keys(slug.as_str())),
        (Refusal::SignIn, None) => return to_login(visit, paths::TENANTS),
        (Refusal::Trouble(e), _) => return trouble(portal, visit, &e),
        (Refusal::NotFound, _) => {
            (StatusCode::NOT_FOUND, "error_title", "not_found", paths::TENANTS, "back_to_tenants")
        }
        (Refusal::Forbidden, _) => {
            (StatusCode::FORBIDDEN, "api_keys_title", "api_keys_forbidden", paths::TENANTS, "back_to_tenants")
        }
    };
    let page = portal.pages.message(status, visit.lang, title, text, link, link_text);
    visit.finish(page)
}

/// Lists the tenant's keys through `GET /auth/tenants/{id}/api-keys` and answers
/// the page.
async fn show(portal: &Portal, visit: Visit, tenant: &TenantMembership, view: View) -> Response {
    let uri = format!("/auth/tenants/{}/api-keys", tenant.tenant_id);
    let answer = portal.call_api(&visit, Method::GET, &uri, None).await;
    if !answer.status.is_success() {
        return match refused(&answer) {
            Err(refusal) => refuse(portal, visit, Some(&tenant.slug), refusal),
            Ok(_) => trouble(portal, visit, &format!("API answered {} {}", answer.status, answer.body)),
        };
    }
    let listing = match serde_json::from_value::<Listing>(answer.body) {
        Ok(listing) => listing,
        Err(e) => return trouble(portal, visit, &format!("unreadable API key listing: {e}")),
    };
    let ctx = page_context(portal, &visit, tenant, &listing, &view);
    let page = portal.pages.page(view.status, "api_keys.html", visit.lang, ctx);
    visit.finish(page)
}

/// The template's context.
fn page_context(
    portal: &Portal,
    visit: &Visit,
    tenant: &TenantMembership,
    listing: &Listing,
    view: &View,
) -> serde_json::Map<String, Value> {
    let lang = visit.lang;
    let text = |key: &str| portal.pages.text(lang, key);
    let when = |at: Option<DateTime<Utc>>, none: &str| at.map_or_else(|| text(none), date);
    let keys: Vec<Value> = listing
        .api_keys
        .iter()
        .map(|k| {
            let status = match k.status {
                Status::Active => "active",
                Status::Revoked => "revoked",
                Status::Expired => "expired",
            };
            json!({
                "id": k.id,
                "name": k.name,
                "prefix": format!("tgk_{}_…", k.public_id),
                "role": text(&format!("role_{}", k.role.as_str())),
                "status": status,
                "status_label": text(&format!("api_keys_status_{status}")),
                "created": date(k.created_at),
                "expires": when(k.expires_at, "api_keys_never"),
                "last_used": when(k.last_used_at, "api_keys_never_used"),
                // The API lets nobody revoke a key above their own role.
                "revocable": k.status == Status::Active && k.role <= tenant.role,
            })
        })
        .collect();
    let roles: Vec<Value> = Role::ALL
        .iter()
        .filter(|r| **r <= tenant.role)
        .map(|r| {
            json!({"value": r.as_str(), "label": text(&format!("role_{}", r.as_str())), "selected": r.as_str() == view.role})
        })
        .collect();
    let mut expiries: Vec<Value> = EXPIRY_DAYS
        .iter()
        .map(|d| {
            let value = d.to_string();
            let label = text("api_keys_expires_days").replace("{days}", &value);
            json!({"value": value, "label": label, "selected": value == view.expires})
        })
        .collect();
    expiries.push(json!({"value": NEVER, "label": text("api_keys_never"), "selected": view.expires == NEVER}));

    let mut ctx = context(visit, "/");
    ctx.insert("wide".into(), Value::Bool(true));
    ctx.insert("tenant_name".into(), Value::from(tenant.name.as_str()));
    ctx.insert("active".into(), Value::Bool(tenant.is_active));
    ctx.insert("action".into(), Value::from(paths::api_keys(tenant.slug.as_str())));
    ctx.insert("revoke_action".into(), Value::from(paths::api_keys_revoke(tenant.slug.as_str())));
    ctx.insert("tenants_link".into(), Value::from(paths::TENANTS));
    ctx.insert("keys".into(), Value::Array(keys));
    ctx.insert("roles".into(), Value::Array(roles));
    ctx.insert("expiries".into(), Value::Array(expiries));
    ctx.insert("name".into(), Value::from(view.name.as_str()));
    if let Some(created) = &view.created {
        ctx.insert(
            "created".into(),
            json!({
                "key": created.key.expose_secret(),
                "name": created.api_key.name,
                "prefix": format!("tgk_{}_…", created.api_key.public_id),
            }),
        );
    }
    if let Some(error) = view.error {
        ctx.insert("error".into(), Value::from(text(error)));
    }
    let notice = view.notice.or((!tenant.is_active).then_some("api_keys_inactive"));
    if let Some(notice) = notice {
        ctx.insert("notice".into(), Value::from(text(notice)));
    }
    ctx
}

/// A moment as the page shows it (UTC, to the minute).
fn date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_offers_a_few_lifetimes_or_never() {
        assert_eq!(expiry_days("never"), Some(None));
        assert_eq!(expiry_days("30"), Some(Some(30)));
        assert_eq!(expiry_days("365"), Some(Some(365)));
        for bad in ["", "0", "31", "-30", " 30", "3660", "Never"] {
            assert_eq!(expiry_days(bad), None, "{bad:?}");
        }
        assert!(expiry_days(DEFAULT_EXPIRY).is_some());
    }

    #[test]
    fn a_url_that_names_no_valid_slug_is_no_tenant() {
        assert_eq!(parse_slug(Ok(Path("acme".into()))).map(|s| s.as_str().to_owned()).as_deref(), Some("acme"));
        assert!(parse_slug(Ok(Path("../x".into()))).is_none());
        assert!(parse_slug(Ok(Path(String::new()))).is_none());
    }
}
