//! Who may do what to whom inside a tenant: pure functions of roles, so every rule
//! is tested exhaustively without a database. Handlers call them with the tenant
//! row locked, so the owner count they pass cannot change underneath.

use shared::domain::Role;

use crate::api::error::{ApiError, ErrorCode};

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The actor's role is below what the action needs.
    InsufficientRole(Role),
    /// Only an owner grants, changes or removes `owner`.
    OwnerRequired,
    /// Nobody raises their own role.
    CannotPromoteSelf,
    /// The change would leave the tenant without an owner.
    LastOwner,
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        match denied {
            Denied::InsufficientRole(needed) => ApiError::new(
                ErrorCode::InsufficientRole,
                format!("this needs the {} role or higher in the tenant", needed.as_str()),
            ),
            Denied::OwnerRequired => ErrorCode::OwnerRequired.into(),
            Denied::CannotPromoteSelf => ErrorCode::CannotPromoteSelf.into(),
            Denied::LastOwner => ErrorCode::LastOwner.into(),
        }
    }
}

/// The actor holds at least `needed`.
///
/// # Errors
/// [`Denied::InsufficientRole`].
pub fn require(actor: Role, needed: Role) -> Result<(), Denied> {
    if actor >= needed {
        Ok(())
    } else {
        Err(Denied::InsufficientRole(needed))
    }
}

/// Inviting someone as `role`: admins invite, only owners invite owners.
///
/// # Errors
/// Why not.
pub fn invite(actor: Role, role: Role) -> Result<(), Denied> {
    require(actor, Role::Admin)?;
    if role == Role::Owner && actor != Role::Owner {
        return Err(Denied::OwnerRequired);
    }
    Ok(())
}

/// Changing a member's role from `current` to `new`. `is_self` when the actor is
/// the member; `owners` is the tenant's owner count now. Anyone may lower their own
/// role (while an owner remains); everything else needs an admin, and anything
/// touching `owner` needs an owner.
///
/// # Errors
/// Why not.
pub fn change_role(actor: Role, is_self: bool, current: Role, new: Role, owners: i64) -> Result<(), Denied> {
    if is_self && new > current {
        return Err(Denied::CannotPromoteSelf);
    }
    if !is_self {
        require(actor, Role::Admin)?;
    }
    if (new == Role::Owner || current == Role::Owner) && new != current && actor != Role::Owner {
        return Err(Denied::OwnerRequired);
    }
    if current == Role::Owner && new != Role::Owner && owners <= 1 {
        return Err(Denied::LastOwner);
    }
    Ok(())
}

/// Removing a member whose role is `target`. `is_self` when the actor leaves;
/// `owners` is the tenant's owner count now.
///
/// # Errors
/// Why not.
pub fn remove(actor: Role, is_self: bool, target: Role, owners: i64) -> Result<(), Denied> {
    if !is_self {
        require(actor, Role::Admin)?;
        if target == Role::Owner && actor != Role::Owner {
            return Err(Denied::OwnerRequired);
        }
    }
    if target == Role::Owner && owners <= 1 {
        return Err(Denied::LastOwner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Admin, Member, Owner, Viewer};

    #[test]
    fn the_documented_cases() {
        assert_eq!(
            change_role(Admin, false, Member, Owner, 1),
            Err(Denied::OwnerRequired),
            "admin cannot make an owner"
        );
        assert_eq!(
            change_role(Admin, false, Owner, Admin, 2),
            Err(Denied::OwnerRequired),
            "admin cannot demote an owner"
        );
        assert_eq!(change_role(Owner, true, Owner, Admin, 1), Err(Denied::LastOwner), "the last owner stays");
        assert_eq!(change_role(Owner, true, Owner, Admin, 2), Ok(()), "one of two owners may step down");
        assert_eq!(change_role(Admin, false, Admin, Member, 1), Ok(()), "admins manage admins");
        assert_eq!(change_role(Admin, true, Admin, Owner, 1), Err(Denied::CannotPromoteSelf));
        assert_eq!(change_role(Member, false, Viewer, Member, 1), Err(Denied::InsufficientRole(Admin)));
        assert_eq!(change_role(Member, true, Member, Viewer, 1), Ok(()), "anyone may lower their own role");
        assert_eq!(remove(Owner, false, Owner, 1), Err(Denied::LastOwner), "the last owner cannot be removed");
        assert_eq!(remove(Admin, false, Owner, 2), Err(Denied::OwnerRequired));
        assert_eq!(remove(Viewer, true, Viewer, 1), Ok(()), "anyone may leave");
        assert_eq!(remove(Owner, true, Owner, 1), Err(Denied::LastOwner), "the last owner cannot leave");
        assert_eq!(invite(Admin, Owner), Err(Denied::OwnerRequired));
        assert_eq!(invite(Member, Viewer), Err(Denied::InsufficientRole(Admin)));
        assert_eq!(invite(Owner, Owner), Ok(()));
    }

    /// Every combination of actor, target and roles: an allowed change never leaves
    /// the tenant without an owner, never creates or removes an owner without an
    /// owner acting, never raises the actor, and needs an admin unless self-service.
    #[test]
    fn no_allowed_change_breaks_an_invariant() {
        for actor in Role::ALL {
            for is_self in [false, true] {
                for current in Role::ALL {
                    if is_self && current != actor {
                        continue; // acting on yourself: the target role is the actor's
                    }
                    for owners in 1..=3 {
                        for new in Role::ALL {
                            if change_role(actor, is_self, current, new, owners).is_err() {
                                continue;
                            }
                            let after = owners - i64::from(current == Owner) + i64::from(new == Owner);
                            assert!(after >= 1, "{actor:?} left no owner");
                            if current != new && (current == Owner || new == Owner) {
                                assert_eq!(actor, Owner, "{actor:?} changed an owner");
                            }
                            if is_self {
                                assert!(new <= current, "{actor:?} promoted themselves");
                            } else {
                                assert!(actor >= Admin, "{actor:?} managed someone else");
                            }
                        }
                        if remove(actor, is_self, current, owners).is_ok() {
                            assert!(current != Owner || owners >= 2, "{actor:?} removed the last owner");
                            assert!(is_self || actor >= Admin, "{actor:?} removed someone else");
                            assert!(current != Owner || is_self || actor == Owner, "{actor:?} removed an owner");
                        }
                    }
                }
            }
        }
    }
}
