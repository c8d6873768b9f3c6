//! Authorization: a pure function of (principal, action, target).
//!
//! Every handler asks [`authorize`] before it touches the store; the table tests in
//! `tests/authorization_policy.rs` and `tests/api/authorization.rs` exercise every RPC
//! for every role against its own and another institution.

use super::consultation::{Consultation, ConsultationState, Urgency};
use super::directory::Role;
use super::ids::{InstitutionId, Specialty, UserId};
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
    SetAvailability,
    GetAvailability,
    SearchSlots,
    BookConsultation,
    RequestUrgentConsultation,
    GetConsultation,
    ListConsultations,
    AcceptConsultation,
    DeclineConsultation,
    CancelConsultation,
    RescheduleConsultation,
    RecordConsent,
    InviteParticipant,
    FileOpinion,
    SignOpinion,
    GetOpinion,
    Watch,
    JoinSession,
    EndSession,
    AuditTimeline,
    QueryAudit,
    ExportAudit,
    VerifyAudit,
    SetPassword,
    CreateEnrollment,
    SignOut,
}

impl Action {
    pub const ALL: [Action; 38] = [
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
        Action::SetAvailability,
        Action::GetAvailability,
        Action::SearchSlots,
        Action::BookConsultation,
        Action::RequestUrgentConsultation,
        Action::GetConsultation,
        Action::ListConsultations,
        Action::AcceptConsultation,
        Action::DeclineConsultation,
        Action::CancelConsultation,
        Action::RescheduleConsultation,
        Action::RecordConsent,
        Action::InviteParticipant,
        Action::FileOpinion,
        Action::SignOpinion,
        Action::GetOpinion,
        Action::Watch,
        Action::JoinSession,
        Action::EndSession,
        Action::AuditTimeline,
        Action::QueryAudit,
        Action::ExportAudit,
        Action::VerifyAudit,
        Action::SetPassword,
        Action::CreateEnrollment,
        Action::SignOut,
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
            Action::SetAvailability => "scheduling.set_availability",
            Action::GetAvailability => "scheduling.get_availability",
            Action::SearchSlots => "scheduling.search_slots",
            Action::BookConsultation => "scheduling.book_consultation",
            Action::RequestUrgentConsultation => "scheduling.request_urgent_consultation",
            Action::GetConsultation => "scheduling.get_consultation",
            Action::ListConsultations => "scheduling.list_consultations",
            Action::AcceptConsultation => "scheduling.accept_consultation",
            Action::DeclineConsultation => "scheduling.decline_consultation",
            Action::CancelConsultation => "scheduling.cancel_consultation",
            Action::RescheduleConsultation => "scheduling.reschedule_consultation",
            Action::RecordConsent => "scheduling.record_consent",
            Action::InviteParticipant => "scheduling.invite_participant",
            Action::FileOpinion => "scheduling.file_opinion",
            Action::SignOpinion => "scheduling.sign_opinion",
            Action::GetOpinion => "scheduling.get_opinion",
            Action::Watch => "scheduling.watch",
            Action::JoinSession => "session.join",
            Action::EndSession => "session.end",
            Action::AuditTimeline => "audit.timeline",
            Action::QueryAudit => "audit.query",
            Action::ExportAudit => "audit.export",
            Action::VerifyAudit => "audit.verify",
            Action::SetPassword => "account.set_password",
            Action::CreateEnrollment => "account.create_enrollment",
            Action::SignOut => "account.sign_out",
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
                | Action::SetAvailability
                | Action::BookConsultation
                | Action::RequestUrgentConsultation
                | Action::AcceptConsultation
                | Action::DeclineConsultation
                | Action::CancelConsultation
                | Action::RescheduleConsultation
                | Action::RecordConsent
                | Action::InviteParticipant
                | Action::FileOpinion
                | Action::SignOpinion
                | Action::JoinSession
                | Action::EndSession
                | Action::SetPassword
                | Action::CreateEnrollment
                | Action::SignOut
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
    /// Who takes part in the consultation the target is, when it is one.
    pub consultation: Option<Parties>,
}

/// What the policy needs to know of a consultation: who is on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    pub inviting_institution: InstitutionId,
    pub consulting_institution: Option<InstitutionId>,
    pub doctor: Option<UserId>,
    pub additional_doctors: Vec<UserId>,
    pub interpreters: Vec<UserId>,
    pub specialty: Specialty,
    /// Which doctors an unanswered urgent request is offered to.
    pub pool: Option<Pool>,
    /// An urgent request another doctor has already taken.
    pub urgent_taken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The on-call doctors of the specialty.
    OnCall,
    /// Escalated: every doctor of the specialty.
    AllOfSpecialty,
}

impl Parties {
    pub fn of(consultation: &Consultation) -> Self {
        let pool = match (consultation.urgency, consultation.state) {
            (Urgency::Urgent, ConsultationState::Requested) => Some(Pool::OnCall),
            (Urgency::Urgent, ConsultationState::Escalated) => Some(Pool::AllOfSpecialty),
            _ => None,
        };
        Self {
            inviting_institution: consultation.inviting_institution.clone(),
            consulting_institution: consultation.consulting_institution.clone(),
            doctor: consultation.doctor.clone(),
            additional_doctors: consultation.invitees.additional_doctors.clone(),
            interpreters: consultation.invitees.interpreters.clone(),
            specialty: consultation.specialty.clone(),
            pool,
            urgent_taken: consultation.urgency == Urgency::Urgent
                && !consultation.state.is_pending(),
        }
    }
}

impl Target {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn institution(id: &InstitutionId) -> Self {
        Self {
            institution: Some(id.clone()),
            ..Self::default()
        }
    }

    pub fn user(id: &UserId, institution: &InstitutionId) -> Self {
        Self {
            institution: Some(institution.clone()),
            user: Some(id.clone()),
            consultation: None,
        }
    }

    pub fn consultation(consultation: &Consultation) -> Self {
        Self {
            institution: Some(consultation.inviting_institution.clone()),
            user: None,
            consultation: Some(Parties::of(consultation)),
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
        return deny(format!(
            "a {} cannot do this: it is for admins",
            principal.role
        ));
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

/// How the caller stands to a consultation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Clinic staff of the inviting institution.
    pub clinic_side: bool,
    pub assigned_doctor: bool,
    pub additional_doctor: bool,
    pub interpreter: bool,
    /// A doctor the unanswered urgent request is offered to.
    pub pool_doctor: bool,
    /// A doctor of the specialty of an urgent request someone else has taken: they may
    /// still try to accept it, and learn that it is taken.
    pub late_pool_doctor: bool,
    /// An admin of either institution, or a platform admin.
    pub admin: bool,
}

impl Standing {
    pub fn of(principal: &Principal, parties: &Parties) -> Self {
        let me = Some(&principal.user);
        let doctor = principal.role == Role::Doctor;
        let pool_doctor = doctor
            && principal.specialties.contains(&parties.specialty)
            && match parties.pool {
                Some(Pool::OnCall) => principal.on_call,
                Some(Pool::AllOfSpecialty) => true,
                None => false,
            };
        Self {
            clinic_side: principal.role == Role::ClinicStaff
                && principal.institution == parties.inviting_institution,
            assigned_doctor: doctor && parties.doctor.as_ref() == me,
            additional_doctor: doctor && parties.additional_doctors.contains(&principal.user),
            interpreter: principal.role == Role::Interpreter
                && parties.interpreters.contains(&principal.user),
            pool_doctor,
            late_pool_doctor: doctor
                && parties.urgent_taken
                && principal.specialties.contains(&parties.specialty),
            admin: principal.is_admin_of(&parties.inviting_institution)
                || parties
                    .consulting_institution
                    .as_ref()
                    .is_some_and(|institution| principal.is_admin_of(institution)),
        }
    }

    /// Everyone who may see the consultation: its parties, the doctors it is offered
    /// to, and the admins of either institution.
    pub fn can_see(&self) -> bool {
        self.clinic_side
            || self.assigned_doctor
            || self.additional_doctor
            || self.interpreter
            || self.pool_doctor
            || self.admin
    }
}

/// Whether `principal` may see `consultation` (its details, its opinion, its events).
pub fn can_see(principal: &Principal, consultation: &Consultation) -> bool {
    Standing::of(principal, &Parties::of(consultation)).can_see()
}

/// Which consultations a listing shows the caller; the stores turn it into a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsultationScope {
    /// Platform admins.
    All,
    /// An institution's admins: consultations it invites or gives.
    Institution(InstitutionId),
    /// Clinic staff: their institution's requests.
    Inviting(InstitutionId),
    /// A doctor: those assigned to them or to which they are invited, and the urgent
    /// requests offered to them.
    Doctor {
        user: UserId,
        specialties: Vec<Specialty>,
        on_call: bool,
    },
    /// An interpreter: those they are invited to.
    Interpreter(UserId),
}

pub fn scope(principal: &Principal) -> ConsultationScope {
    match principal.role {
        Role::Admin if principal.is_platform_admin() => ConsultationScope::All,
        Role::Admin => ConsultationScope::Institution(principal.institution.clone()),
        Role::ClinicStaff => ConsultationScope::Inviting(principal.institution.clone()),
        Role::Doctor => ConsultationScope::Doctor {
            user: principal.user.clone(),
            specialties: principal.specialties.clone(),
            on_call: principal.on_call,
        },
        Role::Interpreter => ConsultationScope::Interpreter(principal.user.clone()),
    }
}

fn consultation_rule(principal: &Principal, action: Action, parties: &Parties) -> Decision {
    let standing = Standing::of(principal, parties);
    let (allowed, who) = match action {
        Action::GetConsultation | Action::GetOpinion => (
            standing.can_see(),
            "its parties, the doctors it is offered to and the admins of either institution",
        ),
        Action::AcceptConsultation => (
            standing.assigned_doctor || standing.pool_doctor || standing.late_pool_doctor,
            "the assigned doctor, or a doctor of the urgent pool",
        ),
        Action::DeclineConsultation => (standing.assigned_doctor, "the assigned doctor"),
        Action::CancelConsultation => (
            standing.clinic_side || standing.assigned_doctor,
            "the inviting clinic's staff or the assigned doctor",
        ),
        Action::RescheduleConsultation | Action::RecordConsent => {
            (standing.clinic_side, "the inviting clinic's staff")
        }
        Action::InviteParticipant => (
            standing.clinic_side || standing.assigned_doctor,
            "the inviting clinic's staff or the assigned doctor",
        ),
        Action::FileOpinion | Action::SignOpinion | Action::EndSession => {
            (standing.assigned_doctor, "the assigned doctor")
        }
        Action::AuditTimeline => (
            standing.admin,
            "the admins of the inviting and the consulting institution",
        ),
        Action::JoinSession => (
            standing.clinic_side
                || standing.assigned_doctor
                || standing.additional_doctor
                || standing.interpreter,
            "the inviting clinic's staff, the assigned and invited doctors and invited interpreters",
        ),
        _ => (false, "nobody"),
    };
    allow_if(allowed, || {
        format!(
            "{} {} may not {}: only {who} may",
            principal.role,
            principal.user,
            action.name()
        )
    })
}

pub fn authorize(principal: &Principal, action: Action, target: &Target) -> Decision {
    if let Some(parties) = &target.consultation {
        return consultation_rule(principal, action, parties);
    }
    match action {
        // The directory's public face: every authenticated user can look up
        // institutions and find specialists.
        Action::WhoAmI
        | Action::GetInstitution
        | Action::ListInstitutions
        | Action::GetSpecialist
        | Action::SearchSpecialists => Decision::Allow,

        // Anyone signed in may sign themselves out.
        Action::SignOut => Decision::Allow,

        Action::CreateInstitution => allow_if(principal.is_platform_admin(), || {
            "only platform admins create institutions".to_owned()
        }),

        Action::UpdateInstitution
        | Action::ListUsers
        | Action::CreateUser
        | Action::UpdateUser
        | Action::SetSpecialistProfile
        | Action::SetPassword
        | Action::CreateEnrollment => institution_admin(principal, target),

        // Users see themselves; admins see the users they manage.
        Action::GetUser => {
            if target.user.as_ref() == Some(&principal.user) {
                Decision::Allow
            } else {
                institution_admin(principal, target)
            }
        }

        // Admins read the audit records of their institution (records whose actor or
        // target belongs to it); platform admins read all.
        Action::QueryAudit | Action::ExportAudit => institution_admin(principal, target),
        // Verifying the chain reveals only its integrity: any admin may.
        Action::VerifyAudit => allow_if(principal.role == Role::Admin, || {
            format!("a {} cannot verify the audit log", principal.role)
        }),

        // Availability is public, like the directory; listings are filtered by
        // `scope`, live events by `can_see`.
        Action::GetAvailability
        | Action::SearchSlots
        | Action::ListConsultations
        | Action::Watch => Decision::Allow,

        // A doctor publishes their own hours; their institution's admins may too.
        Action::SetAvailability => {
            if principal.role == Role::Doctor && target.user.as_ref() == Some(&principal.user) {
                Decision::Allow
            } else {
                institution_admin(principal, target)
            }
        }

        // Clinic staff ask for consultations, for their own institution's patients.
        Action::BookConsultation | Action::RequestUrgentConsultation => allow_if(
            principal.role == Role::ClinicStaff
                && target.institution.as_ref() == Some(&principal.institution),
            || {
                format!(
                    "only clinic staff of an inviting institution book consultations; {} is a {}",
                    principal.user, principal.role
                )
            },
        ),

        // Actions on one consultation need its parties (handled above).
        Action::GetConsultation
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
        | Action::AuditTimeline => deny("the consultation is not known"),
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
            specialties: Vec::new(),
            on_call: false,
        }
    }

    #[test]
    fn platform_admin_manages_every_directory() {
        let admin = principal(Role::Admin, "platform");
        let elsewhere = Target::institution(&InstitutionId::parse("zju2").unwrap());
        for action in Action::ALL
            .into_iter()
            .filter(|a| a.name().starts_with("directory."))
        {
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
