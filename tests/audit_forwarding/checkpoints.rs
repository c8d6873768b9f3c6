//! Signed checkpoints make a cut tail detectable, and a forged checkpoint is caught,
//! on each backend; and `teleconsult audit verify` reports both.

use std::process::Command;

use teleconsult::audit::checkpoint::{
    CHECKPOINT_ACTION, CheckpointSigner, CheckpointVerifier, LogMatch, SignatureCheck,
};
use teleconsult::auth::pki::{CertificateAuthority, CertifiedKeyPem, Validity};
use teleconsult::store::{self, SharedStore, check_latest_checkpoint, write_checkpoint};

use super::backends::{Backend, Postgres, Sqlite};
use super::{append, init_logging};

fn broker_certificate() -> CertifiedKeyPem {
    CertificateAuthority::generate("test CA")
        .unwrap()
        .issue_server(&["localhost".to_owned()], Validity::days(1))
        .unwrap()
}

fn signer_for(certificate: &CertifiedKeyPem) -> CheckpointSigner {
    CheckpointSigner::from_pem(
        certificate.cert_pem.as_bytes(),
        certificate.key_pem.as_bytes(),
    )
    .unwrap()
}

fn verifier_for(certificate: &CertifiedKeyPem) -> CheckpointVerifier {
    CheckpointVerifier::from_pem(certificate.cert_pem.as_bytes()).unwrap()
}

/// Cuts the log after record `keep`, as someone with the database's keys could: past
/// the append-only triggers, and (in PostgreSQL) setting the head row back too.
async fn cut_after<B: Backend>(backend: &B, keep: u64) {
    backend.lift_audit_protection().await;
    let mut sql = format!("DELETE FROM audit_log WHERE seq > {keep};");
    if backend.url().starts_with("postgres") {
        sql.push_str(&format!(
            "UPDATE audit_head SET seq = {keep}, hash = (SELECT hash FROM audit_log WHERE seq = {keep});"
        ));
    }
    backend.execute_raw(&sql).await.expect("cutting the log");
}

async fn on<B: Backend>(test: impl AsyncFnOnce(&B, &SharedStore)) {
    init_logging();
    let Some(backend) = B::start().await else {
        return;
    };
    let store = backend.store().await.clone();
    test(&backend, &store).await;
    drop(store);
    backend.finish().await;
}

pub async fn a_cut_tail_is_detected_by_the_checkpoint<B: Backend>() {
    on::<B>(async |backend, store| {
        let certificate = broker_certificate();
        let (signer, verifier) = (signer_for(&certificate), verifier_for(&certificate));
        append(store, 1..=10).await;
        let checkpoint = write_checkpoint(store.as_ref(), &signer).await.unwrap();
        assert_eq!(checkpoint.map(|c| c.seq), Some(10));
        let head = store.audit_head().await.unwrap().unwrap();
        assert_eq!(
            (head.seq, head.entry.action.as_str()),
            (11, CHECKPOINT_ACTION)
        );
        // Nothing recorded since: no second checkpoint.
        assert_eq!(
            write_checkpoint(store.as_ref(), &signer).await.unwrap(),
            None
        );
        append(store, 12..=14).await;
        let report = check_latest_checkpoint(store.as_ref(), Some(&verifier)).await;
        assert!(report.unwrap().unwrap().is_intact());

        cut_after(backend, 7).await;
        // The chain alone cannot tell: what is left is a valid chain.
        let chain = store.verify_audit().await.unwrap();
        assert!(chain.is_intact() && chain.records_checked == 7);
        let report = check_latest_checkpoint(store.as_ref(), Some(&verifier))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (&report.log, &report.signature),
            (&LogMatch::Missing, &SignatureCheck::Valid)
        );
        let problem = &report.problems()[0];
        assert!(
            problem.starts_with("truncated or rewritten after checkpoint 10 signed at "),
            "{problem}"
        );

        // Written again past the checkpoint: seq 10 exists, with another hash.
        append(store, 8..=12).await;
        let report = check_latest_checkpoint(store.as_ref(), Some(&verifier))
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(report.log, LogMatch::Different { .. }),
            "{report:?}"
        );
        assert!(!report.is_intact());
    })
    .await;
}

pub async fn a_forged_checkpoint_is_detected<B: Backend>() {
    on::<B>(async |backend, store| {
        let certificate = broker_certificate();
        let (signer, verifier) = (signer_for(&certificate), verifier_for(&certificate));
        append(store, 1..=5).await;
        let genuine = write_checkpoint(store.as_ref(), &signer)
            .await
            .unwrap()
            .unwrap();
        append(store, 7..=9).await;
        // Someone with another key claims a checkpoint of record 9 in the broker's name.
        let record = store.audit_record(9).await.unwrap().unwrap();
        let forged = signer_for(&broker_certificate()).sign(&record).unwrap();
        backend
            .execute_raw(&format!(
                "INSERT INTO audit_checkpoints (seq, hash, at_us, signature, key_fingerprint)
                 VALUES (9, '{}', {}, '{}', '{}')",
                forged.hash,
                forged.at.unix_timestamp_nanos() / 1_000,
                forged.signature,
                genuine.key_fingerprint,
            ))
            .await
            .expect("inserting a forged checkpoint");
        let report = check_latest_checkpoint(store.as_ref(), Some(&verifier))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(report.checkpoint.seq, 9);
        assert_eq!(
            (&report.log, &report.signature),
            (&LogMatch::Intact, &SignatureCheck::Invalid)
        );
        assert!(report.problems()[0].contains("does not verify"));
        // Checked with another certificate, even the genuine one cannot be vouched for.
        let other = verifier_for(&broker_certificate());
        let report = check_latest_checkpoint(store.as_ref(), Some(&other))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(report.signature, SignatureCheck::OtherKey { .. }));
    })
    .await;
}

/// Retention: neither the log nor its checkpoints can be changed or removed through
/// the database (TRUNCATE too, in PostgreSQL); the application never tries.
pub async fn the_log_and_its_checkpoints_are_append_only<B: Backend>() {
    on::<B>(async |backend, store| {
        append(store, 1..=3).await;
        let certificate = broker_certificate();
        write_checkpoint(store.as_ref(), &signer_for(&certificate))
            .await
            .unwrap();
        let mut statements = vec![
            "UPDATE audit_checkpoints SET seq = 1",
            "DELETE FROM audit_checkpoints",
            "UPDATE audit_log SET outcome = 'denied' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 4",
        ];
        if backend.url().starts_with("postgres") {
            statements.extend(["TRUNCATE audit_log", "TRUNCATE audit_checkpoints"]);
        }
        for sql in statements {
            let error = backend.execute_raw(sql).await.unwrap_err();
            assert!(error.contains("append-only"), "{sql}: {error}");
        }
        let verifier = verifier_for(&certificate);
        let report = check_latest_checkpoint(store.as_ref(), Some(&verifier)).await;
        assert!(report.unwrap().unwrap().is_intact());
    })
    .await;
}

macro_rules! checkpoint_tests {
    ($backend:ident, $harness:ty) => {
        mod $backend {
            #[tokio::test]
            async fn a_cut_tail_is_detected_by_the_checkpoint() {
                super::a_cut_tail_is_detected_by_the_checkpoint::<$harness>().await;
            }

            #[tokio::test]
            async fn a_forged_checkpoint_is_detected() {
                super::a_forged_checkpoint_is_detected::<$harness>().await;
            }

            #[tokio::test]
            async fn the_log_and_its_checkpoints_are_append_only() {
                super::the_log_and_its_checkpoints_are_append_only::<$harness>().await;
            }
        }
    };
}

checkpoint_tests!(sqlite, super::Sqlite);
checkpoint_tests!(postgres, super::Postgres);

#[tokio::test]
async fn audit_verify_reports_a_cut_tail_and_the_checkpoint() {
    init_logging();
    let directory = tempfile::tempdir().unwrap();
    let database = directory.path().join("broker.db");
    let url = format!("sqlite://{}", database.display());
    let certificate = broker_certificate();
    let cert_path = directory.path().join("server.pem");
    std::fs::write(&cert_path, &certificate.cert_pem).unwrap();
    {
        let store = store::open(&url).await.unwrap();
        append(&store, 1..=10).await;
        write_checkpoint(store.as_ref(), &signer_for(&certificate))
            .await
            .unwrap();
    }
    let verify = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_teleconsult"))
            .current_dir(directory.path())
            .args(["audit", "verify", "--database-url", &url])
            .args(extra)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };
    let cert = cert_path.to_str().unwrap();
    let (code, stdout) = verify(&["--server-cert", cert]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("latest checkpoint intact: record 10 signed at"),
        "{stdout}"
    );
    // Without the broker's certificate the checkpoint proves nothing.
    let (code, stdout) = verify(&[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("no server certificate"), "{stdout}");

    let connection = rusqlite::Connection::open(&database).unwrap();
    connection
        .execute_batch("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > 8;")
        .unwrap();
    let (code, stdout) = verify(&["--server-cert", cert]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("audit chain intact: 8 records"), "{stdout}");
    assert!(
        stdout.contains("BROKEN: truncated or rewritten after checkpoint 10 signed at"),
        "{stdout}"
    );
}
