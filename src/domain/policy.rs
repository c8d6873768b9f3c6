//! Authorization: a pure function of (principal, action, target).
//!
//! Every handler asks [`authorize`] before it touches the store; the table test in
//! `tests/authorization.rs` exercises every RPC for every role against its own and
//! another institution.

use super::directory::Role;
use super::ids::{InstitutionId, UserId};
use super::principal::Principal;

/// Everything a caller can ask the broker to do, one per RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    WhoAmI,
    GetInstitution,
    ListInstitutions,
    CreateInstitution,
    UpdateInstitution,
    GetUser,
    ListUsers,
    CreateUser,
    UpdateUser,
    SetSpecialistProfile,
    GetSpecialist,
    SearchSpecialists,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::WhoAmI,
        Action::GetInstitution,
        Action::ListInstitutions,
        Action::CreateInstitution,
        Action::UpdateInstitution,
        Action::GetUser,
        Action::ListUsers,
        Action::CreateUser,
        Action::UpdateUser,
        Action::SetSpecialistProfile,
        Action::GetSpecialist,
        Action::SearchSpecialists,
    ];

    /// The name recorded in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Action::WhoAmI => "directory.who_am_i",
            Action::GetInstitution => "directory.get_institution",
            Action::ListInstitutions => "directory.list_institutions",
            Action::CreateInstitution => "directory.create_institution",
            Action::UpdateInstitution => "directory.update_institution",
            Action::GetUser => "directory.get_user",
            Action::ListUsers => "directory.list_users",
            Action::CreateUser => "directory.create_user",
            Action::UpdateUser => "directory.update_user",
            Action::SetSpecialistProfile => "directory.set_specialist_profile",
            Action::GetSpecialist => "directory.get_specialist",
            Action::SearchSpecialists => "directory.search_specialists",
        }
    }

    /// Whether the action changes state. Reads that are allowed are not audited, so
    /// that the log records changes and refusals rather than every directory lookup.
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            Action::CreateInstitution
                | Action::UpdateInstitution
                | Action::CreateUser
                | Action::UpdateUser
                | Action::SetSpecialistProfile
        )
    }
}

/// What an action is applied to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The institution the target belongs to; `None` means every institution (a listing
    /// across the whole directory) or nothing in particular.
    pub institution: Option<InstitutionId>,
    /// The user the target is, when it is a user.
    pub user: Option<UserId>,
}

impl Target {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn institution(id: &InstitutionId) -> Self {
        Self {
            institution: Some(id.clone()),
            user: None,
        }
    }

    pub fn user(id: &UserId, institution: &InstitutionId) -> Self {
        Self {
            institution: Some(institution.clone()),
            user: Some(id.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

fn deny(reason: impl Into<String>) -> Decision {
    Decision::Deny(reason.into())
}

fn allow_if(condition: bool, reason: impl FnOnce() -> String) -> Decision {
    if condition {
        Decision::Allow
    } else {
        Decision::Deny(reason())
    }
}

/// Admins of the target's institution, and platform admins everywhere.
fn institution_admin(principal: &Principal, target: &Target) -> Decision {
    if principal.role != Role::Admin {
        return deny(format!("a {} cannot manage the directory", principal.role));
    }
    match &target.institution {
        Some(institution) => allow_if(principal.is_admin_of(institution), || {
            format!(
                "an admin of {} cannot manage institution {}",
                principal.institution, institution
            )
        }),
        None => allow_if(principal.is_platform_admin(), || {
            "only platform admins act across all institutions".to_owned()
        }),
    }
}

pub fn authorize(principal: &Principal, action: Action, target: &Target) -> Decision {
    match action {
        // The directory's public face: every authenticated user can look up
        // institutions and find specialists.
        Action::WhoAmI
        | Action::GetInstitution
        | Action::ListInstitutions
        | Action::GetSpecialist
        | Action::SearchSpecialists => Decision::Allow,

        Action::CreateInstitution => allow_if(principal.is_platform_admin(), || {
            "only platform admins create institutions".to_owned()
        }),

        Action::UpdateInstitution
        | Action::ListUsers
        | Action::CreateUser
        | Action::UpdateUser
        | Action::SetSpecialistProfile => institution_admin(principal, target),

        // Users see themselves; admins see the users they manage.
        Action::GetUser => {
            if target.user.as_ref() == Some(&principal.user) {
                Decision::Allow
            } else {
                institution_admin(principal, target)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, institution: &str) -> Principal {
        Principal {
            user: UserId::parse("someone").unwrap(),
            institution: InstitutionId::parse(institution).unwrap(),
            role,
            certificate_fingerprint: String::new(),
        }
    }

    #[test]
    fn platform_admin_acts_everywhere() {
        let admin = principal(Role::Admin, "platform");
        let elsewhere = Target::institution(&InstitutionId::parse("zju2").unwrap());
        for action in Action::ALL {
            assert!(
                authorize(&admin, action, &elsewhere).is_allowed(),
                "{action:?}"
            );
            assert!(
                authorize(&admin, action, &Target::none()).is_allowed(),
                "{action:?}"
            );
        }
    }

    #[test]
    fn institution_admin_cannot_list_everyone() {
        let admin = principal(Role::Admin, "zju2");
        assert!(!authorize(&admin, Action::ListUsers, &Target::none()).is_allowed());
    }

    #[test]
    fn users_see_themselves() {
        let nurse = principal(Role::ClinicStaff, "biru");
        let me = Target::user(&nurse.user, &nurse.institution);
        assert!(authorize(&nurse, Action::GetUser, &me).is_allowed());
        let colleague = Target::user(&UserId::parse("other").unwrap(), &nurse.institution);
        assert!(!authorize(&nurse, Action::GetUser, &colleague).is_allowed());
    }
}
