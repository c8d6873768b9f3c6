//! Listing consultations: who sees which, filters, pages, and the consultations the
//! broker's timers look for.

use teleconsult::domain::consultation::{Consultation, ConsultationState, Event};
use teleconsult::domain::directory::{PageSize, Role};
use teleconsult::domain::ids::{InstitutionId, Specialty};
use teleconsult::domain::policy::{self, ConsultationScope};
use teleconsult::domain::principal::Principal;
use teleconsult::store::{ConsultationFilter, Store, consultation_sort_key};
use time::Duration;

use super::*;
use crate::backends::Backend;
use crate::fixtures::*;

fn sorted(mut consultations: Vec<Consultation>) -> Vec<Consultation> {
    consultations.sort_by_key(|c| (consultation_sort_key(c), c.id.clone()));
    consultations
}

fn ids(consultations: &[Consultation]) -> Vec<u32> {
    consultations
        .iter()
        .map(|c| u32::from_str_radix(&c.id.as_str()[2..], 16).unwrap())
        .collect()
}

async fn list(
    store: &dyn Store,
    scope: &ConsultationScope,
    filter: &ConsultationFilter,
) -> Vec<Consultation> {
    store.consultations(scope, filter).await.unwrap()
}

/// Every page of the listing, following the page token until an empty page.
async fn every_page(
    store: &dyn Store,
    scope: &ConsultationScope,
    filter: ConsultationFilter,
) -> Vec<Consultation> {
    let mut listed = Vec::new();
    let mut filter = filter;
    loop {
        let page = list(store, scope, &filter).await;
        assert!(page.len() <= filter.limit.get() as usize);
        let Some(last) = page.last() else {
            return listed;
        };
        filter.after = Some((consultation_sort_key(last), last.id.clone()));
        listed.extend(page);
    }
}

fn principal(user: &str, institution: &str, role: Role, specialties: &[&str]) -> Principal {
    Principal {
        user: user_id(user),
        institution: institution_id(institution),
        role,
        certificate_fingerprint: String::new(),
        specialties: specialties
            .iter()
            .map(|s| Specialty::parse(s).unwrap())
            .collect(),
        on_call: false,
    }
}

/// Consultations of two clinics with two hospitals, routine and urgent, in every
/// stage of answering; returns them as stored.
async fn seed_consultations(store: &dyn Store) -> Vec<Consultation> {
    let clinic = (CLINIC, NURSE);
    let other_clinic = (OTHER_CLINIC, OTHER_NURSE);
    let mut all = Vec::new();

    let first = booking_at(1, clinic, (CHEN, HOSPITAL), slot(24, 30));
    create(store, &first).await.unwrap();
    let invite = Event::Invite {
        interpreter: Some(user_id(INTERPRETER)),
        doctor: None,
    };
    all.push(change(store, &first, invite).await);

    let second = booking_at(2, other_clinic, (LI, OTHER_HOSPITAL), slot(25, 30));
    create(store, &second).await.unwrap();
    let invite = Event::Invite {
        interpreter: None,
        doctor: Some(user_id(CHEN)),
    };
    all.push(change(store, &second, invite).await);

    let third = booking_at(3, other_clinic, (WANG, HOSPITAL), slot(26, 30));
    create(store, &third).await.unwrap();
    all.push(third);

    let on_call = urgent(4, "cardiology", clinic, NOW - Duration::minutes(10));
    create(store, &on_call).await.unwrap();
    all.push(on_call);

    let escalated = urgent(5, "cardiology", other_clinic, NOW - Duration::minutes(20));
    create(store, &escalated).await.unwrap();
    all.push(change(store, &escalated, Event::Escalate { at: NOW }).await);

    let neurology = urgent(6, "neurology", clinic, NOW - Duration::minutes(5));
    create(store, &neurology).await.unwrap();
    all.push(neurology);

    let cancelled = booking_at(7, clinic, (LI, OTHER_HOSPITAL), slot(27, 30));
    create(store, &cancelled).await.unwrap();
    let cancel = Event::Cancel {
        reason: "patient recovered".into(),
        at: NOW,
    };
    all.push(change(store, &cancelled, cancel).await);

    let answered = urgent(8, "cardiology", clinic, NOW - Duration::minutes(30));
    create(store, &answered).await.unwrap();
    all.push(change(store, &answered, accept(WANG, HOSPITAL, NOW)).await);
    all
}

pub async fn listings_show_each_caller_their_consultations(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let all = seed_consultations(store).await;

    let mut on_call_chen = principal(CHEN, HOSPITAL, Role::Doctor, &["cardiology"]);
    on_call_chen.on_call = true;
    let mut on_call_li = principal(LI, OTHER_HOSPITAL, Role::Doctor, &["neurology"]);
    on_call_li.on_call = true;
    let cases = [
        (
            principal("platform-admin", InstitutionId::PLATFORM, Role::Admin, &[]),
            &[1, 2, 3, 4, 5, 6, 7, 8][..],
        ),
        (
            principal("zju2-admin", HOSPITAL, Role::Admin, &[]),
            &[1, 3, 8],
        ),
        (
            principal("biru-admin", CLINIC, Role::Admin, &[]),
            &[1, 4, 6, 7, 8],
        ),
        (
            principal("hz-admin", OTHER_HOSPITAL, Role::Admin, &[]),
            &[2, 7],
        ),
        (
            principal(OTHER_NURSE, OTHER_CLINIC, Role::ClinicStaff, &[]),
            &[2, 3, 5],
        ),
        (
            principal(NURSE, CLINIC, Role::ClinicStaff, &[]),
            &[1, 4, 6, 7, 8],
        ),
        // Assigned, invited, the on-call pool and the escalated pool.
        (on_call_chen, &[1, 2, 4, 5]),
        (
            principal(CHEN, HOSPITAL, Role::Doctor, &["cardiology"]),
            &[1, 2, 5],
        ),
        (
            principal(WANG, HOSPITAL, Role::Doctor, &["cardiology", "neurology"]),
            &[3, 5, 8],
        ),
        (on_call_li, &[2, 6, 7]),
        (principal(LI, OTHER_HOSPITAL, Role::Doctor, &[]), &[2, 7]),
        (principal(INTERPRETER, CLINIC, Role::Interpreter, &[]), &[1]),
        (principal("nobody", CLINIC, Role::Interpreter, &[]), &[]),
    ];
    for (caller, expected) in cases {
        let scope = policy::scope(&caller);
        let listed = list(store, &scope, &ConsultationFilter::default()).await;
        // In order, and exactly what the policy lets the caller see.
        let visible = sorted(
            all.iter()
                .filter(|c| policy::can_see(&caller, c))
                .cloned()
                .collect(),
        );
        assert_eq!(listed, visible, "{scope:?}");
        let mut listed = ids(&listed);
        listed.sort();
        assert_eq!(listed, expected, "{scope:?}");
    }
}

pub async fn listings_filter_by_state_and_start(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let all = seed_consultations(store).await;
    let everyone = ConsultationScope::All;
    let filtered = |states: &[ConsultationState]| ConsultationFilter {
        states: states.to_vec(),
        ..Default::default()
    };

    let pending = list(
        store,
        &everyone,
        &filtered(&[ConsultationState::Requested, ConsultationState::Escalated]),
    )
    .await;
    assert_eq!(ids(&pending), [5, 4, 6]);
    let cancelled = list(store, &everyone, &filtered(&[ConsultationState::Cancelled])).await;
    assert_eq!(ids(&cancelled), [7]);
    let none = list(store, &everyone, &filtered(&[ConsultationState::Completed])).await;
    assert_eq!(none, []);

    // From the first slot's start to the third's: pending urgent requests have no
    // window and always pass; the third starts at the end of the range.
    let range = window(slot(24, 30).start(), 2 * 60);
    let starting = ConsultationFilter {
        starting: Some(range),
        ..Default::default()
    };
    assert_eq!(
        ids(&list(store, &everyone, &starting).await),
        [5, 4, 6, 1, 2]
    );
    let chen = ConsultationScope::Doctor {
        user: user_id(CHEN),
        specialties: vec![Specialty::parse("cardiology").unwrap()],
        on_call: true,
    };
    let scheduled_soon = ConsultationFilter {
        states: vec![ConsultationState::Scheduled],
        ..starting
    };
    assert_eq!(ids(&list(store, &chen, &scheduled_soon).await), [1, 2]);
    assert_eq!(all.len(), 8);
}

pub async fn pages_cover_every_consultation_once(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let mut all = Vec::new();
    for k in 0..8 {
        // Two doctors at the same time: the same sort key, told apart by id.
        for (n, doctor) in [(100 + k, CHEN), (200 + k, WANG)] {
            let booked = booking(n, doctor, slot(24 + i64::from(k), 30));
            create(store, &booked).await.unwrap();
            all.push(booked);
        }
        // Urgent requests sort by when they were made: some at a slot's start.
        let at = if k % 2 == 0 {
            slot(24 + i64::from(k), 30).start()
        } else {
            NOW - Duration::minutes(i64::from(k))
        };
        let request = urgent(300 + k, "cardiology", (CLINIC, NURSE), at);
        create(store, &request).await.unwrap();
        all.push(request);
    }
    let all = sorted(all);

    for size in [1, 4, 7, 24, 500] {
        let filter = ConsultationFilter {
            limit: PageSize::new(size),
            ..Default::default()
        };
        let listed = every_page(store, &ConsultationScope::All, filter).await;
        assert_eq!(ids(&listed), ids(&all), "pages of {size}");
    }

    // Filtered and scoped listings page the same way.
    let chen = ConsultationScope::Doctor {
        user: user_id(CHEN),
        specialties: vec![Specialty::parse("cardiology").unwrap()],
        on_call: true,
    };
    let filter = ConsultationFilter {
        states: vec![ConsultationState::Scheduled, ConsultationState::Requested],
        starting: Some(window(slot(26, 30).start(), 4 * 60)),
        limit: PageSize::new(3),
        after: None,
    };
    let expected: Vec<_> = all
        .iter()
        .filter(|c| c.doctor.as_ref() == Some(&user_id(CHEN)) || c.doctor.is_none())
        .filter(|c| {
            c.window
                .is_none_or(|w| filter.starting.unwrap().contains(w.start()))
        })
        .cloned()
        .collect();
    assert_eq!(expected.len(), 4 + 8);
    assert_eq!(every_page(store, &chen, filter).await, expected);
}

pub async fn unanswered_and_missed_consultations_are_found(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let clinic = (CLINIC, NURSE);
    let minutes_ago = |m: i64| NOW - Duration::minutes(m);

    let oldest = urgent(1, "cardiology", clinic, minutes_ago(45));
    let old = urgent(2, "neurology", (OTHER_CLINIC, OTHER_NURSE), minutes_ago(30));
    let recent = urgent(3, "cardiology", clinic, minutes_ago(5));
    let escalated = urgent(4, "cardiology", clinic, minutes_ago(40));
    let answered = urgent(5, "cardiology", clinic, minutes_ago(50));
    for request in [&oldest, &old, &recent, &escalated, &answered] {
        create(store, request).await.unwrap();
    }
    let escalated = change(store, &escalated, Event::Escalate { at: NOW }).await;
    // Accepted at once: its 30 minutes ended 20 minutes ago.
    let answered = change(store, &answered, accept(WANG, HOSPITAL, minutes_ago(50))).await;

    let unanswered = store.unanswered_urgent(minutes_ago(10)).await.unwrap();
    assert_eq!(unanswered, [oldest, old]);
    assert_eq!(store.unanswered_urgent(minutes_ago(60)).await.unwrap(), []);
    assert!(
        !store
            .unanswered_urgent(NOW)
            .await
            .unwrap()
            .contains(&escalated)
    );

    let ended_long_ago = booking(10, CHEN, window(NOW - Duration::hours(3), 30));
    let ended_lately = booking(11, WANG, window(NOW - Duration::hours(2), 60));
    let running = booking(12, CHEN, window(minutes_ago(30), 60));
    let unaccepted = unconfirmed(13, WANG, window(NOW - Duration::hours(5), 30));
    let cancelled = booking(14, CHEN, window(NOW - Duration::hours(6), 30));
    let held = booking(15, WANG, window(NOW - Duration::hours(7), 30));
    for booked in [
        &ended_long_ago,
        &ended_lately,
        &running,
        &unaccepted,
        &cancelled,
        &held,
    ] {
        create(store, booked).await.unwrap();
    }
    let cancel = Event::Cancel {
        reason: "no transport".into(),
        at: cancelled.created_at,
    };
    change(store, &cancelled, cancel).await;
    let held = change(store, &held, consent()).await;
    change(store, &held, Event::StartSession).await;

    let missed = store.missed(NOW).await.unwrap();
    assert_eq!(missed, [ended_long_ago.clone(), ended_lately, answered]);
    assert_eq!(
        store.missed(NOW - Duration::hours(2)).await.unwrap(),
        [ended_long_ago]
    );
}
