//! The forwarder against a real syslog-over-TLS receiver: every record arrives, through
//! an outage of the repository and across restarts of the forwarder and the broker.

use std::time::Duration;

use teleconsult::audit::checkpoint::{CHECKPOINT_ACTION, CheckpointVerifier};
use teleconsult::audit::syslog::SyslogForwarder;
use teleconsult::auth::pki::PkiDirectory;
use teleconsult::auth::tls::TlsFiles;
use teleconsult::server::{self, AuditSettings, HandshakeLimits, ServerSettings};
use teleconsult::store::{self, SharedStore, check_latest_checkpoint};
use tokio_util::sync::CancellationToken;

use super::receiver::Receiver;
use super::{Received, RepositoryPki, append, init_logging};

async fn sqlite_store(directory: &tempfile::TempDir) -> SharedStore {
    store::open(directory.path().join("broker.db").to_str().unwrap())
        .await
        .expect("opening the store")
}

#[tokio::test]
async fn every_record_arrives_through_an_outage_of_the_repository() {
    init_logging();
    let directory = tempfile::tempdir().unwrap();
    let store = sqlite_store(&directory).await;
    // Recorded before the forwarder starts: the log is the spool.
    append(&store, 1..=40).await;
    let pki = RepositoryPki::new();
    let (mut receiver, mut inbox) = Receiver::start(pki.receiver_config(true)).await;
    let forwarder =
        SyslogForwarder::new(pki.settings(receiver.address(), true), store.clone()).unwrap();
    let mut status = forwarder.status();
    let stop = CancellationToken::new();
    let forwarding = tokio::spawn(forwarder.run(stop.clone()));

    let mut received = Received::default();
    received
        .until(&mut inbox, "the spooled records", |r| r.has_all(40))
        .await;

    // The repository goes away while records are being appended and forwarded.
    let appending = tokio::spawn({
        let store = store.clone();
        async move { append(&store, 41..=240).await }
    });
    received
        .until(&mut inbox, "records sent while appending", |r| {
            r.by_seq.len() >= 60
        })
        .await;
    let failures = status.borrow().failures;
    receiver.stop().await;
    appending.await.unwrap();
    append(&store, 241..=260).await;
    tokio::time::timeout(
        Duration::from_secs(20),
        status.wait_for(|s| s.failures > failures && !s.connected),
    )
    .await
    .expect("the forwarder notices the outage")
    .unwrap();

    receiver.restart().await;
    received
        .until(&mut inbox, "every record after the outage", |r| {
            r.has_all(260)
        })
        .await;
    stop.cancel();
    forwarding.await.unwrap();

    received.check(&store.audit_records(0, 1_000).await.unwrap());
    let destination = format!("syslog:{}", receiver.address());
    assert_eq!(store.forwarded_up_to(&destination).await.unwrap(), 260);
    assert_eq!(status.borrow().delivered_up_to, 260);
    println!("{} duplicates, identified by seq", received.duplicates);
}

#[tokio::test]
async fn a_restarted_forwarder_resumes_after_what_was_delivered() {
    init_logging();
    let directory = tempfile::tempdir().unwrap();
    let store = sqlite_store(&directory).await;
    append(&store, 1..=10).await;
    let pki = RepositoryPki::new();
    // No client certificate: mutual authentication is optional.
    let (receiver, mut inbox) = Receiver::start(pki.receiver_config(false)).await;
    let mut received = Received::default();
    for last in [10, 15] {
        let settings = pki.settings(receiver.address(), false);
        let forwarder = SyslogForwarder::new(settings, store.clone()).unwrap();
        let stop = CancellationToken::new();
        let forwarding = tokio::spawn(forwarder.run(stop.clone()));
        received
            .until(&mut inbox, "the records", |r| r.has_all(last))
            .await;
        // A clean stop: the repository closes in reply, so all of it counts as
        // delivered and the next forwarder sends none of it again.
        stop.cancel();
        forwarding.await.unwrap();
        append(&store, last + 1..=last + 5).await;
    }
    assert_eq!(received.duplicates, 0);
    assert!(
        inbox.try_recv().is_err(),
        "nothing beyond record 15 was sent"
    );
    received.check(&store.audit_records(0, 15).await.unwrap());
}

#[tokio::test]
async fn the_broker_forwards_and_checkpoints_until_it_stops() {
    init_logging();
    teleconsult::server::init_crypto();
    let directory = tempfile::tempdir().unwrap();
    let broker_pki = PkiDirectory::new(directory.path().join("pki"));
    broker_pki.init("test CA", &["localhost".into()]).unwrap();
    let store = sqlite_store(&directory).await;
    append(&store, 1..=3).await;
    let pki = RepositoryPki::new();
    let (receiver, mut inbox) = Receiver::start(pki.receiver_config(true)).await;
    let settings = ServerSettings {
        tls: TlsFiles {
            client_ca: broker_pki.ca_cert(),
            server_cert: broker_pki.server_cert(),
            server_key: broker_pki.server_key(),
            crl: None,
        },
        handshake: HandshakeLimits::default(),
        shutdown_grace: Duration::from_secs(2),
        scheduler: Default::default(),
        relay: Default::default(),
        audit: AuditSettings {
            checkpoint_interval: Some(Duration::from_secs(3600)),
            syslog: Some(pki.settings(receiver.address(), true)),
        },
        console: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let broker = tokio::spawn(server::run(
        listener,
        settings,
        store.clone(),
        teleconsult::events::ConsultationEvents::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut received = Received::default();
    received
        .until(&mut inbox, "the records from before the start", |r| {
            r.has_all(3)
        })
        .await;
    append(&store, 4..=5).await;
    received
        .until(&mut inbox, "the records appended while serving", |r| {
            r.has_all(5)
        })
        .await;

    shutdown.send(()).unwrap();
    broker.await.unwrap().expect("the broker stops cleanly");
    // The final checkpoint covers the last record; its own record was forwarded before
    // the broker returned.
    let head = store.audit_head().await.unwrap().unwrap();
    assert_eq!(
        (head.seq, head.entry.action.as_str()),
        (6, CHECKPOINT_ACTION)
    );
    received
        .until(&mut inbox, "the final checkpoint's record", |r| {
            r.has_all(6)
        })
        .await;
    let verifier = CheckpointVerifier::load(&broker_pki.server_cert()).unwrap();
    let report = check_latest_checkpoint(store.as_ref(), Some(&verifier))
        .await
        .unwrap()
        .expect("a checkpoint was written at shutdown");
    assert_eq!(report.checkpoint.seq, 5);
    assert!(report.is_intact(), "{:?}", report.problems());
}
