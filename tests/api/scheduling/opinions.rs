//! The written opinion: drafted by the assigned doctor once the session has taken
//! place, rewritten freely until signed, then immutable, with its content hash sealed
//! into the audit chain; corrections are new versions. Anyone who may see the
//! consultation can fetch it and check it against the chain.

use sha2::{Digest, Sha256};
use teleconsult::audit::chain::record_hash;
use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::domain::consultation::{ConsultationId, ConsultationState};
use teleconsult::domain::ids::UserId;
use teleconsult::domain::opinion::{OpinionContent, OpinionReport};
use teleconsult::proto::v1 as pb;
use tonic::Code;

use super::{
    BIRU, BIRU_ADMIN, CHEN, DAWA, DROLMA, LI, NORBU, PLATFORM_ADMIN, ZHOU, ZJU2_ADMIN, book,
    booking, consultation_id, details, end_session, instant, local, monday_ahead, only_record,
    opinion, publish, record_consent, refused, slot, start_session, stored, usual_week,
};
use crate::directory::{assert_chain_intact, audit_head, audit_since};
use crate::helpers::TestApp;

on_both_backends!(
    an_opinion_is_drafted_signed_sealed_and_corrected,
    those_who_may_see_the_consultation_read_the_opinion,
    a_signed_report_cannot_be_changed_in_the_database,
);

const FIRST_THOUGHT: &str = "suspected high-altitude pulmonary hypertension";
const DIAGNOSIS: &str = "high-altitude pulmonary hypertension with right heart failure (NYHA III)";
const CORRECTED: &str = "high-altitude pulmonary hypertension with right heart failure (NYHA II)";

fn sign(id: &str, version: u32) -> pb::SignOpinionRequest {
    pb::SignOpinionRequest {
        consultation_id: id.into(),
        version,
    }
}

fn get(id: &str, version: u32) -> pb::GetOpinionRequest {
    pb::GetOpinionRequest {
        consultation_id: id.into(),
        version,
    }
}

/// The content hash worked out from the report's fields alone, as a verifier outside
/// the broker would: SHA-256 over length-prefixed fields in a fixed order.
fn recomputed_hash(report: &pb::OpinionReport) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u32).to_be_bytes());
        hasher.update(bytes);
    };
    field(b"teleconsult-opinion-v1");
    field(report.consultation_id.as_bytes());
    field(&report.version.to_be_bytes());
    field(&report.supersedes_version.to_be_bytes());
    field(report.author_id.as_bytes());
    field(report.diagnosis_impression.as_bytes());
    field(report.recommendations.as_bytes());
    field(report.follow_up.as_bytes());
    hex::encode(hasher.finalize())
}

/// The report as the domain value it was made from.
fn domain_report(report: &pb::OpinionReport) -> OpinionReport {
    OpinionReport {
        consultation: ConsultationId::parse(&report.consultation_id).unwrap(),
        version: report.version,
        content: OpinionContent::new(
            &report.diagnosis_impression,
            &report.recommendations,
            &report.follow_up,
        )
        .unwrap(),
        author: UserId::parse(&report.author_id).unwrap(),
        supersedes: (report.supersedes_version != 0).then_some(report.supersedes_version),
        created_at: instant(report.created_at.as_ref()),
        signed_at: report.signed_at.as_ref().map(|at| instant(Some(at))),
    }
}

/// Checks a signed report the way a reader would: recompute its hash from its fields,
/// find that hash in its seal's details, recompute the seal's own hash, and find the
/// seal in the chain as the broker stores it.
async fn assert_sealed(app: &TestApp, report: &pb::OpinionReport) {
    assert!(report.signed && report.signed_at.is_some(), "{report:?}");
    let hash = &report.content_hash;
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        &recomputed_hash(report),
        hash,
        "the hash is that of the fields"
    );
    assert_eq!(
        &domain_report(report).content_hash(),
        hash,
        "and the domain agrees"
    );

    let seal = report
        .seal
        .as_ref()
        .expect("a signed report carries its seal");
    assert_eq!(seal.action, "scheduling.sign_opinion");
    assert_eq!(seal.actor_user_id, report.author_id);
    assert_eq!(
        seal.target,
        format!("consultation:{}", report.consultation_id)
    );
    assert_eq!(seal.target_institution_id, BIRU);
    assert_eq!(seal.outcome, pb::Outcome::Ok as i32);
    let said: serde_json::Value = serde_json::from_str(&seal.details).unwrap();
    assert_eq!(said["content_hash"], hash.as_str());
    assert_eq!(said["version"], report.version);

    let entry = AuditEntry {
        at: instant(seal.at.as_ref()),
        actor: Actor {
            user: seal.actor_user_id.clone(),
            institution: seal.actor_institution_id.clone(),
            role: seal.actor_role.clone(),
            certificate_fingerprint: seal.actor_certificate_fingerprint.clone(),
        },
        action: seal.action.clone(),
        target: seal.target.clone(),
        target_institution: Some(seal.target_institution_id.clone()),
        outcome: Outcome::Ok,
        details: seal.details.clone(),
    };
    assert_eq!(
        record_hash(&seal.prev_hash, seal.seq, &entry),
        seal.hash,
        "the seal is intact"
    );
    let in_chain = app
        .store
        .audit_record(seal.seq)
        .await
        .unwrap()
        .expect("the seal is in the chain");
    assert_eq!(
        (in_chain.hash.as_str(), in_chain.prev_hash.as_str()),
        (seal.hash.as_str(), seal.prev_hash.as_str())
    );
    assert_eq!(in_chain.entry, entry);
    assert_chain_intact(app).await;
}

/// Chen's consultation at Monday 09:00, scheduled, with consent, and with Norbu
/// invited to interpret.
async fn consultation_with_interpreter(app: &TestApp) -> pb::Consultation {
    publish(app, CHEN, usual_week(), true).await;
    let booked = book(app, DAWA, booking(slot(CHEN, local(monday_ahead(0), 9, 0)))).await;
    app.scheduling_as(DAWA)
        .invite_participant(pb::InviteParticipantRequest {
            id: booked.id.clone(),
            user_id: NORBU.into(),
        })
        .await
        .unwrap();
    record_consent(app, &booked.id).await
}

/// A consultation whose session has ended and whose opinion Chen has signed.
async fn signed_opinion(app: &TestApp) -> (pb::Consultation, pb::OpinionReport) {
    let consultation = consultation_with_interpreter(app).await;
    start_session(app, &consultation.id).await;
    end_session(app, &consultation.id).await;
    let mut chen = app.scheduling_as(CHEN);
    chen.file_opinion(opinion(&consultation.id, DIAGNOSIS))
        .await
        .unwrap();
    let signed = chen
        .sign_opinion(sign(&consultation.id, 1))
        .await
        .unwrap()
        .into_inner();
    (consultation, signed)
}

async fn an_opinion_is_drafted_signed_sealed_and_corrected(app: TestApp) {
    let consultation = consultation_with_interpreter(&app).await;
    let id = consultation.id.clone();
    let target = format!("consultation:{id}");
    let mut chen = app.scheduling_as(CHEN);

    // Not before the session.
    refused(
        chen.file_opinion(opinion(&id, FIRST_THOUGHT)).await,
        Code::FailedPrecondition,
        "scheduled",
    );
    start_session(&app, &id).await;

    // Only the assigned doctor writes it.
    for caller in [ZHOU, LI, DAWA, NORBU, ZJU2_ADMIN] {
        let head = audit_head(&app).await;
        refused(
            app.scheduling_as(caller)
                .file_opinion(opinion(&id, FIRST_THOUGHT))
                .await,
            Code::PermissionDenied,
            "",
        );
        only_record(
            &audit_since(&app, head).await,
            caller,
            "scheduling.file_opinion",
            &target,
            Outcome::Denied,
        );
    }
    let status = refused(
        chen.file_opinion(opinion(&id, " ")).await,
        Code::InvalidArgument,
        "diagnosis_impression",
    );
    assert!(
        status.message().starts_with("diagnosis_impression:"),
        "{status:?}"
    );

    // A draft, during the session, then rewritten.
    let head = audit_head(&app).await;
    let draft = chen
        .file_opinion(opinion(&id, FIRST_THOUGHT))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (draft.version, draft.supersedes_version, draft.signed),
        (1, 0, false)
    );
    assert_eq!(
        (
            draft.author_id.as_str(),
            draft.diagnosis_impression.as_str()
        ),
        (CHEN, FIRST_THOUGHT)
    );
    assert!(draft.content_hash.is_empty() && draft.seal.is_none());
    only_record(
        &audit_since(&app, head).await,
        CHEN,
        "scheduling.file_opinion",
        &target,
        Outcome::Ok,
    );
    let draft = chen
        .file_opinion(opinion(&id, DIAGNOSIS))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (draft.version, draft.diagnosis_impression.as_str()),
        (1, DIAGNOSIS)
    );
    let kept = app.store.opinions(&consultation_id(&id)).await.unwrap();
    assert_eq!(kept.len(), 1, "the draft was replaced");
    assert_eq!(
        kept[0].report.content.diagnosis_impression.as_str(),
        DIAGNOSIS
    );
    assert!(kept[0].seal.is_none());

    // A draft is its author's alone.
    let mut dawa = app.scheduling_as(DAWA);
    refused(
        dawa.get_opinion(get(&id, 0)).await,
        Code::NotFound,
        "no signed opinion",
    );
    refused(dawa.get_opinion(get(&id, 1)).await, Code::NotFound, "");
    assert_eq!(
        chen.get_opinion(get(&id, 1))
            .await
            .unwrap()
            .into_inner()
            .diagnosis_impression,
        DIAGNOSIS
    );

    // Signed once the session has ended, and only the latest version.
    refused(
        chen.sign_opinion(sign(&id, 1)).await,
        Code::FailedPrecondition,
        "in_session",
    );
    end_session(&app, &id).await;
    refused(
        chen.sign_opinion(sign(&id, 2)).await,
        Code::FailedPrecondition,
        "version",
    );
    refused(
        app.scheduling_as(ZHOU).sign_opinion(sign(&id, 1)).await,
        Code::PermissionDenied,
        "",
    );
    let head = audit_head(&app).await;
    let signed = chen.sign_opinion(sign(&id, 1)).await.unwrap().into_inner();
    assert_eq!((signed.version, signed.supersedes_version), (1, 0));
    assert_eq!(signed.diagnosis_impression, DIAGNOSIS);
    assert_sealed(&app, &signed).await;
    let seal = only_record(
        &audit_since(&app, head).await,
        CHEN,
        "scheduling.sign_opinion",
        &target,
        Outcome::Ok,
    );
    assert_eq!(seal.seq, signed.seal.as_ref().unwrap().seq);
    assert_eq!(details(&seal)["to"], "completed");
    let completed = stored(&app, &id).await;
    assert_eq!(completed.state, ConsultationState::Completed);

    // Signed is final.
    refused(
        chen.sign_opinion(sign(&id, 1)).await,
        Code::FailedPrecondition,
        "signed",
    );
    refused(
        chen.sign_opinion(sign(&id, 0)).await,
        Code::FailedPrecondition,
        "signed",
    );

    // A correction is a new version that names the one it corrects.
    let correction = chen
        .file_opinion(opinion(&id, CORRECTED))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            correction.version,
            correction.supersedes_version,
            correction.signed
        ),
        (2, 1, false)
    );
    assert_eq!(
        dawa.get_opinion(get(&id, 0)).await.unwrap().into_inner(),
        signed,
        "v1 stays the latest signed until v2 is"
    );
    let corrected = chen.sign_opinion(sign(&id, 2)).await.unwrap().into_inner();
    assert_eq!((corrected.version, corrected.supersedes_version), (2, 1));
    assert_sealed(&app, &corrected).await;
    assert_ne!(corrected.content_hash, signed.content_hash);
    assert_eq!(
        stored(&app, &id).await,
        completed,
        "the consultation stays completed"
    );

    assert_eq!(
        dawa.get_opinion(get(&id, 0)).await.unwrap().into_inner(),
        corrected
    );
    assert_eq!(
        dawa.get_opinion(get(&id, 2)).await.unwrap().into_inner(),
        corrected
    );
    assert_eq!(
        dawa.get_opinion(get(&id, 1)).await.unwrap().into_inner(),
        signed
    );
    refused(
        dawa.get_opinion(get(&id, 3)).await,
        Code::NotFound,
        "version 3",
    );
    app.stop().await;
}

async fn those_who_may_see_the_consultation_read_the_opinion(app: TestApp) {
    publish(&app, CHEN, usual_week(), true).await;
    // An interpreter who is not invited may not read; once invited, they may.
    let other = book(
        &app,
        DAWA,
        booking(slot(CHEN, local(monday_ahead(0), 11, 30))),
    )
    .await;
    refused(
        app.scheduling_as(NORBU)
            .get_opinion(get(&other.id, 0))
            .await,
        Code::PermissionDenied,
        "",
    );

    let (consultation, signed) = signed_opinion(&app).await;
    let id = consultation.id.clone();
    let target = format!("consultation:{id}");
    let readers = [
        (DAWA, true),
        (NORBU, true),
        (CHEN, true),
        (BIRU_ADMIN, true),
        (ZJU2_ADMIN, true),
        (PLATFORM_ADMIN, true),
        (DROLMA, false),
        (ZHOU, false),
        (LI, false),
    ];
    for (reader, allowed) in readers {
        let head = audit_head(&app).await;
        let result = app.scheduling_as(reader).get_opinion(get(&id, 0)).await;
        if allowed {
            let read = result
                .unwrap_or_else(|s| panic!("{reader}: {s:?}"))
                .into_inner();
            assert_eq!(read, signed, "{reader}");
            assert!(
                audit_since(&app, head).await.is_empty(),
                "reads are not recorded"
            );
        } else {
            refused(result, Code::PermissionDenied, "");
            only_record(
                &audit_since(&app, head).await,
                reader,
                "scheduling.get_opinion",
                &target,
                Outcome::Denied,
            );
        }
    }
    assert_sealed(&app, &signed).await;
    app.stop().await;
}

async fn a_signed_report_cannot_be_changed_in_the_database(app: TestApp) {
    let (consultation, signed) = signed_opinion(&app).await;
    let id = consultation.id.clone();
    let statements = [
        "UPDATE opinion_reports SET diagnosis_impression = 'nothing wrong' WHERE consultation_id = $1",
        "UPDATE opinion_reports SET signed_at_us = NULL WHERE consultation_id = $1",
        "DELETE FROM opinion_reports WHERE consultation_id = $1",
    ];
    match app.database_path() {
        Some(path) => {
            let connection = rusqlite::Connection::open(path).unwrap();
            connection.busy_timeout(super::PATIENCE).unwrap();
            for statement in statements {
                let sqlite = statement.replace("$1", "?1");
                let error = connection.execute(&sqlite, [&id]).unwrap_err();
                assert!(
                    error.to_string().contains("immutable"),
                    "{statement}: {error}"
                );
            }
        }
        None => {
            let (client, connection) =
                tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
            let connection = tokio::spawn(connection);
            for statement in statements {
                let error = client.execute(statement, &[&id]).await.unwrap_err();
                let message = error
                    .as_db_error()
                    .map(|e| e.message().to_owned())
                    .unwrap_or_default();
                assert!(message.contains("immutable"), "{statement}: {error:?}");
            }
            drop(client);
            let _ = connection.await;
        }
    }
    let read = app
        .scheduling_as(DAWA)
        .get_opinion(get(&id, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, signed);
    assert_sealed(&app, &read).await;
    app.stop().await;
}
