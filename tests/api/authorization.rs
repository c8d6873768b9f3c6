//! The authorization table end to end: every DirectoryService RPC, called over mutual
//! TLS by each role against its own institution and another, with a request that is
//! valid apart from who sends it.
//!
//! A denial must answer PERMISSION_DENIED, leave exactly one `denied` audit record
//! naming the caller, the action and the target, and change nothing. An allowed call
//! must get past the gate; what it then answers is checked too, so that a row cannot
//! pass by failing for some other reason.

use std::collections::{HashMap, HashSet};

use teleconsult::audit::Outcome;
use teleconsult::domain::directory::{InstitutionKind, Role};
use teleconsult::domain::ids::UserId;
use teleconsult::domain::policy::Action;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::directory::{Audited, audit_head, audit_since, directory_snapshot};
use crate::helpers::{TestApp, fixture};

type Client = DirectoryServiceClient<Channel>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rpc {
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

impl Rpc {
    const ALL: [Rpc; 12] = [
        Rpc::WhoAmI,
        Rpc::GetInstitution,
        Rpc::ListInstitutions,
        Rpc::CreateInstitution,
        Rpc::UpdateInstitution,
        Rpc::GetUser,
        Rpc::ListUsers,
        Rpc::CreateUser,
        Rpc::UpdateUser,
        Rpc::SetSpecialistProfile,
        Rpc::GetSpecialist,
        Rpc::SearchSpecialists,
    ];

    fn action(self) -> Action {
        match self {
            Rpc::WhoAmI => Action::WhoAmI,
            Rpc::GetInstitution => Action::GetInstitution,
            Rpc::ListInstitutions => Action::ListInstitutions,
            Rpc::CreateInstitution => Action::CreateInstitution,
            Rpc::UpdateInstitution => Action::UpdateInstitution,
            Rpc::GetUser => Action::GetUser,
            Rpc::ListUsers => Action::ListUsers,
            Rpc::CreateUser => Action::CreateUser,
            Rpc::UpdateUser => Action::UpdateUser,
            Rpc::SetSpecialistProfile => Action::SetSpecialistProfile,
            Rpc::GetSpecialist => Action::GetSpecialist,
            Rpc::SearchSpecialists => Action::SearchSpecialists,
        }
    }

    /// Whether the request names a user (rather than an institution or nothing).
    fn names_a_user(self) -> bool {
        matches!(
            self,
            Rpc::GetUser | Rpc::UpdateUser | Rpc::SetSpecialistProfile | Rpc::GetSpecialist
        )
    }
}

/// What a row's request is applied to.
#[derive(Debug, Clone, Copy)]
enum On {
    /// Something of this institution: the institution itself, a user of it other than
    /// the caller (see [`resident`]), a new user placed in it, or a search filtered by it.
    In(&'static str),
    /// The caller themself.
    Myself,
    /// No institution in particular: a listing across the whole directory.
    Everywhere,
    /// A well-formed user id that is not in the directory.
    Missing,
    /// A new institution, with an id unique to the row.
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}

use Expect::{Allow, Deny};
use On::{Everywhere, In, Missing, Myself, New};

// The callers: one of each role, and admins of a consulting, an inviting and the
// platform institution.
const DAWA: &str = "biru-nurse-dawa"; // clinic_staff, biru-county-hospital
const CHEN: &str = "zju2-cardio-chen"; // doctor, zju2-hospital
const NORBU: &str = "biru-interpreter-norbu"; // interpreter, biru-county-hospital
const ZJU2_ADMIN: &str = "zju2-admin";
const BIRU_ADMIN: &str = "biru-admin";
const PLATFORM_ADMIN: &str = "platform-admin";

const CALLERS: [&str; 6] = [DAWA, CHEN, NORBU, ZJU2_ADMIN, BIRU_ADMIN, PLATFORM_ADMIN];

const BIRU: &str = "biru-county-hospital";
const NAGQU: &str = "nagqu-peoples";
const ZJU2: &str = "zju2-hospital";
const ZJPPH: &str = "zj-provincial";
const PLATFORM: &str = "platform";

/// A second platform admin, made before the table runs, so that the platform admin has
/// a colleague in their own institution.
const PLATFORM_COLLEAGUE: &str = "platform-auditor";

/// The user a row `In(institution)` names: the first of these who is not the caller.
/// Consulting institutions are represented by doctors, so that an allowed
/// SetSpecialistProfile succeeds.
fn resident(institution: &str, caller: &str) -> &'static str {
    let residents: &[&'static str] = match institution {
        BIRU => &[DAWA, NORBU],
        NAGQU => &["nagqu-nurse-drolma"],
        ZJU2 => &["zju2-eye-zhou"],
        ZJPPH => &["zjpph-altitude-li"],
        PLATFORM => &[PLATFORM_COLLEAGUE],
        other => panic!("no resident known for {other}"),
    };
    residents
        .iter()
        .copied()
        .find(|&user| user != caller)
        .unwrap_or_else(|| panic!("no resident of {institution} besides {caller}"))
}

/// Every RPC for every caller, against their own institution (first `In` row of each
/// group) and another one.
#[rustfmt::skip]
const TABLE: &[(Rpc, &str, On, Expect)] = &[
    (Rpc::WhoAmI,               DAWA,           Myself,       Allow),
    (Rpc::WhoAmI,               CHEN,           Myself,       Allow),
    (Rpc::WhoAmI,               NORBU,          Myself,       Allow),
    (Rpc::WhoAmI,               ZJU2_ADMIN,     Myself,       Allow),
    (Rpc::WhoAmI,               BIRU_ADMIN,     Myself,       Allow),
    (Rpc::WhoAmI,               PLATFORM_ADMIN, Myself,       Allow),

    (Rpc::GetInstitution,       DAWA,           In(BIRU),     Allow),
    (Rpc::GetInstitution,       DAWA,           In(ZJU2),     Allow),
    (Rpc::GetInstitution,       CHEN,           In(ZJU2),     Allow),
    (Rpc::GetInstitution,       CHEN,           In(BIRU),     Allow),
    (Rpc::GetInstitution,       NORBU,          In(BIRU),     Allow),
    (Rpc::GetInstitution,       NORBU,          In(NAGQU),    Allow),
    (Rpc::GetInstitution,       ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::GetInstitution,       ZJU2_ADMIN,     In(ZJPPH),    Allow),
    (Rpc::GetInstitution,       BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::GetInstitution,       BIRU_ADMIN,     In(NAGQU),    Allow),
    (Rpc::GetInstitution,       PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::GetInstitution,       PLATFORM_ADMIN, In(ZJU2),     Allow),

    (Rpc::ListInstitutions,     DAWA,           Everywhere,   Allow),
    (Rpc::ListInstitutions,     CHEN,           Everywhere,   Allow),
    (Rpc::ListInstitutions,     NORBU,          Everywhere,   Allow),
    (Rpc::ListInstitutions,     ZJU2_ADMIN,     Everywhere,   Allow),
    (Rpc::ListInstitutions,     BIRU_ADMIN,     Everywhere,   Allow),
    (Rpc::ListInstitutions,     PLATFORM_ADMIN, Everywhere,   Allow),

    (Rpc::CreateInstitution,    DAWA,           New,          Deny),
    (Rpc::CreateInstitution,    CHEN,           New,          Deny),
    (Rpc::CreateInstitution,    NORBU,          New,          Deny),
    (Rpc::CreateInstitution,    ZJU2_ADMIN,     New,          Deny),
    (Rpc::CreateInstitution,    BIRU_ADMIN,     New,          Deny),
    (Rpc::CreateInstitution,    PLATFORM_ADMIN, New,          Allow),

    (Rpc::UpdateInstitution,    DAWA,           In(BIRU),     Deny),
    (Rpc::UpdateInstitution,    DAWA,           In(ZJU2),     Deny),
    (Rpc::UpdateInstitution,    CHEN,           In(ZJU2),     Deny),
    (Rpc::UpdateInstitution,    CHEN,           In(BIRU),     Deny),
    (Rpc::UpdateInstitution,    NORBU,          In(BIRU),     Deny),
    (Rpc::UpdateInstitution,    NORBU,          In(NAGQU),    Deny),
    (Rpc::UpdateInstitution,    ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::UpdateInstitution,    ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::UpdateInstitution,    BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::UpdateInstitution,    BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::UpdateInstitution,    PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::UpdateInstitution,    PLATFORM_ADMIN, In(ZJU2),     Allow),

    (Rpc::GetUser,              DAWA,           In(BIRU),     Deny),
    (Rpc::GetUser,              DAWA,           In(ZJU2),     Deny),
    (Rpc::GetUser,              DAWA,           Myself,       Allow),
    (Rpc::GetUser,              DAWA,           Missing,      Deny),
    (Rpc::GetUser,              CHEN,           In(ZJU2),     Deny),
    (Rpc::GetUser,              CHEN,           In(BIRU),     Deny),
    (Rpc::GetUser,              CHEN,           Myself,       Allow),
    (Rpc::GetUser,              CHEN,           Missing,      Deny),
    (Rpc::GetUser,              NORBU,          In(BIRU),     Deny),
    (Rpc::GetUser,              NORBU,          In(NAGQU),    Deny),
    (Rpc::GetUser,              NORBU,          Myself,       Allow),
    (Rpc::GetUser,              NORBU,          Missing,      Deny),
    (Rpc::GetUser,              ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::GetUser,              ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::GetUser,              ZJU2_ADMIN,     Myself,       Allow),
    (Rpc::GetUser,              ZJU2_ADMIN,     Missing,      Deny),
    (Rpc::GetUser,              BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::GetUser,              BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::GetUser,              BIRU_ADMIN,     Myself,       Allow),
    (Rpc::GetUser,              BIRU_ADMIN,     Missing,      Deny),
    (Rpc::GetUser,              PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::GetUser,              PLATFORM_ADMIN, In(ZJU2),     Allow),
    (Rpc::GetUser,              PLATFORM_ADMIN, Myself,       Allow),
    (Rpc::GetUser,              PLATFORM_ADMIN, Missing,      Allow),

    (Rpc::ListUsers,            DAWA,           In(BIRU),     Deny),
    (Rpc::ListUsers,            DAWA,           In(ZJU2),     Deny),
    (Rpc::ListUsers,            DAWA,           Everywhere,   Deny),
    (Rpc::ListUsers,            CHEN,           In(ZJU2),     Deny),
    (Rpc::ListUsers,            CHEN,           In(BIRU),     Deny),
    (Rpc::ListUsers,            CHEN,           Everywhere,   Deny),
    (Rpc::ListUsers,            NORBU,          In(BIRU),     Deny),
    (Rpc::ListUsers,            NORBU,          In(NAGQU),    Deny),
    (Rpc::ListUsers,            NORBU,          Everywhere,   Deny),
    (Rpc::ListUsers,            ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::ListUsers,            ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::ListUsers,            ZJU2_ADMIN,     Everywhere,   Deny),
    (Rpc::ListUsers,            BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::ListUsers,            BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::ListUsers,            BIRU_ADMIN,     Everywhere,   Deny),
    (Rpc::ListUsers,            PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::ListUsers,            PLATFORM_ADMIN, In(ZJU2),     Allow),
    (Rpc::ListUsers,            PLATFORM_ADMIN, Everywhere,   Allow),

    (Rpc::CreateUser,           DAWA,           In(BIRU),     Deny),
    (Rpc::CreateUser,           DAWA,           In(ZJU2),     Deny),
    (Rpc::CreateUser,           CHEN,           In(ZJU2),     Deny),
    (Rpc::CreateUser,           CHEN,           In(BIRU),     Deny),
    (Rpc::CreateUser,           NORBU,          In(BIRU),     Deny),
    (Rpc::CreateUser,           NORBU,          In(NAGQU),    Deny),
    (Rpc::CreateUser,           ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::CreateUser,           ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::CreateUser,           BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::CreateUser,           BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::CreateUser,           PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::CreateUser,           PLATFORM_ADMIN, In(ZJU2),     Allow),

    (Rpc::UpdateUser,           DAWA,           In(BIRU),     Deny),
    (Rpc::UpdateUser,           DAWA,           In(ZJU2),     Deny),
    (Rpc::UpdateUser,           DAWA,           Myself,       Deny),
    (Rpc::UpdateUser,           DAWA,           Missing,      Deny),
    (Rpc::UpdateUser,           CHEN,           In(ZJU2),     Deny),
    (Rpc::UpdateUser,           CHEN,           In(BIRU),     Deny),
    (Rpc::UpdateUser,           CHEN,           Myself,       Deny),
    (Rpc::UpdateUser,           CHEN,           Missing,      Deny),
    (Rpc::UpdateUser,           NORBU,          In(BIRU),     Deny),
    (Rpc::UpdateUser,           NORBU,          In(NAGQU),    Deny),
    (Rpc::UpdateUser,           NORBU,          Myself,       Deny),
    (Rpc::UpdateUser,           NORBU,          Missing,      Deny),
    (Rpc::UpdateUser,           ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::UpdateUser,           ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::UpdateUser,           ZJU2_ADMIN,     Myself,       Allow),
    (Rpc::UpdateUser,           ZJU2_ADMIN,     Missing,      Deny),
    (Rpc::UpdateUser,           BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::UpdateUser,           BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::UpdateUser,           BIRU_ADMIN,     Myself,       Allow),
    (Rpc::UpdateUser,           BIRU_ADMIN,     Missing,      Deny),
    (Rpc::UpdateUser,           PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::UpdateUser,           PLATFORM_ADMIN, In(ZJU2),     Allow),
    (Rpc::UpdateUser,           PLATFORM_ADMIN, Myself,       Allow),
    (Rpc::UpdateUser,           PLATFORM_ADMIN, Missing,      Allow),

    (Rpc::SetSpecialistProfile, DAWA,           In(BIRU),     Deny),
    (Rpc::SetSpecialistProfile, DAWA,           In(ZJU2),     Deny),
    (Rpc::SetSpecialistProfile, DAWA,           Myself,       Deny),
    (Rpc::SetSpecialistProfile, CHEN,           In(ZJU2),     Deny),
    (Rpc::SetSpecialistProfile, CHEN,           In(BIRU),     Deny),
    (Rpc::SetSpecialistProfile, CHEN,           Myself,       Deny),
    (Rpc::SetSpecialistProfile, NORBU,          In(BIRU),     Deny),
    (Rpc::SetSpecialistProfile, NORBU,          In(NAGQU),    Deny),
    (Rpc::SetSpecialistProfile, NORBU,          Myself,       Deny),
    (Rpc::SetSpecialistProfile, ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::SetSpecialistProfile, ZJU2_ADMIN,     In(ZJPPH),    Deny),
    (Rpc::SetSpecialistProfile, ZJU2_ADMIN,     Myself,       Allow),
    (Rpc::SetSpecialistProfile, BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::SetSpecialistProfile, BIRU_ADMIN,     In(NAGQU),    Deny),
    (Rpc::SetSpecialistProfile, BIRU_ADMIN,     Myself,       Allow),
    (Rpc::SetSpecialistProfile, PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::SetSpecialistProfile, PLATFORM_ADMIN, In(ZJU2),     Allow),
    (Rpc::SetSpecialistProfile, PLATFORM_ADMIN, Myself,       Allow),

    (Rpc::GetSpecialist,        DAWA,           In(BIRU),     Allow),
    (Rpc::GetSpecialist,        DAWA,           In(ZJU2),     Allow),
    (Rpc::GetSpecialist,        CHEN,           In(ZJU2),     Allow),
    (Rpc::GetSpecialist,        CHEN,           In(BIRU),     Allow),
    (Rpc::GetSpecialist,        NORBU,          In(BIRU),     Allow),
    (Rpc::GetSpecialist,        NORBU,          In(NAGQU),    Allow),
    (Rpc::GetSpecialist,        ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::GetSpecialist,        ZJU2_ADMIN,     In(ZJPPH),    Allow),
    (Rpc::GetSpecialist,        BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::GetSpecialist,        BIRU_ADMIN,     In(NAGQU),    Allow),
    (Rpc::GetSpecialist,        PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::GetSpecialist,        PLATFORM_ADMIN, In(ZJU2),     Allow),

    (Rpc::SearchSpecialists,    DAWA,           In(BIRU),     Allow),
    (Rpc::SearchSpecialists,    DAWA,           In(ZJU2),     Allow),
    (Rpc::SearchSpecialists,    DAWA,           Everywhere,   Allow),
    (Rpc::SearchSpecialists,    CHEN,           In(ZJU2),     Allow),
    (Rpc::SearchSpecialists,    CHEN,           In(BIRU),     Allow),
    (Rpc::SearchSpecialists,    CHEN,           Everywhere,   Allow),
    (Rpc::SearchSpecialists,    NORBU,          In(BIRU),     Allow),
    (Rpc::SearchSpecialists,    NORBU,          In(NAGQU),    Allow),
    (Rpc::SearchSpecialists,    NORBU,          Everywhere,   Allow),
    (Rpc::SearchSpecialists,    ZJU2_ADMIN,     In(ZJU2),     Allow),
    (Rpc::SearchSpecialists,    ZJU2_ADMIN,     In(ZJPPH),    Allow),
    (Rpc::SearchSpecialists,    ZJU2_ADMIN,     Everywhere,   Allow),
    (Rpc::SearchSpecialists,    BIRU_ADMIN,     In(BIRU),     Allow),
    (Rpc::SearchSpecialists,    BIRU_ADMIN,     In(NAGQU),    Allow),
    (Rpc::SearchSpecialists,    BIRU_ADMIN,     Everywhere,   Allow),
    (Rpc::SearchSpecialists,    PLATFORM_ADMIN, In(PLATFORM), Allow),
    (Rpc::SearchSpecialists,    PLATFORM_ADMIN, In(ZJU2),     Allow),
    (Rpc::SearchSpecialists,    PLATFORM_ADMIN, Everywhere,   Allow),
];

/// A caller's institution, as the fixture places them.
fn institution_of(user: &str) -> String {
    if user == PLATFORM_COLLEAGUE {
        return PLATFORM.to_owned();
    }
    let seed = fixture();
    let found = seed.users.iter().find(|u| u.id.as_str() == user);
    found
        .unwrap_or_else(|| panic!("{user} is not in the fixture"))
        .institution
        .to_string()
}

/// A row's request made concrete.
struct Subject {
    /// The institution the request names, places something in or filters by.
    institution: Option<String>,
    /// The user or institution the request names or creates; empty when none.
    id: String,
}

fn subject(row: usize, rpc: Rpc, caller: &str, on: On) -> Subject {
    match on {
        In(institution) => Subject {
            institution: Some(institution.to_owned()),
            id: match rpc {
                Rpc::CreateUser => format!("new-user-{row}"),
                rpc if rpc.names_a_user() => resident(institution, caller).to_owned(),
                _ => institution.to_owned(),
            },
        },
        Myself => Subject {
            institution: Some(institution_of(caller)),
            id: caller.to_owned(),
        },
        Everywhere => Subject {
            institution: None,
            id: String::new(),
        },
        Missing => Subject {
            institution: None,
            id: "no-such-user".to_owned(),
        },
        New => Subject {
            institution: None,
            id: format!("new-hospital-{row}"),
        },
    }
}

/// The target a refusal of `rpc` on `subject` is audited with: (label, institution).
fn audited_target(rpc: Rpc, subject: &Subject) -> (String, Option<String>) {
    let id = &subject.id;
    match rpc {
        Rpc::GetInstitution | Rpc::UpdateInstitution | Rpc::CreateInstitution => {
            (format!("institution:{id}"), Some(id.clone()))
        }
        Rpc::ListUsers => match &subject.institution {
            Some(institution) => (
                format!("institution:{institution}"),
                Some(institution.clone()),
            ),
            None => ("directory".to_owned(), None),
        },
        Rpc::WhoAmI
        | Rpc::GetUser
        | Rpc::CreateUser
        | Rpc::UpdateUser
        | Rpc::SetSpecialistProfile => (format!("user:{id}"), subject.institution.clone()),
        Rpc::GetSpecialist => (format!("user:{id}"), None),
        Rpc::ListInstitutions | Rpc::SearchSpecialists => ("directory".to_owned(), None),
    }
}

fn role_for(kind: InstitutionKind) -> pb::Role {
    match kind {
        InstitutionKind::Platform => pb::Role::Admin,
        InstitutionKind::Consulting => pb::Role::Doctor,
        InstitutionKind::Inviting => pb::Role::ClinicStaff,
    }
}

fn kind_of(institution: &str) -> InstitutionKind {
    let seed = fixture();
    let found = seed
        .institutions
        .iter()
        .find(|i| i.id.as_str() == institution);
    found
        .unwrap_or_else(|| panic!("{institution} is not in the fixture"))
        .kind
}

/// Sends the row's request; valid in every respect but, perhaps, who sends it.
async fn send(client: &mut Client, row: usize, rpc: Rpc, subject: &Subject) -> Result<(), Status> {
    let id = subject.id.clone();
    let institution = subject.institution.clone().unwrap_or_default();
    let stamp = format!("row {row}");
    match rpc {
        Rpc::WhoAmI => client.who_am_i(pb::WhoAmIRequest {}).await.map(drop),
        Rpc::GetInstitution => {
            let request = pb::GetInstitutionRequest { id };
            client.get_institution(request).await.map(drop)
        }
        Rpc::ListInstitutions => {
            let request = pb::ListInstitutionsRequest::default();
            client.list_institutions(request).await.map(drop)
        }
        Rpc::CreateInstitution => {
            let institution = pb::Institution {
                id,
                kind: pb::InstitutionKind::Inviting as i32,
                name_zh: "乡镇卫生院".into(),
                name_en: format!("Township health centre ({stamp})"),
                region: "Nagqu, Tibet".into(),
            };
            let request = pb::CreateInstitutionRequest {
                institution: Some(institution),
            };
            client.create_institution(request).await.map(drop)
        }
        Rpc::UpdateInstitution => {
            let request = pb::UpdateInstitutionRequest {
                id,
                region: Some(format!("updated by {stamp}")),
                ..Default::default()
            };
            client.update_institution(request).await.map(drop)
        }
        Rpc::GetUser => client.get_user(pb::GetUserRequest { id }).await.map(drop),
        Rpc::ListUsers => {
            let request = pb::ListUsersRequest {
                institution_id: institution,
                ..Default::default()
            };
            client.list_users(request).await.map(drop)
        }
        Rpc::CreateUser => {
            let user = pb::User {
                id,
                role: role_for(kind_of(&institution)) as i32,
                institution_id: institution,
                display_name_zh: "新用户".into(),
                display_name_en: format!("New user ({stamp})"),
                active: true,
            };
            let request = pb::CreateUserRequest { user: Some(user) };
            client.create_user(request).await.map(drop)
        }
        Rpc::UpdateUser => {
            let request = pb::UpdateUserRequest {
                id,
                display_name_en: Some(format!("Renamed by {stamp}")),
                ..Default::default()
            };
            client.update_user(request).await.map(drop)
        }
        Rpc::SetSpecialistProfile => {
            let specialist = pb::Specialist {
                user_id: id,
                specialties: vec!["general-medicine".into()],
                title: "attending physician".into(),
                languages: vec![pb::Language::Mandarin as i32],
                slot_minutes: 20,
                ..Default::default()
            };
            let request = pb::SetSpecialistProfileRequest {
                specialist: Some(specialist),
            };
            client.set_specialist_profile(request).await.map(drop)
        }
        Rpc::GetSpecialist => {
            let request = pb::GetSpecialistRequest { user_id: id };
            client.get_specialist(request).await.map(drop)
        }
        Rpc::SearchSpecialists => {
            let request = pb::SearchSpecialistsRequest {
                institution_id: institution,
                ..Default::default()
            };
            client.search_specialists(request).await.map(drop)
        }
    }
}

/// What an allowed call should answer once past the gate: success, unless the request
/// names something that cannot take it.
async fn answer_when_allowed(app: &TestApp, rpc: Rpc, subject: &Subject) -> Code {
    let user = || UserId::parse(&subject.id).unwrap();
    match rpc {
        Rpc::GetUser | Rpc::UpdateUser if app.store.user(&user()).await.unwrap().is_none() => {
            Code::NotFound
        }
        Rpc::SetSpecialistProfile => match app.store.user(&user()).await.unwrap() {
            None => Code::NotFound,
            Some(found) if found.role != Role::Doctor => Code::FailedPrecondition,
            Some(_) => Code::Ok,
        },
        Rpc::GetSpecialist if app.store.specialist(&user()).await.unwrap().is_none() => {
            Code::NotFound
        }
        _ => Code::Ok,
    }
}

#[test]
fn the_table_covers_every_rpc_for_every_caller() {
    // DirectoryService's RPCs are the policy's `directory.*` actions, one each.
    let actions: HashSet<Action> = Rpc::ALL.into_iter().map(Rpc::action).collect();
    let directory: HashSet<Action> = Action::ALL
        .into_iter()
        .filter(|action| action.name().starts_with("directory."))
        .collect();
    assert_eq!(actions.len(), Rpc::ALL.len());
    assert_eq!(
        actions, directory,
        "every directory action has exactly one RPC"
    );

    let mut rows: HashMap<(Rpc, &str), Vec<On>> = HashMap::new();
    for &(rpc, caller, on, _) in TABLE {
        assert!(
            CALLERS.contains(&caller),
            "{caller} is not one of the callers"
        );
        rows.entry((rpc, caller)).or_default().push(on);
    }
    for rpc in Rpc::ALL {
        for caller in CALLERS {
            let ons = rows.get(&(rpc, caller));
            let ons = ons.unwrap_or_else(|| panic!("no row for {rpc:?} by {caller}"));
            let institutions: Vec<&str> = ons
                .iter()
                .filter_map(|on| match on {
                    In(institution) => Some(*institution),
                    _ => None,
                })
                .collect();
            let targets_an_institution = !matches!(
                rpc,
                Rpc::WhoAmI | Rpc::ListInstitutions | Rpc::CreateInstitution
            );
            if targets_an_institution {
                let own = institution_of(caller);
                assert!(
                    institutions.contains(&own.as_str()) && institutions.iter().any(|&i| i != own),
                    "{rpc:?} by {caller} needs a row for their own institution and one for another: {ons:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_rpc_is_allowed_or_denied_as_the_table_says() {
    let app = TestApp::spawn().await;
    let mut clients: HashMap<&str, Client> = CALLERS
        .iter()
        .map(|&caller| (caller, app.directory_as(caller)))
        .collect();

    // The platform admin's colleague, so that "own institution" means someone else
    // for them too.
    let colleague = pb::User {
        id: PLATFORM_COLLEAGUE.into(),
        institution_id: PLATFORM.into(),
        role: pb::Role::Admin as i32,
        display_name_zh: "审计员".into(),
        display_name_en: "Auditor".into(),
        active: true,
    };
    let request = pb::CreateUserRequest {
        user: Some(colleague),
    };
    let platform = clients.get_mut(PLATFORM_ADMIN).unwrap();
    platform.create_user(request).await.unwrap();

    let mut wrong = Vec::new();
    for (row, &(rpc, caller, on, expected)) in TABLE.iter().enumerate() {
        let case = format!("row {row}: {rpc:?} by {caller} on {on:?}");
        let subject = subject(row, rpc, caller, on);
        let allowed_answer = answer_when_allowed(&app, rpc, &subject).await;
        let before = directory_snapshot(&app).await;
        let since = audit_head(&app).await;

        let client = clients.get_mut(caller).unwrap();
        let result = send(client, row, rpc, &subject).await;
        let code = result.as_ref().err().map_or(Code::Ok, Status::code);
        let records = audit_since(&app, since).await;
        let action = rpc.action().name();

        match expected {
            Deny => {
                if code != Code::PermissionDenied {
                    wrong.push(format!(
                        "{case}: expected PERMISSION_DENIED, got {result:?}"
                    ));
                }
                let (target, target_institution) = audited_target(rpc, &subject);
                let denied = Audited {
                    actor: caller,
                    action,
                    target: &target,
                    target_institution: target_institution.as_deref(),
                    outcome: Outcome::Denied,
                };
                if let Err(problem) = denied.check(&records) {
                    wrong.push(format!("{case}: {problem}"));
                }
                if directory_snapshot(&app).await != before {
                    wrong.push(format!("{case}: a denied call changed the directory"));
                }
                // And the thing it would have created is not there.
                let platform = clients.get_mut(PLATFORM_ADMIN).unwrap();
                let id = subject.id.clone();
                let lookup = match rpc {
                    Rpc::CreateUser => {
                        Some(platform.get_user(pb::GetUserRequest { id }).await.err())
                    }
                    Rpc::CreateInstitution => {
                        let request = pb::GetInstitutionRequest { id };
                        Some(platform.get_institution(request).await.err())
                    }
                    _ => None,
                };
                if let Some(error) = lookup {
                    if error.as_ref().map(Status::code) != Some(Code::NotFound) {
                        wrong.push(format!("{case}: denied, yet created: {error:?}"));
                    }
                }
            }
            Allow => {
                if code != allowed_answer {
                    wrong.push(format!(
                        "{case}: expected {allowed_answer:?}, got {result:?}"
                    ));
                }
                if records.iter().any(|r| r.entry.outcome == Outcome::Denied) {
                    wrong.push(format!("{case}: an allowed call was audited as denied"));
                }
                // Changes and failures leave one record; successful reads none.
                let (target, target_institution) = audited_target(rpc, &subject);
                let audited = match code {
                    Code::Ok if !rpc.action().is_mutation() => None,
                    Code::Ok => Some(Outcome::Ok),
                    _ => Some(Outcome::Invalid),
                };
                match audited {
                    None if !records.is_empty() => {
                        wrong.push(format!("{case}: a read was audited: {records:#?}"));
                    }
                    None => {}
                    Some(outcome) => {
                        let expected = Audited {
                            actor: caller,
                            action,
                            target: &target,
                            target_institution: target_institution.as_deref(),
                            outcome,
                        };
                        if let Err(problem) = expected.check(&records) {
                            wrong.push(format!("{case}: {problem}"));
                        }
                    }
                }
            }
        }
    }

    assert!(
        wrong.is_empty(),
        "{} of {} rows went wrong:\n{}",
        wrong.len(),
        TABLE.len(),
        wrong.join("\n")
    );
    crate::directory::assert_chain_intact(&app).await;
}
