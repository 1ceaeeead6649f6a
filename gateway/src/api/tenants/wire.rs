//! Request and response bodies of the tenant-management endpoints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use shared::db::audit::Entry;
use shared::db::domain_claims::Claim;
use shared::db::invitations::Invitation;
use shared::db::memberships::Member;
use shared::db::tenants::Tenant;
use shared::domain::{Email, Role, Slug};
use utoipa::{IntoParams, ToSchema};

/// `POST /auth/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Display name (1..=100 characters, no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: String,
    /// Wanted slug (`a-z0-9-`, 3..=63, not reserved); derived from the name when
    /// absent.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    pub slug: Option<String>,
    /// Custom domain: opens a claim, which routes once verified.
    #[schema(format = "hostname", max_length = 253)]
    pub domain: Option<String>,
}

/// `PATCH /auth/tenants/{id}`: absent fields stay; `"domain": null` removes it. At
/// least one change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// New display name (1..=100 characters, no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub name: Option<String>,
    /// A new custom domain (opens a claim), or null to remove the domain and any
    /// claim.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = "hostname", max_length = 253)]
    pub domain: Option<Option<String>>,
    /// New settings object (replaces the old one); its text may not hold U+0000.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A tenant with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tenant)]
pub struct TenantDetail {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Slug.
    #[schema(value_type = String)]
    pub slug: Slug,
    /// Custom domain (verified: the proxy routes it), or null.
    #[schema(required = true)]
    pub domain: Option<String>,
    /// A domain asked for and not yet proven, with its DNS challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_domain: Option<PendingDomain>,
    /// Whether its traffic is served.
    pub is_active: bool,
    /// Free-form settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The caller's role.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: Role,
}

/// A claimed domain and what to publish to prove it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingDomain {
    /// The domain.
    pub domain: String,
    /// The TXT record's name (`_tenantgate.<domain>`).
    pub txt_name: String,
    /// The value it must hold.
    pub txt_value: String,
    /// When the claim was made.
    pub created_at: DateTime<Utc>,
    /// When DNS was last asked, or null.
    #[schema(required = true)]
    pub last_checked_at: Option<DateTime<Utc>>,
    /// What the last check found wanting, or null.
    #[schema(required = true)]
    pub last_error: Option<String>,
}

impl From<&Claim> for PendingDomain {
    fn from(c: &Claim) -> PendingDomain {
        PendingDomain {
            domain: c.domain.to_string(),
            txt_name: c.txt_name(),
            txt_value: c.token.clone(),
            created_at: c.created_at,
            last_checked_at: c.last_checked_at,
            last_error: c.last_error.clone(),
        }
    }
}

impl TenantDetail {
    /// `tenant` as seen by a caller holding `role`, with its open domain claim.
    pub fn new(tenant: Tenant, role: Role, claim: Option<&Claim>) -> TenantDetail {
        TenantDetail {
            id: tenant.id.to_string(),
            name: tenant.name,
            slug: tenant.slug,
            domain: tenant.domain,
            pending_domain: claim.map(PendingDomain::from),
            is_active: tenant.is_active,
            settings: tenant.settings,
            created_at: tenant.created_at,
            role,
        }
    }
}

/// `{"tenant": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantEnvelope {
    /// The tenant.
    pub tenant: TenantDetail,
}

/// `?limit=&offset=` of the members list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..=100 (50 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Rows to skip (0 by default).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// One member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Member)]
pub struct MemberBody {
    /// The user's id.
    #[schema(format = Uuid)]
    pub user_id: String,
    /// Their address.
    #[schema(value_type = String, format = "email")]
    pub email: Email,
    /// Their display name.
    pub name: String,
    /// Their role.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberBody {
    fn from(m: Member) -> MemberBody {
        MemberBody {
            user_id: m.user_id.to_string(),
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

/// `{"member": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberEnvelope {
    /// The member.
    pub member: MemberBody,
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersPage {
    /// Strongest role first, then by join time.
    pub members: Vec<MemberBody>,
    /// Members in all pages.
    pub total: i64,
    /// The page size used.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// `PATCH /auth/tenants/{id}/members/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The new role.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: String,
}

/// `POST /auth/tenants/{id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Who to invite.
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// The role they get on accepting.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: String,
}

/// An invitation as admins see it (never its token, which only the email carries).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Invitation)]
pub struct InvitationBody {
    /// Id.
    pub id: uuid::Uuid,
    /// The invited address.
    #[schema(value_type = String, format = "email")]
    pub email: Email,
    /// The role on acceptance.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: Role,
    /// `pending`, `accepted`, `revoked` or `expired`.
    #[schema(value_type = String, example = "pending")]
    pub status: &'static str,
    /// Who invited, or null (their account is gone).
    #[schema(required = true)]
    pub invited_by: Option<uuid::Uuid>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&Invitation> for InvitationBody {
    fn from(i: &Invitation) -> InvitationBody {
        InvitationBody {
            id: i.id,
            email: i.email.clone(),
            role: i.role,
            status: i.status(Utc::now()).as_str(),
            invited_by: i.invited_by,
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

/// `{"invitation": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationEnvelope {
    /// The invitation.
    pub invitation: InvitationBody,
}

/// `{"invitations": [...]}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Invitations)]
pub struct InvitationsBody {
    /// The invitations.
    pub invitations: Vec<InvitationBody>,
}

/// `POST /auth/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptRequest {
    /// The token from the email.
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{43}$")]
    pub token: secrecy::SecretString,
}

/// `?limit=&before=` of the audit list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1..=100 (50 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Only entries older than this id (the previous page's `nextBefore`).
    pub before: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
pub struct AuditEntryBody {
    /// Id (monotonic).
    pub id: i64,
    /// Who acted, or null.
    #[schema(required = true)]
    pub actor_id: Option<uuid::Uuid>,
    /// What happened (`member.role_changed`...).
    pub action: String,
    /// To what (`user:<id>`...), or null.
    #[schema(required = true)]
    pub target: Option<String>,
    /// Before/after values and details.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The request that caused it, or null.
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<Entry> for AuditEntryBody {
    fn from(e: Entry) -> AuditEntryBody {
        AuditEntryBody {
            id: e.id,
            actor_id: e.actor_id,
            action: e.action,
            target: e.target,
            metadata: e.metadata,
            request_id: e.request_id,
            at: e.at,
        }
    }
}

/// A page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// `POST /auth/tenants/{id}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateApiKeyRequest {
    /// What the key is for (1..=100 characters, no control characters).
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", example = "CI deploys")]
    pub name: String,
    /// Its role in the tenant: at most the caller's.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: String,
    /// When it stops working (RFC 3339, in the future, within ten years); never
    /// when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as admins see it: never the key itself, which only the create
/// answer carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
pub struct ApiKeyBody {
    /// Id (`X-Api-Key-Id` on the requests it makes).
    pub id: uuid::Uuid,
    /// The key's public part: it starts `tgk_<publicId>_`.
    #[schema(example = "Xq3bT9kLm2Pa")]
    pub public_id: String,
    /// What it is for.
    pub name: String,
    /// Its role in the tenant.
    #[schema(schema_with = crate::api::openapi::role)]
    pub role: Role,
    /// `active`, `revoked` or `expired`.
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
    /// Who made it, or null (their account is gone).
    #[schema(required = true)]
    pub created_by: Option<uuid::Uuid>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, or null (never).
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Its last request, to within a minute, or null (never used).
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, or null.
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyBody {
    /// The listing of `key` at `now`.
    pub fn new(key: &shared::db::api_keys::ApiKey, now: DateTime<Utc>) -> ApiKeyBody {
        let status = match (key.revoked_at, key.is_live(now)) {
            (Some(_), _) => "revoked",
            (None, false) => "expired",
            (None, true) => "active",
        };
        ApiKeyBody {
            id: key.id.as_uuid(),
            public_id: key.public_id.clone(),
            name: key.name.as_str().to_owned(),
            role: key.role,
            status,
            created_by: key.created_by,
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// `201` of `POST /auth/tenants/{id}/api-keys`: the key, this once, and its listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    /// `tgk_<publicId>_<secret>`: send it as `Authorization: Bearer` or
    /// `X-Api-Key`. Shown only here; store it now.
    #[schema(pattern = r"^tgk_[A-Za-z0-9]{12}_[A-Za-z0-9]{43}$")]
    pub key: String,
    /// The key as listings show it.
    pub api_key: ApiKeyBody,
}

/// `{"apiKeys": [...]}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKeys)]
pub struct ApiKeysBody {
    /// The keys.
    pub api_keys: Vec<ApiKeyBody>,
}
