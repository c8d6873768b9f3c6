//! Opinion reports: drafts, signing together with the consultation's completion, the
//! immutability of signed versions, and corrections.

use serde_json::json;
use teleconsult::domain::consultation::{Consultation, ConsultationState, Event};
use teleconsult::domain::opinion::{OpinionContent, OpinionReport};
use teleconsult::store::{SignedOpinion, Store, StoreError, StoredOpinion};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::backends::Backend;
use crate::fixtures::*;

fn content(impression: &str) -> OpinionContent {
    OpinionContent::new(
        impression,
        "low-salt diet; amlodipine 5 mg daily; descend if symptoms worsen",
        "review by video in 2 weeks",
    )
    .unwrap()
}

/// When the session ended and the doctor writes.
fn writing_time(minutes: i64) -> OffsetDateTime {
    slot(24, 30).end() + Duration::minutes(minutes)
}

/// A consultation whose session took place: awaiting the doctor's report.
async fn held_consultation(store: &dyn Store, n: u32, window: Window) -> Consultation {
    let booked = booking(n, CHEN, window);
    create(store, &booked).await.unwrap();
    let consented = change(store, &booked, consent()).await;
    let started = change(store, &consented, Event::StartSession).await;
    change(store, &started, Event::EndSession).await
}

fn draft(
    consultation: &Consultation,
    existing: &[OpinionReport],
    impression: &str,
) -> OpinionReport {
    OpinionReport::draft(
        consultation.id.clone(),
        existing,
        content(impression),
        user_id(CHEN),
        writing_time(5),
    )
}

async fn save(store: &dyn Store, report: &OpinionReport) -> Result<(), StoreError> {
    let audit = entry(
        "scheduling.file_opinion",
        &format!("consultation:{}", report.consultation),
    );
    store.save_opinion_draft(report, audit).await
}

/// The audit entry of a signature: it carries the content hash.
fn signature(report: &OpinionReport, hash: &str) -> AuditEntry {
    entry(
        "scheduling.sign_opinion",
        &format!("consultation:{}", report.consultation),
    )
    .target_institution(CLINIC)
    .details(json!({"content_hash": hash, "version": report.version}))
}

async fn sign(
    store: &dyn Store,
    report: &OpinionReport,
    consultation: Option<&Consultation>,
) -> Result<SignedOpinion, StoreError> {
    let hash = report.content_hash();
    store
        .sign_opinion(report, &hash, consultation, signature(report, &hash))
        .await
}

fn unsigned(report: &OpinionReport) -> StoredOpinion {
    StoredOpinion {
        report: report.clone(),
        seal: None,
    }
}

pub async fn opinions_are_drafted_signed_and_corrected(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let held = held_consultation(store, 1, slot(24, 30)).await;
    assert_eq!(held.state, ConsultationState::AwaitingReport);
    assert_eq!(store.opinions(&held.id).await.unwrap(), []);

    let first = draft(&held, &[], "hypertension");
    save(store, &first).await.unwrap();
    assert_eq!(store.opinions(&held.id).await.unwrap(), [unsigned(&first)]);
    let rewritten = draft(&held, std::slice::from_ref(&first), "stage 2 hypertension");
    assert_eq!((rewritten.version, rewritten.supersedes), (1, None));
    save(store, &rewritten).await.unwrap();
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        [unsigned(&rewritten)]
    );

    let completed = held.apply(Event::ReportSigned).unwrap();
    let log = audit_log(store).await;
    // Refused without a trace: a report not marked signed, a signature of what the
    // doctor read before the rewrite, and a consultation changed meanwhile.
    let error = sign(store, &rewritten, Some(&completed)).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    let stale = first.sign(writing_time(10)).unwrap();
    let error = sign(store, &stale, Some(&completed)).await.unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::Concurrent {
                entity: "opinion report",
                ..
            }
        ),
        "{error:?}"
    );
    let signed = rewritten.sign(writing_time(10)).unwrap();
    let skipped = Consultation {
        version: completed.version + 1,
        ..completed.clone()
    };
    let error = sign(store, &signed, Some(&skipped)).await.unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::Concurrent {
                entity: "consultation",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        [unsigned(&rewritten)]
    );
    assert_eq!(stored(store, &held).await, Some(held.clone()));
    assert_eq!(audit_log(store).await, log);

    // Signed, and the consultation completed, in one change with one audit record.
    let hash = signed.content_hash();
    let entry = signature(&signed, &hash);
    let sealed = store
        .sign_opinion(&signed, &hash, Some(&completed), entry.clone())
        .await
        .unwrap();
    assert_eq!(
        sealed,
        SignedOpinion {
            report: signed.clone(),
            content_hash: hash.clone(),
            audit_seq: log.len() as u64 + 1,
        }
    );
    let record = store.audit_record(sealed.audit_seq).await.unwrap().unwrap();
    assert_eq!(record.entry, entry);
    assert!(
        record.entry.details.contains(&hash),
        "{}",
        record.entry.details
    );
    assert_eq!(audit_log(store).await.len(), log.len() + 1);
    assert_eq!(stored(store, &held).await, Some(completed.clone()));
    let sealed_v1 = StoredOpinion {
        report: signed.clone(),
        seal: Some((hash.clone(), sealed.audit_seq)),
    };
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        std::slice::from_ref(&sealed_v1)
    );

    // A signed version is never overwritten, through the store or behind its back.
    let log = audit_log(store).await;
    assert_concurrent(save(store, &rewritten).await);
    assert_concurrent(save(store, &draft(&held, &[], "no findings")).await);
    assert!(matches!(
        sign(store, &signed, None).await,
        Err(StoreError::Concurrent { .. })
    ));
    for sql in [
        "UPDATE opinion_reports SET follow_up = 'edited'",
        "UPDATE opinion_reports SET content_hash = NULL, audit_seq = NULL, signed_at_us = NULL",
        "DELETE FROM opinion_reports",
    ] {
        let error = backend.execute_raw(sql).await.unwrap_err();
        assert!(error.contains("immutable"), "{sql}: {error}");
    }
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        std::slice::from_ref(&sealed_v1)
    );
    assert_eq!(audit_log(store).await, log);

    // A correction is a new version that supersedes the signed one.
    let correction = draft(&held, std::slice::from_ref(&signed), "stage 1 hypertension");
    assert_eq!((correction.version, correction.supersedes), (2, Some(1)));
    save(store, &correction).await.unwrap();
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        [sealed_v1.clone(), unsigned(&correction)]
    );
    let corrected = correction.sign(writing_time(60)).unwrap();
    let sealed = sign(store, &corrected, None).await.unwrap();
    assert_eq!(
        store.opinions(&held.id).await.unwrap(),
        [
            sealed_v1,
            StoredOpinion {
                report: corrected.clone(),
                seal: Some((corrected.content_hash(), sealed.audit_seq)),
            }
        ]
    );
    assert_eq!(stored(store, &held).await, Some(completed));
    assert!(store.verify_audit().await.unwrap().is_intact());
}

/// A draft saved again, two signatures of it and another change of the consultation,
/// all at once: each either happens or is refused as concurrent, and never do they
/// wait for one another in a circle.
pub async fn concurrent_drafting_signing_and_changes_never_deadlock(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    const ROUNDS: u32 = 12;
    for round in 0..ROUNDS {
        let window = slot(24 + i64::from(round), 30);
        let held = held_consultation(store.as_ref(), round, window).await;
        let report = draft(&held, &[], "hypertension");
        save(store.as_ref(), &report).await.unwrap();
        let completed = held.apply(Event::ReportSigned).unwrap();

        let resave = {
            let (store, report) = (store.clone(), report.clone());
            tokio::spawn(async move { save(store.as_ref(), &report).await })
        };
        let signatures: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                let signed = report.sign(writing_time(10)).unwrap();
                let completed = completed.clone();
                tokio::spawn(async move {
                    sign(store.as_ref(), &signed, Some(&completed))
                        .await
                        .map(|_| ())
                })
            })
            .collect();
        let other_change = {
            let (store, completed) = (store.clone(), completed.clone());
            tokio::spawn(async move { update(store.as_ref(), &completed).await })
        };

        let resaved = resave.await.unwrap();
        assert!(
            matches!(resaved, Ok(()) | Err(StoreError::Concurrent { .. })),
            "round {round}: {resaved:?}"
        );
        let mut changes = Vec::new();
        for task in signatures.into_iter().chain([other_change]) {
            changes.push(task.await.unwrap());
        }
        for result in &changes {
            assert!(
                matches!(result, Ok(()) | Err(StoreError::Concurrent { .. })),
                "round {round}: {result:?}"
            );
        }
        // All three changed the version they read: exactly one of them did.
        let winners: Vec<_> = (0..3).filter(|&i| changes[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {changes:?}");
        assert_eq!(stored(store.as_ref(), &held).await, Some(completed));
        let signed = store.opinions(&held.id).await.unwrap()[0].seal.is_some();
        assert_eq!(signed, winners[0] < 2, "round {round}");
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
}
