//! Scheduling: availability, consultations with their slot claims (no double booking
//! under any concurrency), version-checked changes, listings and opinion reports.

#[path = "scheduling/listing.rs"]
mod listing;
#[path = "scheduling/opinions.rs"]
mod opinions;
#[path = "scheduling/slots.rs"]
mod slots;

pub use listing::*;
pub use opinions::*;
pub use slots::*;

use teleconsult::audit::AuditEntry;
use teleconsult::domain::consultation::{
    BookingRequest, ClinicalText, ConsentMethod, ConsentRecord, Consenter, Consultation,
    ConsultationId, ConsultationState, Event, Invitees, PatientRef, UrgentRequest,
};
use teleconsult::domain::directory::{InstitutionKind, Role, SlotMinutes};
use teleconsult::domain::ids::Specialty;
use teleconsult::domain::schedule::{Availability, AvailabilityException, WeeklyInterval, Window};
use teleconsult::store::{Store, StoreError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::backends::Backend;
use crate::fixtures::*;

/// The time the tests' consultations are requested at.
pub const NOW: OffsetDateTime = datetime!(2026-12-01 02:00 UTC);

/// The inviting clinic, its nurse and interpreter; the consulting hospital and its
/// cardiologists.
pub const CLINIC: &str = "biru-county-hospital";
pub const NURSE: &str = "biru-nurse-dawa";
pub const INTERPRETER: &str = "biru-interp-tashi";
pub const HOSPITAL: &str = "zju2";
pub const CHEN: &str = "zju2-chen";
pub const WANG: &str = "zju2-wang";
/// A second clinic and a second hospital, for scoping.
pub const OTHER_CLINIC: &str = "nagqu-peoples";
pub const OTHER_NURSE: &str = "nagqu-nurse-drolma";
pub const OTHER_HOSPITAL: &str = "hz-first";
pub const LI: &str = "hz-first-li";

/// The institutions and people the scheduling tests refer to.
pub async fn seed(store: &dyn Store) {
    seed_institutions(store).await;
    for (id, kind) in [
        (OTHER_CLINIC, InstitutionKind::Inviting),
        (OTHER_HOSPITAL, InstitutionKind::Consulting),
    ] {
        store
            .create_institution(
                &institution(id, kind),
                entry("directory.create_institution", &format!("institution:{id}")),
            )
            .await
            .unwrap();
    }
    for (id, institution, role) in [
        (NURSE, CLINIC, Role::ClinicStaff),
        (INTERPRETER, CLINIC, Role::Interpreter),
        (CHEN, HOSPITAL, Role::Doctor),
        (WANG, HOSPITAL, Role::Doctor),
        (OTHER_NURSE, OTHER_CLINIC, Role::ClinicStaff),
        (LI, OTHER_HOSPITAL, Role::Doctor),
    ] {
        create_user(store, &user(id, institution, role)).await;
    }
}

pub fn consultation_id(n: u32) -> ConsultationId {
    ConsultationId::parse(&format!("c-{n:020x}")).unwrap()
}

pub fn window(start: OffsetDateTime, minutes: i64) -> Window {
    Window::new(start, start + Duration::minutes(minutes)).unwrap()
}

/// `minutes` long, starting `hours` after [`NOW`].
pub fn slot(hours: i64, minutes: i64) -> Window {
    window(NOW + Duration::hours(hours), minutes)
}

/// A booking by `nurse` of `inviting` with `doctor` of `consulting`, requested before
/// the slot begins; SCHEDULED at once.
pub fn booking_at(
    n: u32,
    (inviting, nurse): (&str, &str),
    (doctor, consulting): (&str, &str),
    window: Window,
) -> Consultation {
    let requested_at = NOW.min(window.start() - Duration::hours(1));
    Consultation::booked(
        consultation_id(n),
        BookingRequest {
            doctor: user_id(doctor),
            window,
            patient: PatientRef::parse(&format!("BIRU-2026-{n:04}")).unwrap(),
            specialty: Specialty::parse("cardiology").unwrap(),
            reason: ClinicalText::required("chest pain on exertion", 1_000).unwrap(),
            case_summary: ClinicalText::optional("58 years, hypertension, 4500 m", 1_000).unwrap(),
        },
        institution_id(inviting),
        institution_id(consulting),
        user_id(nurse),
        true,
        requested_at,
    )
    .unwrap()
}

/// A booking by the clinic's nurse with `doctor` of the hospital.
pub fn booking(n: u32, doctor: &str, window: Window) -> Consultation {
    booking_at(n, (CLINIC, NURSE), (doctor, HOSPITAL), window)
}

/// A booking the doctor has yet to accept.
pub fn unconfirmed(n: u32, doctor: &str, window: Window) -> Consultation {
    let booked = booking(n, doctor, window);
    Consultation::booked(
        booked.id,
        BookingRequest {
            doctor: user_id(doctor),
            window,
            patient: booked.patient,
            specialty: booked.specialty,
            reason: booked.reason,
            case_summary: booked.case_summary,
        },
        booked.inviting_institution,
        institution_id(HOSPITAL),
        booked.requested_by,
        false,
        booked.created_at,
    )
    .unwrap()
}

pub fn urgent(
    n: u32,
    specialty: &str,
    (inviting, nurse): (&str, &str),
    at: OffsetDateTime,
) -> Consultation {
    Consultation::urgent(
        consultation_id(n),
        UrgentRequest {
            specialty: Specialty::parse(specialty).unwrap(),
            patient: PatientRef::parse(&format!("NAGQU-{n:04}")).unwrap(),
            reason: ClinicalText::required("suspected HAPE", 1_000).unwrap(),
            case_summary: ClinicalText::default(),
        },
        institution_id(inviting),
        user_id(nurse),
        at,
    )
}

pub fn accept(doctor: &str, institution: &str, at: OffsetDateTime) -> Event {
    Event::Accept {
        doctor: user_id(doctor),
        institution: institution_id(institution),
        slot_minutes: SlotMinutes::DEFAULT,
        at,
    }
}

pub fn consent() -> Event {
    Event::RecordConsent(
        ConsentRecord::new(
            Consenter::Guardian,
            ConsentMethod::VerbalWitnessed,
            user_id(NURSE),
            NOW,
            "Tenzin, village doctor",
        )
        .unwrap(),
    )
}

/// The audit entry the API would write for `action` on `consultation`.
pub fn audit(action: &str, consultation: &Consultation) -> AuditEntry {
    entry(
        &format!("scheduling.{action}"),
        &format!("consultation:{}", consultation.id),
    )
    .target_institution(&consultation.inviting_institution)
}

pub async fn create(store: &dyn Store, consultation: &Consultation) -> Result<(), StoreError> {
    store
        .create_consultation(consultation, audit("book_consultation", consultation))
        .await
}

pub async fn update(store: &dyn Store, consultation: &Consultation) -> Result<(), StoreError> {
    store
        .update_consultation(consultation, audit("update_consultation", consultation))
        .await
}

/// Applies `event` to the stored consultation and stores the result.
pub async fn change(store: &dyn Store, consultation: &Consultation, event: Event) -> Consultation {
    let next = consultation.apply(event).unwrap();
    update(store, &next).await.unwrap();
    next
}

pub async fn stored(store: &dyn Store, consultation: &Consultation) -> Option<Consultation> {
    store.consultation(&consultation.id).await.unwrap()
}

/// Claimed quanta of the given doctors within a day either side of [`NOW`]'s range.
pub async fn claims(store: &dyn Store, doctors: &[&str]) -> Vec<(String, OffsetDateTime)> {
    let doctors: Vec<_> = doctors.iter().map(|d| user_id(d)).collect();
    let range = window(NOW - Duration::days(2), 7 * 24 * 60);
    store
        .claimed_quanta(&doctors, &range)
        .await
        .unwrap()
        .into_iter()
        .map(|(doctor, at)| (doctor.to_string(), at))
        .collect()
}

/// The quanta `window` claims for `doctor`.
pub fn quanta(doctor: &str, window: Window) -> Vec<(String, OffsetDateTime)> {
    window
        .quanta()
        .into_iter()
        .map(|at| (doctor.to_owned(), at))
        .collect()
}

/// Checks that `result` says `doctor`'s `window` is taken, in the store's words.
#[track_caller]
pub fn assert_slot_taken(result: Result<(), StoreError>, doctor: &str, window: Window) {
    let expected = format!("{doctor} at {window}");
    assert!(
        matches!(&result, Err(StoreError::AlreadyExists { entity: "slot", id }) if *id == expected),
        "expected {expected} to be taken: {result:?}"
    );
}

#[track_caller]
pub fn assert_concurrent(result: Result<(), StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Concurrent { .. })),
        "{result:?}"
    );
}

pub async fn availability_round_trips_and_is_replaced(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let doctor = user_id(CHEN);
    assert_eq!(store.availability(&doctor).await.unwrap(), None);

    let published = Availability::new(
        doctor.clone(),
        vec![
            // Sunday 22:00 to Monday 02:00, local time: across midnight and the week end.
            WeeklyInterval::new(7, 22 * 60, 26 * 60).unwrap(),
            WeeklyInterval::new(1, 9 * 60, 12 * 60).unwrap(),
            WeeklyInterval::new(3, 14 * 60, 17 * 60 + 30).unwrap(),
        ],
        vec![
            AvailabilityException {
                window: window(datetime!(2026-12-24 00:00 UTC), 3 * 24 * 60),
                reason: "年假 annual leave".into(),
            },
            AvailabilityException {
                window: window(datetime!(2026-12-02 06:00 UTC), 90),
                reason: "ward round".into(),
            },
        ],
        true,
    )
    .unwrap();
    let before = audit_log(store).await.len();
    store
        .set_availability(
            &published,
            entry("scheduling.set_availability", "availability:zju2-chen"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.availability(&doctor).await.unwrap(),
        Some(published.clone())
    );

    let replaced = Availability::new(
        doctor.clone(),
        vec![WeeklyInterval::new(5, 8 * 60, 12 * 60).unwrap()],
        vec![],
        false,
    )
    .unwrap();
    store
        .set_availability(
            &replaced,
            entry("scheduling.set_availability", "availability:zju2-chen"),
        )
        .await
        .unwrap();
    assert_eq!(store.availability(&doctor).await.unwrap(), Some(replaced));
    assert_eq!(store.availability(&user_id(WANG)).await.unwrap(), None);
    assert_eq!(audit_log(store).await.len(), before + 2);

    // A doctor who is not in the directory has no hours to publish.
    let stranger = Availability::new(user_id("nobody"), vec![], vec![], false).unwrap();
    let error = store
        .set_availability(
            &stranger,
            entry("scheduling.set_availability", "availability:nobody"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(audit_log(store).await.len(), before + 2);
}

pub async fn a_consultation_reads_back_as_stored(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let before = audit_log(store).await.len();

    let booked = booking(1, CHEN, slot(24, 30));
    assert_eq!(booked.consent, None);
    let entry = audit("book_consultation", &booked);
    store
        .create_consultation(&booked, entry.clone())
        .await
        .unwrap();
    let read = stored(store, &booked).await.unwrap();
    assert_eq!(read, booked);
    assert_eq!(read.version, 1);
    assert_eq!(read.state, ConsultationState::Scheduled);
    assert_eq!(claims(store, &[CHEN]).await, quanta(CHEN, slot(24, 30)));
    let log = audit_log(store).await;
    assert_eq!(log.len(), before + 1);
    assert_eq!(log.last().unwrap().entry, entry);

    // Every optional part, written by a change and by a creation.
    let consented = change(store, &booked, consent()).await;
    let invited = change(
        store,
        &consented,
        Event::Invite {
            interpreter: Some(user_id(INTERPRETER)),
            doctor: Some(user_id(WANG)),
        },
    )
    .await;
    assert!(invited.consent.is_some());
    assert_eq!(stored(store, &invited).await, Some(invited.clone()));

    let with_invitees = Consultation {
        id: consultation_id(2),
        window: Some(slot(26, 30)),
        version: 1,
        invitees: Invitees {
            interpreters: vec![user_id(INTERPRETER)],
            additional_doctors: vec![user_id(LI), user_id(WANG)],
        },
        ..invited
    };
    create(store, &with_invitees).await.unwrap();
    assert_eq!(stored(store, &with_invitees).await, Some(with_invitees));

    let pending = urgent(3, "cardiology", (CLINIC, NURSE), NOW);
    create(store, &pending).await.unwrap();
    assert_eq!(stored(store, &pending).await, Some(pending));
    assert_eq!(store.consultation(&consultation_id(9)).await.unwrap(), None);

    let error = create(store, &booked).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { entity: "consultation", id } if *id == booked.id.to_string()),
        "{error:?}"
    );
    assert_eq!(audit_log(store).await.len(), before + 5);
}

pub async fn a_change_to_a_stale_version_is_refused(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let booked = booking(1, CHEN, slot(24, 30));
    create(store, &booked).await.unwrap();

    let consented = change(store, &booked, consent()).await;
    assert_eq!(consented.version, 2);
    let log = audit_log(store).await;
    let stale = booked
        .apply(Event::Invite {
            interpreter: Some(user_id(INTERPRETER)),
            doctor: None,
        })
        .unwrap();
    assert_concurrent(update(store, &stale).await);
    // Skipping a version is refused too.
    let ahead = Consultation {
        version: 4,
        ..consented.apply(consent()).unwrap()
    };
    assert_concurrent(update(store, &ahead).await);
    let unknown = Consultation {
        id: consultation_id(9),
        ..consented.apply(consent()).unwrap()
    };
    let error = update(store, &unknown).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "consultation", id } if *id == unknown.id.to_string()),
        "{error:?}"
    );

    assert_eq!(stored(store, &booked).await, Some(consented));
    assert_eq!(audit_log(store).await, log);
}

pub async fn concurrent_changes_of_one_version_have_one_winner(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    const DOCTORS: usize = 50;
    for n in 0..DOCTORS {
        create_user(
            store.as_ref(),
            &user(&format!("zju2-doctor-{n:02}"), HOSPITAL, Role::Doctor),
        )
        .await;
    }
    let request = urgent(1, "high-altitude-medicine", (CLINIC, NURSE), NOW);
    create(store.as_ref(), &request).await.unwrap();
    let before = audit_log(store.as_ref()).await.len();

    // Every doctor of the pool accepts what they all read.
    let read = stored(store.as_ref(), &request).await.unwrap();
    let tasks: Vec<_> = (0..DOCTORS)
        .map(|n| {
            let store = store.clone();
            let accepted = read
                .apply(accept(&format!("zju2-doctor-{n:02}"), HOSPITAL, NOW))
                .unwrap();
            tokio::spawn(async move {
                let result = update(store.as_ref(), &accepted).await;
                (accepted, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (accepted, Ok(())) => winners.push(accepted),
            (_, result) => assert_concurrent(result),
        }
    }

    assert_eq!(winners.len(), 1);
    let stored = stored(store.as_ref(), &request).await.unwrap();
    assert_eq!(stored, winners[0]);
    assert_eq!(
        (stored.state, stored.version),
        (ConsultationState::Scheduled, 2)
    );
    assert_eq!(audit_log(store.as_ref()).await.len(), before + 1);
    assert!(store.verify_audit().await.unwrap().is_intact());
}
