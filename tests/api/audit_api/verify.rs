//! `Verify`: an untouched chain is intact; a record altered or deleted behind the
//! broker's back (with the append-only triggers out of the way) is named; a range
//! checks that range only; and a cut-off tail falls short of an earlier export's head.

use teleconsult::proto::v1 as pb;
use tonic::Code;

use super::export::export;
use super::{audit_as, history, tamper};
use crate::helpers::TestApp;
use crate::scheduling::{BIRU_ADMIN, PLATFORM_ADMIN, refused};

on_both_backends!(
    an_untouched_chain_verifies_whole_and_in_ranges,
    an_altered_record_is_named_and_a_range_checks_only_itself,
    a_deleted_record_is_detected,
    a_cut_off_tail_falls_short_of_an_earlier_exports_head,
);

fn range(from_seq: u64, to_seq: u64) -> pb::VerifyAuditRequest {
    pb::VerifyAuditRequest { from_seq, to_seq }
}

async fn verify(app: &TestApp, request: pb::VerifyAuditRequest) -> pb::VerifyAuditResponse {
    audit_as(app, BIRU_ADMIN)
        .verify(request)
        .await
        .unwrap()
        .into_inner()
}

async fn an_untouched_chain_verifies_whole_and_in_ranges(app: TestApp) {
    history(&app).await;
    let records = app.audit_records().await;
    let last = records.last().unwrap();
    let whole = verify(&app, range(0, 0)).await;
    assert_eq!(
        (
            whole.intact,
            whole.records_checked,
            whole.head_seq,
            whole.head_hash.as_str(),
            whole.first_bad_seq
        ),
        (true, records.len() as u64, last.seq, last.hash.as_str(), 0),
        "{whole:?}"
    );

    let part = verify(&app, range(3, 7)).await;
    assert_eq!(
        (part.intact, part.records_checked, part.head_seq),
        (true, 5, 7),
        "{part:?}"
    );
    assert_eq!(part.head_hash, records[6].hash);
    let tail = verify(&app, range(last.seq - 1, 0)).await;
    assert!(tail.intact && tail.records_checked >= 2, "{tail:?}");

    refused(
        audit_as(&app, PLATFORM_ADMIN).verify(range(7, 3)).await,
        Code::InvalidArgument,
        "to_seq",
    );
    app.stop().await;
}

async fn an_altered_record_is_named_and_a_range_checks_only_itself(app: TestApp) {
    history(&app).await;
    let records = app.audit_records().await;
    let victim = records[records.len() / 2].seq;
    let head = records.last().unwrap().seq;
    tamper(
        &app,
        &format!("UPDATE audit_log SET actor_user = 'someone-else' WHERE seq = {victim}"),
    )
    .await;

    let whole = verify(&app, range(0, 0)).await;
    assert!(!whole.intact, "{whole:?}");
    assert_eq!(whole.first_bad_seq, victim);
    assert!(whole.problem.contains("altered"), "{}", whole.problem);
    assert_eq!(whole.head_seq, victim - 1, "the last intact record");
    assert_eq!(whole.head_hash, records[(victim - 2) as usize].hash);

    // Before and after the altered record the chain still holds; across it it does not.
    let before = verify(&app, range(0, victim - 1)).await;
    assert_eq!(
        (before.intact, before.records_checked, before.head_seq),
        (true, victim - 1, victim - 1),
        "{before:?}"
    );
    let after = verify(&app, range(victim + 1, head)).await;
    assert_eq!(
        (after.intact, after.records_checked, after.head_seq),
        (true, head - victim, head),
        "{after:?}"
    );
    let across = verify(&app, range(victim - 1, victim + 1)).await;
    assert_eq!(
        (across.intact, across.first_bad_seq, across.records_checked),
        (false, victim, 2),
        "{across:?}"
    );
    app.stop().await;
}

async fn a_deleted_record_is_detected(app: TestApp) {
    history(&app).await;
    let records = app.audit_records().await;
    let victim = records[records.len() / 2].seq;
    tamper(&app, &format!("DELETE FROM audit_log WHERE seq = {victim}")).await;

    let whole = verify(&app, range(0, 0)).await;
    assert_eq!(
        (whole.intact, whole.first_bad_seq, whole.head_seq),
        (false, victim, victim - 1),
        "{whole:?}"
    );
    assert!(whole.problem.contains("missing"), "{}", whole.problem);
    // A range that ends before the gap does not see it.
    assert!(verify(&app, range(1, victim - 1)).await.intact);
    app.stop().await;
}

async fn a_cut_off_tail_falls_short_of_an_earlier_exports_head(app: TestApp) {
    history(&app).await;
    let exported = export(
        &mut audit_as(&app, PLATFORM_ADMIN),
        pb::QueryAuditRequest::default(),
        pb::export_audit_request::Format::Jsonl,
    )
    .await;
    let cut = exported.head_seq - 1;
    tamper(&app, &format!("DELETE FROM audit_log WHERE seq >= {cut}")).await;

    // What is left is a consistent chain, so only the head tells: the export saw the
    // chain reach further than the log now does.
    let later = verify(&app, range(0, 0)).await;
    assert!(later.intact, "{later:?}");
    assert_eq!(later.head_seq, cut - 1);
    assert!(later.head_seq < exported.head_seq);
    app.stop().await;
}
