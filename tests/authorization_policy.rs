//! The authorization policy as a table: every action, for each role, against a target
//! in the caller's own institution, in another institution, across all institutions,
//! and (for actions on an existing user) the caller themself.
//!
//! The expected decisions are written out by hand from the rules below, not derived
//! from the policy, so a change to the policy has to change this table too.
//!
//! Directory:
//! - WhoAmI, GetInstitution, ListInstitutions, GetSpecialist, SearchSpecialists:
//!   everyone.
//! - CreateInstitution: platform admins only.
//! - UpdateInstitution, ListUsers, CreateUser, UpdateUser, SetSpecialistProfile: admins
//!   of the target's institution and platform admins; across all institutions, only
//!   platform admins.
//! - GetUser: the user themself, admins of the user's institution, platform admins.
//!
//! Accounts (web console sign-in):
//! - SetPassword, CreateEnrollment: admins of the user's institution and platform
//!   admins (an admin may set their own, like any user of their institution).
//! - SignOut: everyone signed in.
//!
//! Scheduling, as far as it does not depend on a consultation's parties:
//! - GetAvailability, SearchSlots, ListConsultations, Watch: everyone (listings and
//!   events are narrowed to what the caller may see elsewhere).
//! - SetAvailability: a doctor for themself, admins of the doctor's institution,
//!   platform admins.
//! - BookConsultation, RequestUrgentConsultation: clinic staff, for their own
//!   institution; nobody else, not even platform admins.
//! - Actions on one consultation are decided by who takes part in it; without a
//!   consultation they are denied to everyone, which is all this table checks of them.

use std::collections::{HashMap, HashSet};

use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::{InstitutionId, UserId};
use teleconsult::domain::policy::{Action, Decision, Target, authorize};
use teleconsult::domain::principal::Principal;

/// Where the target is, seen from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum On {
    /// The caller's own institution (for actions on a user: a colleague).
    Own,
    /// Another institution (for actions on a user: someone there).
    Other,
    /// No institution in particular: across the whole directory.
    All,
    /// The caller themself.
    Myself,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}

use Expect::{Allow, Deny};
use On::{All, Myself, Other, Own};

struct Caller {
    user: &'static str,
    institution: &'static str,
    /// The institution an `Other` target belongs to.
    other: &'static str,
    role: Role,
}

/// The table's columns, in order.
const CALLERS: [Caller; 5] = [
    Caller {
        user: "biru-nurse-dawa",
        institution: "biru-county-hospital",
        other: "zju2-hospital",
        role: Role::ClinicStaff,
    },
    Caller {
        user: "zju2-cardio-chen",
        institution: "zju2-hospital",
        other: "biru-county-hospital",
        role: Role::Doctor,
    },
    Caller {
        user: "biru-interpreter-norbu",
        institution: "biru-county-hospital",
        other: "nagqu-peoples",
        role: Role::Interpreter,
    },
    Caller {
        user: "zju2-admin",
        institution: "zju2-hospital",
        other: "zj-provincial",
        role: Role::Admin,
    },
    Caller {
        user: "platform-admin",
        institution: "platform",
        other: "zju2-hospital",
        role: Role::Admin,
    },
];

/// One row per action and target; one column per caller, in the order of [`CALLERS`].
#[rustfmt::skip]
const TABLE: &[(Action, On, [Expect; 5])] = &[
    //                                         clinic doctor interp inst   platform
    //                                         staff                admin  admin
    (Action::WhoAmI,                    Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::WhoAmI,                    Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::WhoAmI,                    All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::GetInstitution,            Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetInstitution,            Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetInstitution,            All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::ListInstitutions,          Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::ListInstitutions,          Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::ListInstitutions,          All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::CreateInstitution,         Own,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::CreateInstitution,         Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::CreateInstitution,         All,    [Deny,  Deny,  Deny,  Deny,  Allow]),

    (Action::UpdateInstitution,         Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::UpdateInstitution,         Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::UpdateInstitution,         All,    [Deny,  Deny,  Deny,  Deny,  Allow]),

    (Action::GetUser,                   Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::GetUser,                   Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::GetUser,                   All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::GetUser,                   Myself, [Allow, Allow, Allow, Allow, Allow]),

    (Action::ListUsers,                 Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::ListUsers,                 Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::ListUsers,                 All,    [Deny,  Deny,  Deny,  Deny,  Allow]),

    (Action::CreateUser,                Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::CreateUser,                Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::CreateUser,                All,    [Deny,  Deny,  Deny,  Deny,  Allow]),

    (Action::UpdateUser,                Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::UpdateUser,                Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::UpdateUser,                All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::UpdateUser,                Myself, [Deny,  Deny,  Deny,  Allow, Allow]),

    (Action::SetSpecialistProfile,      Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::SetSpecialistProfile,      Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetSpecialistProfile,      All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetSpecialistProfile,      Myself, [Deny,  Deny,  Deny,  Allow, Allow]),

    (Action::GetSpecialist,             Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetSpecialist,             Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetSpecialist,             All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::SearchSpecialists,         Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::SearchSpecialists,         Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::SearchSpecialists,         All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::SetAvailability,           Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::SetAvailability,           Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetAvailability,           All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetAvailability,           Myself, [Deny,  Allow, Deny,  Allow, Allow]),

    (Action::GetAvailability,           Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetAvailability,           Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetAvailability,           All,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::GetAvailability,           Myself, [Allow, Allow, Allow, Allow, Allow]),

    (Action::SearchSlots,               Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::SearchSlots,               Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::SearchSlots,               All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::ListConsultations,         Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::ListConsultations,         Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::ListConsultations,         All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::Watch,                     Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::Watch,                     Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::Watch,                     All,    [Allow, Allow, Allow, Allow, Allow]),

    (Action::BookConsultation,          Own,    [Allow, Deny,  Deny,  Deny,  Deny]),
    (Action::BookConsultation,          Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::BookConsultation,          All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::RequestUrgentConsultation, Own,    [Allow, Deny,  Deny,  Deny,  Deny]),
    (Action::RequestUrgentConsultation, Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::RequestUrgentConsultation, All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::GetConsultation,           Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::GetConsultation,           Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::GetConsultation,           All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::AcceptConsultation,        Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::AcceptConsultation,        Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::AcceptConsultation,        All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::DeclineConsultation,       Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::DeclineConsultation,       Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::DeclineConsultation,       All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::CancelConsultation,        Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::CancelConsultation,        Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::CancelConsultation,        All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::RescheduleConsultation,    Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::RescheduleConsultation,    Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::RescheduleConsultation,    All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::RecordConsent,             Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::RecordConsent,             Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::RecordConsent,             All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::InviteParticipant,         Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::InviteParticipant,         Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::InviteParticipant,         All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::FileOpinion,               Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::FileOpinion,               Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::FileOpinion,               All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::SignOpinion,               Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::SignOpinion,               Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::SignOpinion,               All,    [Deny,  Deny,  Deny,  Deny,  Deny]),

    (Action::GetOpinion,                Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::GetOpinion,                Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::GetOpinion,                All,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::JoinSession,               Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::JoinSession,               Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::JoinSession,               All,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::EndSession,                Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::EndSession,                Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::EndSession,                All,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::AuditTimeline,             Own,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::AuditTimeline,             Other,  [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::AuditTimeline,             All,    [Deny,  Deny,  Deny,  Deny,  Deny]),
    (Action::QueryAudit,                Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::QueryAudit,                Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::QueryAudit,                All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::ExportAudit,               Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::ExportAudit,               Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::ExportAudit,               All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::VerifyAudit,               Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::VerifyAudit,               Other,  [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::VerifyAudit,               All,    [Deny,  Deny,  Deny,  Allow, Allow]),

    (Action::SetPassword,               Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::SetPassword,               Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetPassword,               All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::SetPassword,               Myself, [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::CreateEnrollment,          Own,    [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::CreateEnrollment,          Other,  [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::CreateEnrollment,          All,    [Deny,  Deny,  Deny,  Deny,  Allow]),
    (Action::CreateEnrollment,          Myself, [Deny,  Deny,  Deny,  Allow, Allow]),
    (Action::SignOut,                   Own,    [Allow, Allow, Allow, Allow, Allow]),
    (Action::SignOut,                   Other,  [Allow, Allow, Allow, Allow, Allow]),
    (Action::SignOut,                   All,    [Allow, Allow, Allow, Allow, Allow]),
];

/// What an action is applied to, which decides how its target is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppliesTo {
    /// An institution, or the directory as a whole.
    Institution,
    /// A user who does not exist yet (so never the caller).
    NewUser,
    /// An existing user, who may be the caller: these actions have a `Myself` row.
    User,
}

/// The match has no wildcard on purpose: a new `Action` stops this test compiling
/// until it is placed here, and then the coverage test asks for its rows.
fn applies(action: Action) -> AppliesTo {
    match action {
        Action::GetUser
        | Action::UpdateUser
        | Action::SetSpecialistProfile
        | Action::SetAvailability
        | Action::GetAvailability
        | Action::SetPassword
        | Action::CreateEnrollment => AppliesTo::User,
        Action::CreateUser => AppliesTo::NewUser,
        Action::WhoAmI
        | Action::GetInstitution
        | Action::ListInstitutions
        | Action::CreateInstitution
        | Action::UpdateInstitution
        | Action::ListUsers
        | Action::GetSpecialist
        | Action::SearchSpecialists
        | Action::SearchSlots
        | Action::ListConsultations
        | Action::Watch
        | Action::BookConsultation
        | Action::RequestUrgentConsultation
        | Action::GetConsultation
        | Action::AcceptConsultation
        | Action::DeclineConsultation
        | Action::CancelConsultation
        | Action::RescheduleConsultation
        | Action::RecordConsent
        | Action::InviteParticipant
        | Action::FileOpinion
        | Action::SignOpinion
        | Action::GetOpinion
        | Action::JoinSession
        | Action::EndSession
        | Action::AuditTimeline
        | Action::QueryAudit
        | Action::ExportAudit
        | Action::VerifyAudit
        | Action::SignOut => AppliesTo::Institution,
    }
}

fn institution(id: &str) -> InstitutionId {
    InstitutionId::parse(id).unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn principal(caller: &Caller) -> Principal {
    Principal {
        user: user(caller.user),
        institution: institution(caller.institution),
        role: caller.role,
        certificate_fingerprint: "00".repeat(32),
        // What the gate loads for doctors; only decisions on a consultation use it.
        specialties: Vec::new(),
        on_call: false,
    }
}

/// The target a handler would build for `action` applied `on` something, seen from
/// `caller`.
fn target(caller: &Caller, action: Action, on: On) -> Target {
    let in_institution = |id: &str| {
        if applies(action) != AppliesTo::Institution {
            // Someone other than the caller, so that only the institution decides.
            Target::user(&user("someone-else"), &institution(id))
        } else {
            Target::institution(&institution(id))
        }
    };
    match on {
        Own => in_institution(caller.institution),
        Other => in_institution(caller.other),
        All => Target::none(),
        Myself => Target::user(&user(caller.user), &institution(caller.institution)),
    }
}

#[test]
fn the_table_has_exactly_one_row_per_action_and_target() {
    let mut rows: HashMap<Action, Vec<On>> = HashMap::new();
    for &(action, on, _) in TABLE {
        rows.entry(action).or_default().push(on);
    }

    let in_table: HashSet<Action> = rows.keys().copied().collect();
    let all: HashSet<Action> = Action::ALL.into_iter().collect();
    assert_eq!(
        all.len(),
        Action::ALL.len(),
        "Action::ALL lists an action twice"
    );
    let missing: Vec<_> = all.difference(&in_table).collect();
    let unknown: Vec<_> = in_table.difference(&all).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the table and Action::ALL disagree: without rows {missing:?}, not in ALL {unknown:?}"
    );

    for action in Action::ALL {
        let mut expected = vec![Own, Other, All];
        if applies(action) == AppliesTo::User {
            expected.push(Myself);
        }
        assert_eq!(
            rows[&action], expected,
            "{action:?} needs exactly one row for each of {expected:?}, in that order"
        );
    }
}

#[test]
fn every_action_is_decided_as_the_table_says() {
    let mut wrong = Vec::new();
    for &(action, on, expected) in TABLE {
        for (caller, &expected) in CALLERS.iter().zip(expected.iter()) {
            let decision = authorize(&principal(caller), action, &target(caller, action, on));
            let actual = match &decision {
                Decision::Allow => Allow,
                Decision::Deny(_) => Deny,
            };
            if actual != expected {
                wrong.push(format!(
                    "{action:?} on {on:?} by {} ({}): expected {expected:?}, got {decision:?}",
                    caller.user, caller.role
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} decisions differ from the table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_denial_says_why() {
    for &(action, on, _) in TABLE {
        for caller in &CALLERS {
            if let Decision::Deny(reason) =
                authorize(&principal(caller), action, &target(caller, action, on))
            {
                assert!(
                    !reason.trim().is_empty(),
                    "{action:?} on {on:?} by {} is denied without a reason",
                    caller.user
                );
            }
        }
    }
}

/// An admin's power comes from the role and the institution together: a principal who
/// belongs to the platform institution but is not an admin is treated like any other
/// doctor, and an inviting institution's admin is bound to it like a consulting one's.
#[test]
fn admin_rights_need_both_the_role_and_the_institution() {
    let platform_doctor = Caller {
        user: "platform-doctor",
        institution: "platform",
        other: "zju2-hospital",
        role: Role::Doctor,
    };
    let biru_admin = Caller {
        user: "biru-admin",
        institution: "biru-county-hospital",
        other: "nagqu-peoples",
        role: Role::Admin,
    };
    for &(action, on, expected) in TABLE {
        // The doctor column: no admin rights at all.
        let decision = authorize(
            &principal(&platform_doctor),
            action,
            &target(&platform_doctor, action, on),
        );
        assert_eq!(
            decision.is_allowed(),
            expected[1] == Allow,
            "{action:?} on {on:?} by a doctor of the platform: {decision:?}"
        );
        // The institution admin column.
        let decision = authorize(
            &principal(&biru_admin),
            action,
            &target(&biru_admin, action, on),
        );
        assert_eq!(
            decision.is_allowed(),
            expected[3] == Allow,
            "{action:?} on {on:?} by the admin of an inviting institution: {decision:?}"
        );
    }
}
