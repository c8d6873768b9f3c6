//! Who reads what: an institution admin sees exactly their institution's records
//! (actor or target, including consultations their institution invites or gives), a
//! platform admin everything, everyone else nothing; and every refused attempt is
//! itself in the log.

use teleconsult::audit::Outcome;
use teleconsult::proto::v1 as pb;
use tonic::Code;

use super::{audit_as, belongs_to, history, parties, seqs, stored_seqs, walk};
use crate::directory::{audit_head, audit_since};
use crate::helpers::TestApp;
use crate::scheduling::{
    BIRU_ADMIN, CHEN, DAWA, NORBU, PLATFORM_ADMIN, ZJU2_ADMIN, only_record, refused,
};

on_both_backends!(
    an_institution_admin_sees_their_institution_and_nothing_else,
    only_admins_read_the_log_and_refusals_are_recorded,
);

const BIRU: &str = "biru-county-hospital";
const ZJU2: &str = "zju2-hospital";

async fn an_institution_admin_sees_their_institution_and_nothing_else(app: TestApp) {
    let consultation = history(&app).await;
    let target = format!("consultation:{}", consultation.id);
    let consultations = parties(&app).await;

    for (admin, institution) in [(BIRU_ADMIN, BIRU), (ZJU2_ADMIN, ZJU2)] {
        let mut client = audit_as(&app, admin);
        let stored = app.audit_records().await;
        let answered = walk(&mut client, pb::QueryAuditRequest::default(), 50)
            .await
            .unwrap();
        let expected: Vec<u64> = stored
            .iter()
            .filter(|r| belongs_to(r, institution, &consultations))
            .map(|r| r.seq)
            .collect();
        // Past the records stored when the walk began come only its own reads.
        let (walked, head) = (seqs(&answered), stored.last().unwrap().seq);
        assert_eq!(
            walked[..expected.len()],
            expected[..],
            "{admin} sees {institution}'s records"
        );
        assert!(walked[expected.len()..].iter().all(|&seq| seq > head));
        // Both sides of the consultation see the whole of it, whoever acted.
        let about: Vec<(&str, &str)> = answered
            .iter()
            .filter(|r| r.target == target)
            .map(|r| (r.actor_user_id.as_str(), r.action.as_str()))
            .collect();
        for step in [
            (DAWA, "scheduling.book_consultation"),
            (CHEN, "scheduling.accept_consultation"),
            (DAWA, "scheduling.record_consent"),
            ("nagqu-nurse-drolma", "scheduling.get_consultation"),
        ] {
            assert!(about.contains(&step), "{admin} sees {step:?}: {about:?}");
        }
        // Naming their own institution is the same as naming none.
        let named = walk(
            &mut client,
            pb::QueryAuditRequest {
                institution_id: institution.into(),
                ..Default::default()
            },
            50,
        )
        .await
        .unwrap();
        assert_eq!(seqs(&named)[..expected.len()], expected[..]);
    }

    // The other side's directory changes stay with the other side.
    let mut biru = audit_as(&app, BIRU_ADMIN);
    let seen = walk(&mut biru, pb::QueryAuditRequest::default(), 500)
        .await
        .unwrap();
    assert!(seen.iter().all(|r| r.target != "user:zju2-nurse-h-0"));
    assert!(seen.iter().any(|r| r.target == "user:biru-nurse-h-0"));

    // Naming another institution is refused, for queries and exports alike, and the
    // refusal is recorded against the institution that was asked about.
    let head = audit_head(&app).await;
    let status = biru
        .query(pb::QueryAuditRequest {
            institution_id: ZJU2.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let record = only_record(
        &audit_since(&app, head).await,
        BIRU_ADMIN,
        "audit.query",
        "audit",
        Outcome::Denied,
    );
    assert_eq!(record.entry.target_institution.as_deref(), Some(ZJU2));
    let head = audit_head(&app).await;
    let status = biru
        .export(pb::ExportAuditRequest {
            filter: Some(pb::QueryAuditRequest {
                institution_id: ZJU2.into(),
                ..Default::default()
            }),
            format: pb::export_audit_request::Format::Jsonl as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    only_record(
        &audit_since(&app, head).await,
        BIRU_ADMIN,
        "audit.export",
        "audit",
        Outcome::Denied,
    );

    // The platform admin sees everything, and may name any institution.
    let stored = app.audit_records().await;
    let mut platform = audit_as(&app, PLATFORM_ADMIN);
    let everything = walk(&mut platform, pb::QueryAuditRequest::default(), 500)
        .await
        .unwrap();
    assert_eq!(seqs(&everything)[..stored.len()], stored_seqs(&stored)[..]);
    let zju2 = walk(
        &mut platform,
        pb::QueryAuditRequest {
            institution_id: ZJU2.into(),
            ..Default::default()
        },
        500,
    )
    .await
    .unwrap();
    assert!(zju2.iter().any(|r| r.target == "user:zju2-nurse-h-0"));
    app.stop().await;
}

async fn only_admins_read_the_log_and_refusals_are_recorded(app: TestApp) {
    let consultation = history(&app).await;
    let target = format!("consultation:{}", consultation.id);
    for user in [DAWA, CHEN, NORBU] {
        let mut client = audit_as(&app, user);

        let head = audit_head(&app).await;
        refused(
            client.query(pb::QueryAuditRequest::default()).await,
            Code::PermissionDenied,
            "",
        );
        only_record(
            &audit_since(&app, head).await,
            user,
            "audit.query",
            "audit",
            Outcome::Denied,
        );

        let head = audit_head(&app).await;
        let export = client
            .export(pb::ExportAuditRequest {
                filter: None,
                format: pb::export_audit_request::Format::FhirNdjson as i32,
            })
            .await;
        assert_eq!(
            export.map(|_| ()).unwrap_err().code(),
            Code::PermissionDenied
        );
        only_record(
            &audit_since(&app, head).await,
            user,
            "audit.export",
            "audit",
            Outcome::Denied,
        );

        let head = audit_head(&app).await;
        refused(
            client.verify(pb::VerifyAuditRequest::default()).await,
            Code::PermissionDenied,
            "",
        );
        only_record(
            &audit_since(&app, head).await,
            user,
            "audit.verify",
            "audit",
            Outcome::Denied,
        );

        let head = audit_head(&app).await;
        refused(
            client
                .timeline(pb::TimelineRequest {
                    consultation_id: consultation.id.clone(),
                })
                .await,
            Code::PermissionDenied,
            "",
        );
        only_record(
            &audit_since(&app, head).await,
            user,
            "audit.timeline",
            &target,
            Outcome::Denied,
        );
    }

    // Any admin may check the chain's integrity: it reveals no record.
    for admin in [BIRU_ADMIN, ZJU2_ADMIN, PLATFORM_ADMIN] {
        let verified = audit_as(&app, admin)
            .verify(pb::VerifyAuditRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verified.intact, "{admin}: {verified:?}");
    }
    app.stop().await;
}
