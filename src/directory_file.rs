//! The directory file: institutions, users and specialist profiles in TOML, as read by
//! `teleconsult directory import FILE` and by a development broker on first start.
//! `deploy/directory.example.toml` documents the format.
//!
//! The file is parsed in two steps. serde reads it into raw structs that reject unknown
//! keys, so a misspelt `on_cal = true` is an error rather than a silent default, and
//! toml's message keeps the line. The raw values then become domain values through the
//! constructors in [`crate::domain`], and the rules that span entries (unique ids, a
//! user's institution and role, who may have a specialist profile) are checked here,
//! before anything reaches the store. Every error names the entry and field it is about,
//! e.g. `users[3] (biru-nurse-dawa, line 120).role: unknown role "nurse"; ...`.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::domain::directory::{
    Institution, InstitutionKind, Language, Name, Role, ShortText, SlotMinutes, Specialist,
    SpecialistProfile, User,
};
use crate::domain::ids::{InstitutionId, Specialty, UserId};
use crate::domain::{InvalidField, InvalidValue};
use crate::store::DirectorySeed;

/// The example directory shipped in `deploy/`, imported by a development broker.
pub const EXAMPLE: &str = include_str!("../deploy/directory.example.toml");

#[derive(Debug, thiserror::Error)]
pub enum DirectoryFileError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read directory file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// Any other error, with the file it was found in.
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<DirectoryFileError>,
    },
    /// Not TOML, or not shaped like a directory file: an unknown key, a missing key or a
    /// value of the wrong type. toml's message gives the line and column.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A value breaks a rule; `field` names the entry and field, e.g.
    /// `users[3] (biru-nurse-dawa, line 120).role`.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// Two entries of one section have the same id.
    #[error("{place}.id: {id} is already defined by {first}")]
    DuplicateId {
        place: String,
        id: String,
        first: String,
    },
    /// A user names an institution that the file does not define.
    #[error("{place}.institution: {institution} is not an institution defined in this file")]
    UnknownInstitution { place: String, institution: String },
}

/// Reads and checks the directory file at `path`.
pub fn load(path: &Path) -> Result<DirectorySeed, DirectoryFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| DirectoryFileError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text).map_err(|error| DirectoryFileError::InFile {
        path: path.to_owned(),
        error: Box::new(error),
    })
}

/// Parses and checks a directory file's text.
pub fn parse(text: &str) -> Result<DirectorySeed, DirectoryFileError> {
    let raw: RawDirectory = toml::from_str(text)?;
    let lines = LineIndex::new(text);

    let mut seed = DirectorySeed::default();
    // Institution id -> (kind, place of its entry), for the checks on users.
    let mut institutions: HashMap<InstitutionId, (InstitutionKind, String)> = HashMap::new();
    for (index, entry) in raw.institutions.iter().enumerate() {
        let place = lines.place("institutions", index, &entry.get_ref().id, entry.span());
        let institution = entry.get_ref().build(&place)?;
        if let Some((_, first)) = institutions.get(&institution.id) {
            return Err(DirectoryFileError::DuplicateId {
                id: institution.id.to_string(),
                first: first.clone(),
                place,
            });
        }
        institutions.insert(institution.id.clone(), (institution.kind, place));
        seed.institutions.push(institution);
    }

    let mut users: HashMap<UserId, String> = HashMap::new();
    for (index, entry) in raw.users.iter().enumerate() {
        let raw_user = entry.get_ref();
        let place = lines.place("users", index, &raw_user.id, entry.span());
        let user = raw_user.build(&place)?;
        if let Some(first) = users.get(&user.id) {
            return Err(DirectoryFileError::DuplicateId {
                id: user.id.to_string(),
                first: first.clone(),
                place,
            });
        }
        let Some((kind, _)) = institutions.get(&user.institution) else {
            return Err(DirectoryFileError::UnknownInstitution {
                institution: user.institution.to_string(),
                place,
            });
        };
        user.check_placement(*kind).map_err(|problem| {
            InvalidField::new(
                format!("{place}.role"),
                format_args!("{problem} ({})", user.institution),
            )
        })?;
        if let Some(specialist) = &raw_user.specialist {
            let place = format!("{place}.specialist");
            Specialist::check_eligible(&user)
                .map_err(|problem| InvalidField::new(&place, problem))?;
            seed.specialists
                .push(specialist.build(user.id.clone(), &place)?);
        }
        users.insert(user.id.clone(), place);
        seed.users.push(user);
    }
    Ok(seed)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    #[serde(default)]
    institutions: Vec<Spanned<RawInstitution>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstitution {
    id: String,
    kind: String,
    name_zh: String,
    name_en: String,
    #[serde(default)]
    region: String,
}

impl RawInstitution {
    fn build(&self, place: &str) -> Result<Institution, InvalidField> {
        Institution::new(
            InstitutionId::parse(&self.id).map_err(at(place, "id"))?,
            self.kind.parse().map_err(at(place, "kind"))?,
            Name::parse(&self.name_zh).map_err(at(place, "name_zh"))?,
            Name::parse(&self.name_en).map_err(at(place, "name_en"))?,
            ShortText::parse(&self.region).map_err(at(place, "region"))?,
        )
        .map_err(at(place, "kind"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: String,
    institution: String,
    role: String,
    name_zh: String,
    name_en: String,
    #[serde(default = "active_by_default")]
    active: bool,
    specialist: Option<RawSpecialist>,
}

fn active_by_default() -> bool {
    true
}

impl RawUser {
    fn build(&self, place: &str) -> Result<User, InvalidField> {
        Ok(User {
            id: UserId::parse(&self.id).map_err(at(place, "id"))?,
            institution: InstitutionId::parse(&self.institution)
                .map_err(at(place, "institution"))?,
            role: self.role.parse::<Role>().map_err(at(place, "role"))?,
            display_name_zh: Name::parse(&self.name_zh).map_err(at(place, "name_zh"))?,
            display_name_en: Name::parse(&self.name_en).map_err(at(place, "name_en"))?,
            active: self.active,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecialist {
    specialties: Vec<String>,
    title: String,
    languages: Vec<String>,
    #[serde(default)]
    on_call: bool,
    slot_minutes: Option<u32>,
}

impl RawSpecialist {
    /// `place` is the section's, e.g. `users[4] (zju2-cardio-chen, line 90).specialist`.
    fn build(&self, user_id: UserId, place: &str) -> Result<SpecialistProfile, InvalidField> {
        let specialties = self
            .specialties
            .iter()
            .enumerate()
            .map(|(i, value)| {
                Specialty::parse(value).map_err(at(place, &format!("specialties[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let languages = self
            .languages
            .iter()
            .enumerate()
            .map(|(i, value)| {
                value
                    .parse::<Language>()
                    .map_err(at(place, &format!("languages[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let slot_minutes = match self.slot_minutes {
            None => SlotMinutes::DEFAULT,
            // The domain reads 0 as "the default"; in a file that is a mistake.
            Some(0) => {
                return Err(at(place, "slot_minutes")(InvalidValue::new(
                    "must be a multiple of 5 between 5 and 240 minutes",
                )));
            }
            Some(minutes) => SlotMinutes::parse(minutes).map_err(at(place, "slot_minutes"))?,
        };
        SpecialistProfile::new(
            user_id,
            specialties,
            Name::parse(&self.title).map_err(at(place, "title"))?,
            languages,
            self.on_call,
            slot_minutes,
        )
        .map_err(|(name, problem)| field_of(place, name, problem))
    }
}

fn field_of(place: &str, name: &str, problem: InvalidValue) -> InvalidField {
    InvalidField::new(format!("{place}.{name}"), problem)
}

/// `result.map_err(at(place, "role"))` names the field a failure came from.
fn at<'a>(place: &'a str, name: &'a str) -> impl FnOnce(InvalidValue) -> InvalidField + 'a {
    move |problem| field_of(place, name, problem)
}

/// Turns byte offsets into line numbers, so that errors point into the file.
struct LineIndex {
    /// The byte offset at which each line after the first starts.
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = text.match_indices('\n').map(|(at, _)| at + 1).collect();
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) + 1
    }

    /// Names an entry, e.g. `users[3] (biru-nurse-dawa, line 120)`: its index in the
    /// section, counting from 0, its id as written and the line where it starts.
    fn place(&self, section: &str, index: usize, id: &str, span: std::ops::Range<usize>) -> String {
        let line = self.line(span.start);
        // An id that is not a valid slug might be empty or hold anything; quote it.
        if UserId::parse(id).is_ok() {
            format!("{section}[{index}] ({id}, line {line})")
        } else {
            format!("{section}[{index}] ({id:?}, line {line})")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const SPECIALTIES: [&str; 9] = [
        "cardiology",
        "ophthalmology",
        "plastic-surgery",
        "dermatology",
        "paediatrics",
        "psychiatry",
        "haematology",
        "transfusion-medicine",
        "high-altitude-medicine",
    ];

    fn example() -> DirectorySeed {
        parse(EXAMPLE).unwrap_or_else(|error| panic!("the example does not parse: {error}"))
    }

    #[test]
    fn example_parses() {
        let seed = example();
        assert!(seed.institutions.len() >= 14);
        assert!(seed.users.len() > seed.specialists.len());
    }

    #[test]
    fn example_has_two_specialists_for_every_specialty() {
        let seed = example();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for profile in &seed.specialists {
            for specialty in &profile.specialties {
                *count.entry(specialty.as_str()).or_default() += 1;
            }
        }
        for specialty in SPECIALTIES {
            let n = count.get(specialty).copied().unwrap_or(0);
            assert!(n >= 2, "{specialty} has {n} specialists");
        }
        // Some on call and some who speak Tibetan, for urgent requests and language search.
        assert!(seed.specialists.iter().any(|p| p.on_call));
        let tibetan = seed
            .specialists
            .iter()
            .filter(|p| p.languages.contains(&Language::Tibetan))
            .count();
        assert!(tibetan >= 2, "{tibetan} specialists speak tibetan");
    }

    #[test]
    fn example_has_users_of_every_role_and_a_platform_admin() {
        let seed = example();
        for role in Role::ALL {
            assert!(seed.users.iter().any(|u| u.role == role), "no {role}");
        }
        let admin = seed
            .users
            .iter()
            .find(|u| u.id.as_str() == "platform-admin")
            .expect("platform-admin");
        assert_eq!(admin.role, Role::Admin);
        assert!(admin.institution.is_platform());
        assert!(admin.active);
    }

    #[test]
    fn example_has_every_kind_of_institution() {
        let seed = example();
        let kinds: Vec<_> = seed.institutions.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|&&k| k == InstitutionKind::Platform)
                .count(),
            1
        );
        assert!(kinds.contains(&InstitutionKind::Consulting));
        assert!(kinds.contains(&InstitutionKind::Inviting));
    }

    #[test]
    fn defaults_apply() {
        let seed = parse(&format!(
            "{CLINIC}{HOSPITAL}
             [[users]]
             id = \"doc\"
             institution = \"zju2-hospital\"
             role = \"doctor\"
             name_zh = \"陈明\"
             name_en = \"Chen Ming\"
             [users.specialist]
             specialties = [\"cardiology\", \"cardiology\"]
             title = \"chief physician (主任医师)\"
             languages = [\"english\", \"mandarin\"]
             "
        ))
        .unwrap();
        assert_eq!(seed.institutions[0].region.as_str(), "");
        assert!(seed.users[0].active);
        let profile = &seed.specialists[0];
        assert_eq!(profile.user_id.as_str(), "doc");
        assert!(!profile.on_call);
        assert_eq!(profile.slot_minutes, SlotMinutes::DEFAULT);
        assert_eq!(profile.specialties.len(), 1);
        assert_eq!(profile.languages, [Language::Mandarin, Language::English]);
    }

    #[test]
    fn an_empty_file_is_an_empty_directory() {
        let seed = parse("# nothing yet\n").unwrap();
        assert!(seed.institutions.is_empty() && seed.users.is_empty());
    }

    const CLINIC: &str = "
        [[institutions]]
        id = \"biru-county-hospital\"
        kind = \"inviting\"
        name_zh = \"比如县人民医院\"
        name_en = \"Biru County People's Hospital\"
    ";

    const HOSPITAL: &str = "
        [[institutions]]
        id = \"zju2-hospital\"
        kind = \"consulting\"
        name_zh = \"浙江大学医学院附属第二医院\"
        name_en = \"The Second Affiliated Hospital, Zhejiang University School of Medicine\"
        region = \"Hangzhou, Zhejiang\"
    ";

    fn user(id: &str, institution: &str, role: &str) -> String {
        format!(
            "
            [[users]]
            id = \"{id}\"
            institution = \"{institution}\"
            role = \"{role}\"
            name_zh = \"达瓦\"
            name_en = \"Dawa\"
            "
        )
    }

    /// The error's message, which must mention every one of `expected`.
    fn error(text: &str, expected: &[&str]) -> DirectoryFileError {
        let error = parse(text).expect_err("the file should be rejected");
        let message = error.to_string();
        for part in expected {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
        error
    }

    #[test]
    fn unknown_role_names_the_entry_and_field() {
        let text = [
            CLINIC,
            &user("biru-nurse-dawa", "biru-county-hospital", "nurse"),
        ]
        .concat();
        let rejected = error(&text, &[]);
        assert_eq!(
            rejected.to_string(),
            "users[0] (biru-nurse-dawa, line 8).role: unknown role \"nurse\"; \
             expected clinic_staff, doctor, interpreter or admin"
        );
        assert!(matches!(rejected, DirectoryFileError::Invalid(_)));
    }

    #[test]
    fn lines_point_at_the_entry_header() {
        let text = EXAMPLE.replace(
            "id = \"biru-nurse-dawa\"\ninstitution = \"biru-county-hospital\"\nrole = \"clinic_staff\"",
            "id = \"biru-nurse-dawa\"\ninstitution = \"biru-county-hospital\"\nrole = \"nurse\"",
        );
        assert_ne!(text, EXAMPLE);
        let header = EXAMPLE
            .lines()
            .position(|line| line == "id = \"biru-nurse-dawa\"")
            .unwrap(); // 0-based index of the id line: the 1-based number of the header
        let index = example()
            .users
            .iter()
            .position(|u| u.id.as_str() == "biru-nurse-dawa")
            .unwrap();
        error(
            &text,
            &[&format!(
                "users[{index}] (biru-nurse-dawa, line {header}).role: unknown role \"nurse\""
            )],
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad_kind = CLINIC.replace("inviting", "hospital");
        error(
            &bad_kind,
            &[
                "institutions[0] (biru-county-hospital",
                ").kind: unknown institution kind",
            ],
        );
        let bad_id = CLINIC.replace("biru-county-hospital", "Biru County");
        error(&bad_id, &["institutions[0] (\"Biru County\"", ").id: "]);
        let not_platform = CLINIC.replace("\"inviting\"", "\"platform\"");
        error(&not_platform, &[").kind: only the institution `platform`"]);
        let blank_name = [
            CLINIC,
            &user("dawa", "biru-county-hospital", "clinic_staff"),
        ]
        .concat()
        .replace("name_en = \"Dawa\"", "name_en = \"  \"");
        error(
            &blank_name,
            &["users[0] (dawa, line", ").name_en: must not be empty"],
        );
    }

    #[test]
    fn unknown_keys_keep_toml_message_and_line() {
        let typo = [
            CLINIC,
            &user("dawa", "biru-county-hospital", "clinic_staff"),
        ]
        .concat()
        .replace("role =", "rol =");
        let rejected = error(&typo, &["line 11", "unknown field `rol`"]);
        assert!(matches!(rejected, DirectoryFileError::Syntax(_)));
        let extra = format!("{CLINIC}\nnickname = \"biru\"\n");
        error(&extra, &["unknown field `nickname`", "line 8"]);
        let top = "[[hospitals]]\nid = \"x\"\n";
        error(top, &["unknown field `hospitals`", "line 1"]);
    }

    #[test]
    fn syntax_errors_keep_the_line() {
        let broken = format!("{CLINIC}\n[[users]\n");
        let rejected = error(&broken, &["line 8"]);
        assert!(matches!(rejected, DirectoryFileError::Syntax(_)));
    }

    #[test]
    fn duplicate_institutions_are_rejected() {
        let text = [CLINIC, HOSPITAL, CLINIC].concat();
        let rejected = error(
            &text,
            &[
                "institutions[2] (biru-county-hospital, line",
                ").id: biru-county-hospital is already defined by institutions[0]",
            ],
        );
        assert!(matches!(rejected, DirectoryFileError::DuplicateId { .. }));
    }

    #[test]
    fn duplicate_users_are_rejected() {
        let dawa = user("biru-nurse-dawa", "biru-county-hospital", "clinic_staff");
        let other = user("biru-nurse-drolma", "biru-county-hospital", "clinic_staff");
        let text = [CLINIC, &dawa, &other, &dawa].concat();
        let rejected = error(
            &text,
            &[
                "users[2] (biru-nurse-dawa, line",
                ").id: biru-nurse-dawa is already defined by users[0]",
            ],
        );
        assert!(matches!(rejected, DirectoryFileError::DuplicateId { .. }));
    }

    #[test]
    fn users_must_belong_to_an_institution_in_the_file() {
        let text = [
            CLINIC,
            &user("lhari-pema", "lhari-county-hospital", "clinic_staff"),
        ]
        .concat();
        let rejected = error(
            &text,
            &[
                "users[0] (lhari-pema, line",
                ").institution: lhari-county-hospital is not an institution defined in this file",
            ],
        );
        assert!(matches!(
            rejected,
            DirectoryFileError::UnknownInstitution { .. }
        ));
    }

    #[test]
    fn roles_must_fit_the_institution_kind() {
        let doctor_at_clinic =
            [CLINIC, &user("biru-doc", "biru-county-hospital", "doctor")].concat();
        error(
            &doctor_at_clinic,
            &[
                "users[0] (biru-doc, line",
                ").role: role doctor cannot belong to",
                "(biru-county-hospital)",
            ],
        );
        let staff_at_hospital = [
            HOSPITAL,
            &user("zju2-staff", "zju2-hospital", "clinic_staff"),
        ]
        .concat();
        error(
            &staff_at_hospital,
            &[
                "users[0] (zju2-staff, line",
                ").role: role clinic_staff cannot",
            ],
        );
        let platform = "[[institutions]]\nid = \"platform\"\nkind = \"platform\"\n\
                        name_zh = \"平台\"\nname_en = \"Platform\"\n";
        let interpreter = [platform, &user("p-interp", "platform", "interpreter")].concat();
        error(&interpreter, &[").role: role interpreter cannot"]);
        let admin = [platform, &user("platform-admin", "platform", "admin")].concat();
        assert!(parse(&admin).is_ok());
    }

    const SPECIALIST: &str = "
        [users.specialist]
        specialties = [\"cardiology\"]
        title = \"chief physician (主任医师)\"
        languages = [\"mandarin\"]
    ";

    #[test]
    fn only_active_doctors_have_a_specialist_section() {
        let nurse = [
            CLINIC,
            &user("biru-nurse-dawa", "biru-county-hospital", "clinic_staff"),
            SPECIALIST,
        ]
        .concat();
        let rejected = error(
            &nurse,
            &[
                "users[0] (biru-nurse-dawa, line",
                ").specialist: ",
                "not a doctor",
            ],
        );
        assert!(matches!(rejected, DirectoryFileError::Invalid(_)));
        let retired = [
            HOSPITAL,
            &user("zju2-retired", "zju2-hospital", "doctor"),
            "active = false\n",
            SPECIALIST,
        ]
        .concat();
        error(
            &retired,
            &[
                "users[0] (zju2-retired, line",
                ").specialist: ",
                "deactivated",
            ],
        );
    }

    #[test]
    fn bad_specialist_values_name_their_field() {
        let doctor = [
            HOSPITAL,
            &user("zju2-cardio-chen", "zju2-hospital", "doctor"),
            SPECIALIST,
        ]
        .concat();
        assert_eq!(parse(&doctor).unwrap().specialists.len(), 1);
        let cases = [
            (
                "[\"cardiology\"]",
                "[\"cardiology\", \"Eye Surgery\"]",
                ".specialist.specialties[1]: ",
            ),
            (
                "[\"cardiology\"]",
                "[]",
                ".specialist.specialties: must name at least one",
            ),
            (
                "[\"mandarin\"]",
                "[\"tibetian\"]",
                ".specialist.languages[0]: unknown language \"tibetian\"",
            ),
            (
                "[\"mandarin\"]",
                "[]",
                ".specialist.languages: must name at least one",
            ),
            (
                "title = \"chief physician (主任医师)\"",
                "title = \"\"",
                ".specialist.title: must not be empty",
            ),
        ];
        for (from, to, expected) in cases {
            error(
                &doctor.replace(from, to),
                &["users[0] (zju2-cardio-chen, line", expected],
            );
        }
        for minutes in [0, 4, 241] {
            let text = format!("{doctor}slot_minutes = {minutes}\n");
            error(
                &text,
                &[").specialist.slot_minutes: must be a multiple of 5 between 5 and 240"],
            );
        }
        let text = format!("{doctor}slot_minutes = -30\n");
        let rejected = error(&text, &["slot_minutes"]);
        assert!(matches!(rejected, DirectoryFileError::Syntax(_)));
        let text = format!("{doctor}on_cal = true\n");
        error(&text, &["unknown field `on_cal`"]);
    }

    #[test]
    fn load_names_the_file() {
        let missing = Path::new("/nonexistent/teleconsult/directory.toml");
        let error = load(missing).expect_err("a missing file");
        assert!(matches!(error, DirectoryFileError::Read { .. }));
        assert!(
            error
                .to_string()
                .contains("/nonexistent/teleconsult/directory.toml"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("directory.toml");
        std::fs::write(
            &path,
            [CLINIC, &user("dawa", "biru-county-hospital", "nurse")].concat(),
        )
        .unwrap();
        let message = load(&path).expect_err("an invalid file").to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("users[0] (dawa, line 8).role: unknown role"),
            "{message}"
        );

        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(load(&path).unwrap().users.len(), example().users.len());
    }
}
