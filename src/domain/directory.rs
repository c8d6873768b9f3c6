//! The directory: institutions, their users and the specialists among them.

use std::fmt;
use std::str::FromStr;

use super::ids::{InstitutionId, Specialty, UserId};
use super::{InvalidValue, text};

/// The role a user acts in; carried in the certificate's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    ClinicStaff,
    Doctor,
    Interpreter,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::ClinicStaff,
        Role::Doctor,
        Role::Interpreter,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ClinicStaff => "clinic_staff",
            Role::Doctor => "doctor",
            Role::Interpreter => "interpreter",
            Role::Admin => "admin",
        }
    }

    /// Whether a user of this role may belong to an institution of `kind`: clinic
    /// staff work for inviting institutions, doctors for consulting ones, interpreters
    /// for either; admins anywhere, and only admins for the platform.
    pub fn allowed_in(self, kind: InstitutionKind) -> bool {
        match (self, kind) {
            (Role::Admin, _) => true,
            (_, InstitutionKind::Platform) => false,
            (Role::ClinicStaff, kind) => kind == InstitutionKind::Inviting,
            (Role::Doctor, kind) => kind == InstitutionKind::Consulting,
            (Role::Interpreter, _) => true,
        }
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown role {value:?}; expected clinic_staff, doctor, interpreter or admin"
                ))
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstitutionKind {
    /// Gives written opinions (a Zhejiang hospital).
    Consulting,
    /// Requests consultations for its patients (a Nagqu clinic or county hospital).
    Inviting,
    /// The broker operator.
    Platform,
}

impl InstitutionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstitutionKind::Consulting => "consulting",
            InstitutionKind::Inviting => "inviting",
            InstitutionKind::Platform => "platform",
        }
    }
}

impl FromStr for InstitutionKind {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "consulting" => Ok(InstitutionKind::Consulting),
            "inviting" => Ok(InstitutionKind::Inviting),
            "platform" => Ok(InstitutionKind::Platform),
            other => Err(InvalidValue(format!(
                "unknown institution kind {other:?}; expected consulting, inviting or platform"
            ))),
        }
    }
}

impl fmt::Display for InstitutionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A language a consultation can be held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Mandarin,
    Tibetan,
    English,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Mandarin, Language::Tibetan, Language::English];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Mandarin => "mandarin",
            Language::Tibetan => "tibetan",
            Language::English => "english",
        }
    }
}

impl FromStr for Language {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Language::ALL
            .into_iter()
            .find(|language| language.as_str() == value)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown language {value:?}; expected mandarin, tibetan or english"
                ))
            })
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name as people read it: trimmed, non-empty, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        text(value, 200, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Optional free text such as a region, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShortText(String);

impl ShortText {
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        text(value, 200, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    pub id: InstitutionId,
    pub kind: InstitutionKind,
    pub name_zh: Name,
    pub name_en: Name,
    pub region: ShortText,
}

impl Institution {
    /// An institution's id and kind must agree: `platform` is the platform and nothing
    /// else is.
    pub fn new(
        id: InstitutionId,
        kind: InstitutionKind,
        name_zh: Name,
        name_en: Name,
        region: ShortText,
    ) -> Result<Self, InvalidValue> {
        if id.is_platform() != (kind == InstitutionKind::Platform) {
            return Err(InvalidValue::new(
                "only the institution `platform` is of kind platform",
            ));
        }
        Ok(Self {
            id,
            kind,
            name_zh,
            name_en,
            region,
        })
    }
}

/// New names and region for an institution; its id and kind never change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionUpdate {
    pub id: InstitutionId,
    pub name_zh: Name,
    pub name_en: Name,
    pub region: ShortText,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub institution: InstitutionId,
    pub role: Role,
    pub display_name_zh: Name,
    pub display_name_en: Name,
    pub active: bool,
}

impl User {
    /// Checks that the user's role fits the institution they are placed in.
    pub fn check_placement(&self, kind: InstitutionKind) -> Result<(), InvalidValue> {
        if self.role.allowed_in(kind) {
            Ok(())
        } else {
            Err(InvalidValue(format!(
                "role {} cannot belong to an institution of kind {}",
                self.role, kind
            )))
        }
    }
}

/// Changes to an institution; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstitutionChanges {
    pub name_zh: Option<Name>,
    pub name_en: Option<Name>,
    pub region: Option<ShortText>,
}

impl InstitutionChanges {
    pub fn apply(self, current: &Institution) -> InstitutionUpdate {
        InstitutionUpdate {
            id: current.id.clone(),
            name_zh: self.name_zh.unwrap_or_else(|| current.name_zh.clone()),
            name_en: self.name_en.unwrap_or_else(|| current.name_en.clone()),
            region: self.region.unwrap_or_else(|| current.region.clone()),
        }
    }
}

/// Changes to a user; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub display_name_zh: Option<Name>,
    pub display_name_en: Option<Name>,
    pub active: Option<bool>,
}

impl UserChanges {
    pub fn apply(self, current: &User) -> UserUpdate {
        UserUpdate {
            id: current.id.clone(),
            display_name_zh: self
                .display_name_zh
                .unwrap_or_else(|| current.display_name_zh.clone()),
            display_name_en: self
                .display_name_en
                .unwrap_or_else(|| current.display_name_en.clone()),
            active: self.active.unwrap_or(current.active),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdate {
    pub id: UserId,
    pub display_name_zh: Name,
    pub display_name_en: Name,
    pub active: bool,
}

/// Minutes per bookable slot: a multiple of 5 from 5 to 240, 30 unless a specialist
/// says otherwise. Bookings are claimed in 5-minute quanta, so every slot is a whole
/// number of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMinutes(u32);

impl SlotMinutes {
    pub const DEFAULT: SlotMinutes = SlotMinutes(30);

    /// Zero means the default.
    pub fn parse(value: u32) -> Result<Self, InvalidValue> {
        match value {
            0 => Ok(Self::DEFAULT),
            5..=240 if value % 5 == 0 => Ok(Self(value)),
            _ => Err(InvalidValue::new(
                "must be a multiple of 5 between 5 and 240 minutes",
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for SlotMinutes {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the directory knows about a doctor as a specialist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialistProfile {
    pub user_id: UserId,
    /// Sorted, without duplicates, at least one.
    pub specialties: Vec<Specialty>,
    pub title: Name,
    /// Sorted, without duplicates, at least one.
    pub languages: Vec<Language>,
    pub on_call: bool,
    pub slot_minutes: SlotMinutes,
}

impl SpecialistProfile {
    pub fn new(
        user_id: UserId,
        mut specialties: Vec<Specialty>,
        title: Name,
        mut languages: Vec<Language>,
        on_call: bool,
        slot_minutes: SlotMinutes,
    ) -> Result<Self, (&'static str, InvalidValue)> {
        specialties.sort();
        specialties.dedup();
        languages.sort();
        languages.dedup();
        if specialties.is_empty() {
            return Err(("specialties", InvalidValue::new("must name at least one")));
        }
        if specialties.len() > 16 {
            return Err(("specialties", InvalidValue::new("at most 16")));
        }
        if languages.is_empty() {
            return Err(("languages", InvalidValue::new("must name at least one")));
        }
        Ok(Self {
            user_id,
            specialties,
            title,
            languages,
            on_call,
            slot_minutes,
        })
    }
}

/// A specialist as clinics see them: the profile with the user's names and institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specialist {
    pub profile: SpecialistProfile,
    pub institution: InstitutionId,
    pub display_name_zh: Name,
    pub display_name_en: Name,
}

impl Specialist {
    /// Only an active doctor can have a specialist profile.
    pub fn check_eligible(user: &User) -> Result<(), InvalidValue> {
        if user.role != Role::Doctor {
            return Err(InvalidValue(format!(
                "user {} is a {}, not a doctor",
                user.id, user.role
            )));
        }
        if !user.active {
            return Err(InvalidValue(format!("user {} is deactivated", user.id)));
        }
        Ok(())
    }
}

/// How many items a page holds: 1 to 500, 50 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const DEFAULT: PageSize = PageSize(50);
    pub const MAX: u32 = 500;

    /// Zero means the default; anything above the maximum is capped.
    pub fn new(requested: u32) -> Self {
        match requested {
            0 => Self::DEFAULT,
            n => Self(n.min(Self::MAX)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialistQuery {
    pub specialty: Option<Specialty>,
    pub institution: Option<InstitutionId>,
    pub language: Option<Language>,
    /// Matched case-insensitively against either display name.
    pub name_contains: Option<String>,
    /// Return specialists whose user id sorts after this one (the page token).
    pub after: Option<UserId>,
    pub limit: PageSize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub institution: Option<InstitutionId>,
    pub role: Option<Role>,
    pub include_inactive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_fit_institution_kinds() {
        use InstitutionKind::*;
        assert!(Role::ClinicStaff.allowed_in(Inviting));
        assert!(!Role::ClinicStaff.allowed_in(Consulting));
        assert!(Role::Doctor.allowed_in(Consulting));
        assert!(!Role::Doctor.allowed_in(Inviting));
        assert!(Role::Interpreter.allowed_in(Inviting));
        assert!(!Role::Interpreter.allowed_in(Platform));
        assert!(Role::Admin.allowed_in(Platform));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("nurse".parse::<Role>().is_err());
    }

    #[test]
    fn platform_id_and_kind_agree() {
        let name = || Name::parse("x").unwrap();
        let platform = InstitutionId::parse("platform").unwrap();
        let clinic = InstitutionId::parse("biru-county-hospital").unwrap();
        assert!(
            Institution::new(
                platform.clone(),
                InstitutionKind::Inviting,
                name(),
                name(),
                ShortText::default()
            )
            .is_err()
        );
        assert!(
            Institution::new(
                clinic,
                InstitutionKind::Platform,
                name(),
                name(),
                ShortText::default()
            )
            .is_err()
        );
        assert!(
            Institution::new(
                platform,
                InstitutionKind::Platform,
                name(),
                name(),
                ShortText::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(PageSize::new(0).get(), 50);
        assert_eq!(PageSize::new(7).get(), 7);
        assert_eq!(PageSize::new(10_000).get(), 500);
    }

    #[test]
    fn slot_minutes_bounds() {
        assert_eq!(SlotMinutes::parse(0).unwrap().get(), 30);
        assert!(SlotMinutes::parse(4).is_err());
        assert!(SlotMinutes::parse(241).is_err());
        assert_eq!(SlotMinutes::parse(45).unwrap().get(), 45);
        assert!(SlotMinutes::parse(42).is_err());
    }
}
