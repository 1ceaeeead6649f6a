//! Request and response bodies of the tenant-management endpoints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use shared::db::audit::Entry;
use shared::db::domain_claims::Claim;
use shared::db::invitations::Invitation;
use shared::db::memberships::Member;
use shared::db::tenants::Tenant;
use shared::domain::{Email, Role, Slug};

/// `POST /auth/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Display name.
    pub name: String,
    /// Wanted slug; derived from the name when absent.
    pub slug: Option<String>,
    /// Custom domain.
    pub domain: Option<String>,
}

/// `PATCH /auth/tenants/{id}`: absent fields stay; `"domain": null` removes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantRequest {
    /// New display name.
    pub name: Option<String>,
    /// `Some(None)` when the body says `"domain": null`.
    #[serde(default, deserialize_with = "present")]
    pub domain: Option<Option<String>>,
    /// New settings object (replaces the old one).
    pub settings: Option<serde_json::Value>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A tenant with the caller's role in it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantDetail {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: Slug,
    /// Custom domain (verified: the proxy routes it).
    pub domain: Option<String>,
    /// A domain asked for and not yet proven, with its DNS challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_domain: Option<PendingDomain>,
    /// Whether its traffic is served.
    pub is_active: bool,
    /// Free-form settings.
    pub settings: serde_json::Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The caller's role.
    pub role: Role,
}

/// A claimed domain and what to publish to prove it.
#[derive(Debug, Serialize)]
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
    /// When DNS was last asked, and what it lacked.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// What the last check found wanting.
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
#[derive(Debug, Serialize)]
pub struct TenantEnvelope {
    /// The tenant.
    pub tenant: TenantDetail,
}

/// `?limit=&offset=` of the members list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1..=100 (50 by default).
    pub limit: Option<i64>,
    /// Rows to skip (0 by default).
    pub offset: Option<i64>,
}

/// One member.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberBody {
    /// The user's id.
    pub user_id: String,
    /// Their address.
    pub email: Email,
    /// Their display name.
    pub name: String,
    /// Their role.
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
#[derive(Debug, Serialize)]
pub struct MemberEnvelope {
    /// The member.
    pub member: MemberBody,
}

/// A page of members.
#[derive(Debug, Serialize)]
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

/// `PATCH /auth/tenants/{id}/members/{userId}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The new role.
    pub role: String,
}

/// `POST /auth/tenants/{id}/invitations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Who to invite.
    pub email: String,
    /// The role they get on accepting.
    pub role: String,
}

/// An invitation as admins see it (never its token, which only the email carries).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationBody {
    /// Id.
    pub id: uuid::Uuid,
    /// The invited address.
    pub email: Email,
    /// The role on acceptance.
    pub role: Role,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: &'static str,
    /// Who invited.
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
#[derive(Debug, Serialize)]
pub struct InvitationEnvelope {
    /// The invitation.
    pub invitation: InvitationBody,
}

/// `{"invitations": [...]}`, newest first.
#[derive(Debug, Serialize)]
pub struct InvitationsBody {
    /// The invitations.
    pub invitations: Vec<InvitationBody>,
}

/// `POST /auth/invitations/accept`.
#[derive(Debug, Deserialize)]
pub struct AcceptRequest {
    /// The token from the email.
    pub token: secrecy::SecretString,
}

/// `?limit=&before=` of the audit list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Page size, 1..=100 (50 by default).
    pub limit: Option<i64>,
    /// Only entries older than this id (the previous page's `nextBefore`).
    pub before: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryBody {
    /// Id (monotonic).
    pub id: i64,
    /// Who acted.
    pub actor_id: Option<uuid::Uuid>,
    /// What happened (`member.role_changed`...).
    pub action: String,
    /// To what (`user:<id>`...).
    pub target: Option<String>,
    /// Before/after values and details.
    pub metadata: serde_json::Value,
    /// The request that caused it.
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
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}
