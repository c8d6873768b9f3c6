//! Protobuf messages to domain values and back. A message becomes a domain value only
//! here; a failed conversion names the offending field.

pub mod audit;
pub mod scheduling;
pub mod session;

use prost_types::Timestamp;
use time::OffsetDateTime;

use crate::domain::directory::{
    Institution, InstitutionChanges, InstitutionKind, Language, Name, PageSize, Role, ShortText,
    SlotMinutes, Specialist, SpecialistProfile, SpecialistQuery, User, UserChanges, UserQuery,
};
use crate::domain::ids::{InstitutionId, Specialty, UserId};
use crate::domain::principal::Principal;
use crate::domain::{InvalidField, field};
use crate::proto::v1 as pb;

pub type Result<T> = std::result::Result<T, InvalidField>;

pub fn user_id(value: &str, name: &str) -> Result<UserId> {
    UserId::parse(value).map_err(field(name))
}

pub fn institution_id(value: &str, name: &str) -> Result<InstitutionId> {
    InstitutionId::parse(value).map_err(field(name))
}

pub fn optional<T>(value: &str, parse: impl FnOnce(&str) -> Result<T>) -> Result<Option<T>> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

fn name(value: &str, field_name: &str) -> Result<Name> {
    Name::parse(value).map_err(field(field_name))
}

pub fn role(value: i32, name: &str) -> Result<Role> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::ClinicStaff) => Ok(Role::ClinicStaff),
        Ok(pb::Role::Doctor) => Ok(Role::Doctor),
        Ok(pb::Role::Interpreter) => Ok(Role::Interpreter),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Unspecified) => Err(InvalidField::new(name, "must be set")),
        Err(_) => Err(InvalidField::new(name, format!("unknown role {value}"))),
    }
}

fn optional_role(value: i32, name: &str) -> Result<Option<Role>> {
    if value == pb::Role::Unspecified as i32 {
        Ok(None)
    } else {
        role(value, name).map(Some)
    }
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::ClinicStaff => pb::Role::ClinicStaff,
        Role::Doctor => pb::Role::Doctor,
        Role::Interpreter => pb::Role::Interpreter,
        Role::Admin => pb::Role::Admin,
    }
}

fn institution_kind(value: i32, name: &str) -> Result<Option<InstitutionKind>> {
    match pb::InstitutionKind::try_from(value) {
        Ok(pb::InstitutionKind::Unspecified) => Ok(None),
        Ok(pb::InstitutionKind::Consulting) => Ok(Some(InstitutionKind::Consulting)),
        Ok(pb::InstitutionKind::Inviting) => Ok(Some(InstitutionKind::Inviting)),
        Ok(pb::InstitutionKind::Platform) => Ok(Some(InstitutionKind::Platform)),
        Err(_) => Err(InvalidField::new(
            name,
            format!("unknown institution kind {value}"),
        )),
    }
}

fn institution_kind_to_proto(kind: InstitutionKind) -> pb::InstitutionKind {
    match kind {
        InstitutionKind::Consulting => pb::InstitutionKind::Consulting,
        InstitutionKind::Inviting => pb::InstitutionKind::Inviting,
        InstitutionKind::Platform => pb::InstitutionKind::Platform,
    }
}

pub fn language_from_proto(value: i32, name: &str) -> Result<Option<Language>> {
    match pb::Language::try_from(value) {
        Ok(pb::Language::Unspecified) => Ok(None),
        Ok(pb::Language::Mandarin) => Ok(Some(Language::Mandarin)),
        Ok(pb::Language::Tibetan) => Ok(Some(Language::Tibetan)),
        Ok(pb::Language::English) => Ok(Some(Language::English)),
        Err(_) => Err(InvalidField::new(name, format!("unknown language {value}"))),
    }
}

fn language_to_proto(language: Language) -> pb::Language {
    match language {
        Language::Mandarin => pb::Language::Mandarin,
        Language::Tibetan => pb::Language::Tibetan,
        Language::English => pb::Language::English,
    }
}

pub fn timestamp(at: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    }
}

impl TryFrom<pb::CreateInstitutionRequest> for Institution {
    type Error = InvalidField;

    fn try_from(request: pb::CreateInstitutionRequest) -> Result<Self> {
        let institution = request
            .institution
            .ok_or_else(|| InvalidField::new("institution", "must be set"))?;
        let kind = institution_kind(institution.kind, "institution.kind")?
            .ok_or_else(|| InvalidField::new("institution.kind", "must be set"))?;
        Institution::new(
            institution_id(&institution.id, "institution.id")?,
            kind,
            name(&institution.name_zh, "institution.name_zh")?,
            name(&institution.name_en, "institution.name_en")?,
            ShortText::parse(&institution.region).map_err(field("institution.region"))?,
        )
        .map_err(field("institution.kind"))
    }
}

impl TryFrom<pb::UpdateInstitutionRequest> for (InstitutionId, InstitutionChanges) {
    type Error = InvalidField;

    fn try_from(request: pb::UpdateInstitutionRequest) -> Result<Self> {
        Ok((
            institution_id(&request.id, "id")?,
            InstitutionChanges {
                name_zh: request.name_zh.map(|v| name(&v, "name_zh")).transpose()?,
                name_en: request.name_en.map(|v| name(&v, "name_en")).transpose()?,
                region: request
                    .region
                    .map(|v| ShortText::parse(&v).map_err(field("region")))
                    .transpose()?,
            },
        ))
    }
}

impl From<&Institution> for pb::Institution {
    fn from(institution: &Institution) -> Self {
        Self {
            id: institution.id.to_string(),
            kind: institution_kind_to_proto(institution.kind) as i32,
            name_zh: institution.name_zh.as_str().to_owned(),
            name_en: institution.name_en.as_str().to_owned(),
            region: institution.region.as_str().to_owned(),
        }
    }
}

impl TryFrom<pb::ListInstitutionsRequest> for Option<InstitutionKind> {
    type Error = InvalidField;

    fn try_from(request: pb::ListInstitutionsRequest) -> Result<Self> {
        institution_kind(request.kind, "kind")
    }
}

impl TryFrom<pb::CreateUserRequest> for User {
    type Error = InvalidField;

    fn try_from(request: pb::CreateUserRequest) -> Result<Self> {
        let user = request
            .user
            .ok_or_else(|| InvalidField::new("user", "must be set"))?;
        Ok(User {
            id: user_id(&user.id, "user.id")?,
            institution: institution_id(&user.institution_id, "user.institution_id")?,
            role: role(user.role, "user.role")?,
            display_name_zh: name(&user.display_name_zh, "user.display_name_zh")?,
            display_name_en: name(&user.display_name_en, "user.display_name_en")?,
            active: true,
        })
    }
}

impl TryFrom<pb::UpdateUserRequest> for (UserId, UserChanges) {
    type Error = InvalidField;

    fn try_from(request: pb::UpdateUserRequest) -> Result<Self> {
        Ok((
            user_id(&request.id, "id")?,
            UserChanges {
                display_name_zh: request
                    .display_name_zh
                    .map(|v| name(&v, "display_name_zh"))
                    .transpose()?,
                display_name_en: request
                    .display_name_en
                    .map(|v| name(&v, "display_name_en"))
                    .transpose()?,
                active: request.active,
            },
        ))
    }
}

impl TryFrom<pb::ListUsersRequest> for UserQuery {
    type Error = InvalidField;

    fn try_from(request: pb::ListUsersRequest) -> Result<Self> {
        Ok(UserQuery {
            institution: optional(&request.institution_id, |v| {
                institution_id(v, "institution_id")
            })?,
            role: optional_role(request.role, "role")?,
            include_inactive: request.include_inactive,
        })
    }
}

impl From<&User> for pb::User {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            institution_id: user.institution.to_string(),
            role: role_to_proto(user.role) as i32,
            display_name_zh: user.display_name_zh.as_str().to_owned(),
            display_name_en: user.display_name_en.as_str().to_owned(),
            active: user.active,
        }
    }
}

impl TryFrom<pb::SetSpecialistProfileRequest> for SpecialistProfile {
    type Error = InvalidField;

    fn try_from(request: pb::SetSpecialistProfileRequest) -> Result<Self> {
        let specialist = request
            .specialist
            .ok_or_else(|| InvalidField::new("specialist", "must be set"))?;
        let specialties = specialist
            .specialties
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Specialty::parse(s).map_err(field(&format!("specialist.specialties[{i}]")))
            })
            .collect::<Result<Vec<_>>>()?;
        let languages = specialist
            .languages
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let name = format!("specialist.languages[{i}]");
                language_from_proto(l, &name)?.ok_or_else(|| InvalidField::new(name, "must be set"))
            })
            .collect::<Result<Vec<_>>>()?;
        SpecialistProfile::new(
            user_id(&specialist.user_id, "specialist.user_id")?,
            specialties,
            name(&specialist.title, "specialist.title")?,
            languages,
            specialist.on_call,
            SlotMinutes::parse(specialist.slot_minutes)
                .map_err(field("specialist.slot_minutes"))?,
        )
        .map_err(|(which, problem)| InvalidField::new(format!("specialist.{which}"), problem))
    }
}

impl From<&Specialist> for pb::Specialist {
    fn from(specialist: &Specialist) -> Self {
        let profile = &specialist.profile;
        Self {
            user_id: profile.user_id.to_string(),
            institution_id: specialist.institution.to_string(),
            display_name_zh: specialist.display_name_zh.as_str().to_owned(),
            display_name_en: specialist.display_name_en.as_str().to_owned(),
            specialties: profile
                .specialties
                .iter()
                .map(ToString::to_string)
                .collect(),
            title: profile.title.as_str().to_owned(),
            languages: profile
                .languages
                .iter()
                .map(|&l| language_to_proto(l) as i32)
                .collect(),
            on_call: profile.on_call,
            slot_minutes: profile.slot_minutes.get(),
        }
    }
}

impl TryFrom<pb::SearchSpecialistsRequest> for SpecialistQuery {
    type Error = InvalidField;

    fn try_from(request: pb::SearchSpecialistsRequest) -> Result<Self> {
        let page = request.page.unwrap_or_default();
        let name_contains = crate::domain::text(&request.name_contains, 100, true)
            .map_err(field("name_contains"))?;
        Ok(SpecialistQuery {
            specialty: optional(&request.specialty, |v| {
                Specialty::parse(v).map_err(field("specialty"))
            })?,
            institution: optional(&request.institution_id, |v| {
                institution_id(v, "institution_id")
            })?,
            language: language_from_proto(request.language, "language")?,
            name_contains: (!name_contains.is_empty()).then_some(name_contains),
            after: optional(&page.page_token, |v| user_id(v, "page.page_token"))?,
            limit: PageSize::new(page.page_size),
        })
    }
}

impl From<&Principal> for pb::Principal {
    fn from(principal: &Principal) -> Self {
        Self {
            user_id: principal.user.to_string(),
            institution_id: principal.institution.to_string(),
            role: role_to_proto(principal.role) as i32,
            certificate_fingerprint: principal.certificate_fingerprint.clone(),
        }
    }
}
