//! A broker killed mid-work (SIGKILL: no shutdown, nothing flushed), as in a power cut
//! at a county hospital, and started again on the same data: every booking it
//! acknowledged is there, nothing is half-written, the audit chain verifies, and the
//! consult that was live goes on when its people come back.

use std::collections::HashSet;
use std::time::Duration;

use teleconsult::domain::consultation::{ConsultationId, ConsultationState};
use teleconsult::domain::directory::PageSize;
use teleconsult::domain::ids::UserId;
use teleconsult::domain::policy::ConsultationScope;
use teleconsult::domain::schedule::SHANGHAI;
use teleconsult::proto::v1 as pb;
use teleconsult::proto::v1::scheduling_service_client::SchedulingServiceClient;
use teleconsult::relay::synthetic::{SyntheticMedia, SyntheticParticipant, eventually};
use teleconsult::store::{AuditQuery, ConsultationFilter};
use time::{Duration as Span, OffsetDateTime};

use crate::dev_broker::DevBroker;

const NURSE: &str = "biru-nurse-dawa";
const CARDIOLOGIST: &str = "zju2-cardio-chen";
/// On call for cardiology: takes the urgent request.
const ON_CALL: &str = "zju2-cardio-wang";
const ZJU2: &str = "zju2-hospital";

/// Clinics booking at once when the broker dies.
const CLINICS: usize = 8;
/// Acknowledged bookings to wait for before the crash.
const BOOKED_BEFORE_CRASH: usize = 20;
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_work_keeps_what_it_acknowledged_and_the_consult_goes_on() {
    let mut broker = DevBroker::start();

    // A live consult: an urgent request, taken by the on-call cardiologist, consented.
    let urgent = broker.json(
        NURSE,
        "consult urgent --specialty cardiology --patient-ref biru-p-0050 \
         --reason 'chest pain at rest, SpO2 84%'",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    broker.ok(ON_CALL, &format!("consult accept {urgent}"));
    broker.ok(
        NURSE,
        &format!("consult consent {urgent} --consenter patient --method written"),
    );
    let live = join_both(&broker, &urgent).await;

    // Clinics booking the other cardiologist's week when the power goes.
    broker.ok(
        CARDIOLOGIST,
        "availability set --weekly 'mon-sun 08:00-20:00'",
    );
    let slots = half_hours_from_tomorrow(7);
    let (acks, mut acknowledging) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut clinics = Vec::new();
    for clinic in 0..CLINICS {
        let mut scheduling = SchedulingServiceClient::new(broker.channel_as(NURSE).await);
        let mine: Vec<_> = slots
            .iter()
            .skip(clinic)
            .step_by(CLINICS)
            .copied()
            .collect();
        let acks = acks.clone();
        clinics.push(tokio::spawn(async move {
            for (n, start) in mine.into_iter().enumerate() {
                let booking = scheduling
                    .book_consultation(booking(start, &format!("biru-p-{clinic}-{n}")))
                    .await;
                match booking {
                    Ok(booked) => {
                        let _ = acks.send(booked.into_inner().id);
                    }
                    // The broker is gone: this clinic stops.
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acks);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < BOOKED_BEFORE_CRASH {
        let ack = tokio::time::timeout(PATIENCE, acknowledging.recv()).await;
        acknowledged.push(ack.ok().flatten().expect("the clinics book"));
    }
    broker.crash();
    for clinic in clinics {
        tokio::time::timeout(PATIENCE, clinic)
            .await
            .expect("a clinic's booking loop ends once the broker is gone")
            .unwrap();
    }
    while let Ok(id) = acknowledging.try_recv() {
        acknowledged.push(id);
    }
    assert!(
        acknowledged.len() < slots.len(),
        "the crash came after every booking ({}): it proved nothing",
        slots.len()
    );
    drop(live);

    broker.restart();

    // Every acknowledged booking is there, through the API.
    let mut scheduling = SchedulingServiceClient::new(broker.channel_as(NURSE).await);
    for id in &acknowledged {
        let consultation = scheduling
            .get_consultation(pb::GetConsultationRequest { id: id.clone() })
            .await
            .unwrap_or_else(|status| panic!("acknowledged booking {id} is gone: {status:?}"))
            .into_inner();
        assert_eq!(
            consultation.state,
            pb::ConsultationState::Requested as i32,
            "{consultation:?}"
        );
    }

    // Nothing half-written, in the database itself: each of the cardiologist's
    // consultations (acknowledged or not) has exactly one booking record, no two
    // overlap, and the audit chain is whole.
    let store = teleconsult::store::open(&format!("sqlite://{}", broker.database_path().display()))
        .await
        .unwrap();
    let scope = ConsultationScope::Doctor {
        user: UserId::parse(CARDIOLOGIST).unwrap(),
        specialties: Vec::new(),
        on_call: false,
    };
    let filter = ConsultationFilter {
        limit: PageSize::new(500),
        ..ConsultationFilter::default()
    };
    let booked = store.consultations(&scope, &filter).await.unwrap();
    let ids: HashSet<_> = booked.iter().map(|c| c.id.to_string()).collect();
    assert!(
        acknowledged.iter().all(|id| ids.contains(id)),
        "acknowledged {acknowledged:?}, stored {ids:?}"
    );
    let mut windows: Vec<_> = booked.iter().filter_map(|c| c.window).collect();
    windows.sort_by_key(|w| w.start());
    for pair in windows.windows(2) {
        assert!(
            pair[0].end() <= pair[1].start(),
            "overlapping bookings {pair:?}"
        );
    }
    for consultation in &booked {
        let records = store
            .query_audit(&AuditQuery {
                target: Some(format!("consultation:{}", consultation.id)),
                action: Some("scheduling.book_consultation".into()),
                limit: PageSize::new(10),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(records.len(), 1, "{consultation:?}: {records:#?}");
    }
    let verified = store.verify_audit().await.unwrap();
    assert!(verified.is_intact(), "{verified:?}");

    // The consult is still in session, and goes on when both come back.
    let live_id = ConsultationId::parse(&urgent).unwrap();
    let state = store.consultation(&live_id).await.unwrap().unwrap().state;
    assert_eq!(state, ConsultationState::InSession);
    let _back = join_both(&broker, &urgent).await;
    println!(
        "{} bookings acknowledged before the crash, {} stored; {} audit records verified",
        acknowledged.len(),
        booked.len(),
        verified.records_checked
    );
}

/// The nurse and the on-call doctor join `consultation`; returns once each receives
/// the other's audio and video.
async fn join_both(broker: &DevBroker, consultation: &str) -> [SyntheticParticipant; 2] {
    let mut joined = Vec::new();
    for user in [NURSE, ON_CALL] {
        let channel = broker.channel_as(user).await;
        let participant =
            SyntheticParticipant::join(channel, user, consultation, SyntheticMedia::default())
                .await
                .unwrap_or_else(|status| panic!("{user} could not join: {status:?}"));
        joined.push(participant);
    }
    let [nurse, doctor] = <[_; 2]>::try_from(joined).ok().unwrap();
    let flowing = || {
        [(&nurse, ON_CALL), (&doctor, NURSE)]
            .iter()
            .all(|(receiver, from)| {
                receiver.received_from(from, "audio") > 25
                    && receiver.received_from(from, "video") > 25
            })
    };
    assert!(
        eventually(PATIENCE, flowing).await,
        "media did not flow between the nurse and the doctor"
    );
    [nurse, doctor]
}

/// Every half hour from 08:00 to 20:00 (Asia/Shanghai) on the `days` days after today.
fn half_hours_from_tomorrow(days: i64) -> Vec<OffsetDateTime> {
    let today = OffsetDateTime::now_utc().to_offset(SHANGHAI).date();
    (1..=days)
        .flat_map(|day| {
            let opening = (today + Span::days(day))
                .with_hms(8, 0, 0)
                .unwrap()
                .assume_offset(SHANGHAI);
            (0..24).map(move |n| opening + Span::minutes(30 * n))
        })
        .collect()
}

fn booking(start: OffsetDateTime, patient: &str) -> pb::BookConsultationRequest {
    let timestamp = |at: OffsetDateTime| prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    };
    pb::BookConsultationRequest {
        slot: Some(pb::Slot {
            doctor_id: CARDIOLOGIST.into(),
            institution_id: ZJU2.into(),
            start: Some(timestamp(start)),
            end: Some(timestamp(start + Span::minutes(30))),
        }),
        patient_ref: patient.into(),
        specialty: "cardiology".into(),
        reason: "follow-up after altitude sickness".into(),
        case_summary: String::new(),
    }
}
