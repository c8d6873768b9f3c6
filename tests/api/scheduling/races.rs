//! No double booking, under any concurrency: 200 clinic staff, each with a certificate
//! and a TLS connection of their own, book the same slot at the same moment, and 50
//! on-call cardiologists accept the same urgent request. Exactly one wins; every loser
//! is told so clearly and the refusal is recorded; the store holds one consultation.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use teleconsult::audit::Outcome;
use teleconsult::domain::consultation::ConsultationState;
use teleconsult::domain::directory::Role;
use teleconsult::domain::ids::UserId;
use teleconsult::proto::v1 as pb;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tonic::{Code, Status};

use super::{
    BIRU, CHEN, Client, ZJU2, add_people, all_consultations, booking, cardiologist_profile,
    client_for, free_starts, local, monday_ahead, publish, slot, stored, user, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

on_both_backends!(
    two_hundred_clinic_staff_race_for_one_slot,
    fifty_doctors_race_for_one_urgent_request,
    the_losers_of_an_urgent_race_are_told_it_is_taken,
);

const CLINIC_STAFF: usize = 200;
const ON_CALL_DOCTORS: usize = 50;

/// The whole race, connections included, must be over by then.
const RACE_DEADLINE: StdDuration = StdDuration::from_secs(60);

/// Runs `attempt` once for every client, all at the same moment: each client first
/// makes the `warm_up` call, so that its TLS connection is up and its certificate
/// accepted, then waits at a barrier for all the others.
async fn race<W, WF, A, AF, T>(
    clients: Vec<(String, Client)>,
    warm_up: W,
    attempt: A,
) -> Vec<(String, Result<T, Status>)>
where
    W: Fn(Client) -> WF + Clone + Send + 'static,
    WF: Future<Output = Result<(), Status>> + Send,
    A: Fn(Client) -> AF + Clone + Send + 'static,
    AF: Future<Output = Result<T, Status>> + Send,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(clients.len()));
    let mut racers = JoinSet::new();
    for (user, client) in clients {
        let (barrier, warm_up, attempt) = (barrier.clone(), warm_up.clone(), attempt.clone());
        racers.spawn(async move {
            if let Err(status) = warm_up(client.clone()).await {
                panic!("{user} could not get ready: {status:?}");
            }
            barrier.wait().await;
            let result = attempt(client).await;
            (user, result)
        });
    }
    let finished = tokio::time::timeout(RACE_DEADLINE, async {
        let mut results = Vec::new();
        while let Some(joined) = racers.join_next().await {
            results.push(joined.expect("no racer panics"));
        }
        results
    })
    .await;
    finished.expect("the race is over in time")
}

/// The one winner, and the losers by the code they got.
fn outcome<T>(
    results: &[(String, Result<T, Status>)],
) -> (String, HashMap<Code, Vec<(String, String)>>) {
    let mut winners = Vec::new();
    let mut losers: HashMap<Code, Vec<(String, String)>> = HashMap::new();
    for (user, result) in results {
        match result {
            Ok(_) => winners.push(user.clone()),
            Err(status) => losers
                .entry(status.code())
                .or_default()
                .push((user.clone(), status.message().to_owned())),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one wins: {winners:?}");
    (winners.remove(0), losers)
}

/// Every call of `action` since `head` was recorded: one `ok` for the winner and one
/// refusal for each loser.
async fn assert_every_attempt_recorded(
    app: &TestApp,
    head: u64,
    action: &str,
    winner: &str,
    racers: &[(String, Client)],
) {
    let records: Vec<_> = audit_since(app, head)
        .await
        .into_iter()
        .filter(|r| r.entry.action == action)
        .collect();
    let ok: Vec<_> = records
        .iter()
        .filter(|r| r.entry.outcome == Outcome::Ok)
        .map(|r| r.entry.actor.user.as_str())
        .collect();
    assert_eq!(ok, [winner]);
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.entry.outcome != Outcome::Ok)
        .map(|r| r.entry.actor.user.clone())
        .collect();
    let losers: BTreeSet<_> = racers
        .iter()
        .map(|(user, _)| user.clone())
        .filter(|user| user != winner)
        .collect();
    assert_eq!(
        refused.len(),
        losers.len(),
        "one refusal recorded per loser"
    );
    assert_eq!(refused.into_iter().collect::<BTreeSet<_>>(), losers);
    assert_chain_intact(app).await;
}

async fn two_hundred_clinic_staff_race_for_one_slot(app: TestApp) {
    publish(&app, CHEN, usual_week(), false).await;
    let start = local(monday_ahead(0), 9, 0);
    let staff: Vec<_> = (0..CLINIC_STAFF)
        .map(|i| user(&format!("biru-nurse-{i:03}"), BIRU, Role::ClinicStaff))
        .collect();
    add_people(&app, staff.clone(), vec![]).await;
    let racers: Vec<_> = staff
        .iter()
        .map(|u| (u.id.to_string(), client_for(&app, u)))
        .collect();

    let head = audit_head(&app).await;
    let results = race(
        racers.clone(),
        |mut client| async move {
            client
                .get_availability(pb::GetAvailabilityRequest {
                    doctor_id: CHEN.into(),
                })
                .await
                .map(drop)
        },
        move |mut client| async move {
            client
                .book_consultation(booking(slot(CHEN, start)))
                .await
                .map(|answer| answer.into_inner())
        },
    )
    .await;

    let (winner, losers) = outcome(&results);
    let unexpected: Vec<_> = losers
        .iter()
        .filter(|(code, _)| !matches!(code, Code::AlreadyExists | Code::Aborted))
        .collect();
    assert!(
        unexpected.is_empty(),
        "losers are told ALREADY_EXISTS or ABORTED: {unexpected:#?}"
    );

    let booked = all_consultations(&app).await;
    assert_eq!(booked.len(), 1, "one consultation in the store");
    let consultation = &booked[0];
    assert_eq!(consultation.requested_by.as_str(), winner);
    assert_eq!(consultation.state, ConsultationState::Requested);
    assert_eq!(consultation.window.map(|w| w.start()), Some(start));
    let window = consultation.window.unwrap();
    let claims = app
        .store
        .claimed_quanta(&[UserId::parse(CHEN).unwrap()], &window)
        .await
        .unwrap();
    assert_eq!(
        claims.len(),
        6,
        "the slot's six quanta are claimed once each"
    );
    assert!(
        !free_starts(&app, CHEN, start, window.end())
            .await
            .contains(&start)
    );

    assert_every_attempt_recorded(&app, head, "scheduling.book_consultation", &winner, &racers)
        .await;
    app.stop().await;
}

/// 50 on-call cardiologists accept one urgent request at once; returns the losers by
/// the code they got, once the winner, the store and the audit chain are checked.
async fn fifty_doctors_accept(app: &TestApp) -> HashMap<Code, Vec<(String, String)>> {
    let doctors: Vec<_> = (0..ON_CALL_DOCTORS)
        .map(|i| user(&format!("zju2-cardio-oncall-{i:02}"), ZJU2, Role::Doctor))
        .collect();
    let profiles = doctors
        .iter()
        .map(|d| cardiologist_profile(d.id.as_str(), true))
        .collect();
    add_people(app, doctors.clone(), profiles).await;
    let urgent = app
        .scheduling_as(super::DAWA)
        .request_urgent_consultation(super::urgent::urgent_request())
        .await
        .unwrap()
        .into_inner();
    let racers: Vec<_> = doctors
        .iter()
        .map(|u| (u.id.to_string(), client_for(app, u)))
        .collect();

    let head = audit_head(app).await;
    let id = urgent.id.clone();
    let results = race(
        racers.clone(),
        {
            let id = id.clone();
            move |mut client| {
                let id = id.clone();
                async move {
                    // Every one of them is in the pool and sees the request.
                    client
                        .get_consultation(pb::GetConsultationRequest { id })
                        .await
                        .map(drop)
                }
            }
        },
        {
            let id = id.clone();
            move |mut client| {
                let id = id.clone();
                async move {
                    client
                        .accept_consultation(pb::AcceptConsultationRequest { id })
                        .await
                        .map(|answer| answer.into_inner())
                }
            }
        },
    )
    .await;

    let (winner, losers) = outcome(&results);
    let now = stored(app, &id).await;
    assert_eq!(now.state, ConsultationState::Scheduled);
    assert_eq!(
        now.doctor.as_ref().map(|d| d.as_str()),
        Some(winner.as_str())
    );
    assert_eq!(
        now.consulting_institution.as_ref().map(|i| i.as_str()),
        Some(ZJU2)
    );
    assert_eq!(now.version, 2, "accepted once");
    assert_eq!(all_consultations(app).await.len(), 1);
    assert_every_attempt_recorded(
        app,
        head,
        "scheduling.accept_consultation",
        &winner,
        &racers,
    )
    .await;
    losers
}

/// Whether a loser's answer says clearly that someone else was first: the request is
/// no longer waiting (FAILED_PRECONDITION naming its state) or was changed under it
/// (ABORTED).
fn says_it_was_taken(code: Code, message: &str) -> bool {
    match code {
        Code::Aborted => true,
        Code::FailedPrecondition => message.contains("scheduled"),
        _ => false,
    }
}

async fn fifty_doctors_race_for_one_urgent_request(app: TestApp) {
    let losers = fifty_doctors_accept(&app).await;
    let unexpected: Vec<_> = losers
        .iter()
        .flat_map(|(&code, answers)| answers.iter().map(move |(user, m)| (code, user, m)))
        .filter(|&(code, _, m)| !says_it_was_taken(code, m))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    app.stop().await;
}

async fn the_losers_of_an_urgent_race_are_told_it_is_taken(app: TestApp) {
    let losers = fifty_doctors_accept(&app).await;
    let counts: HashMap<_, _> = losers.iter().map(|(code, a)| (*code, a.len())).collect();
    let unexpected: Vec<_> = losers
        .iter()
        .flat_map(|(&code, answers)| answers.iter().map(move |(user, m)| (code, user, m)))
        .filter(|&(code, _, m)| !says_it_was_taken(code, m))
        .collect();
    assert!(
        unexpected.is_empty(),
        "losers are told FAILED_PRECONDITION (already scheduled) or ABORTED; \
         answers by code: {counts:?}; unexpected: {unexpected:#?}"
    );
    app.stop().await;
}
