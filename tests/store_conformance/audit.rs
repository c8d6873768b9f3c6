//! The audit log: one record per change, a contiguous chain under concurrent writers,
//! exact round trips, and protection of stored records.

use serde_json::json;
use teleconsult::audit::{AuditEntry, GENESIS_HASH, Outcome};
use teleconsult::domain::directory::{
    InstitutionKind, InstitutionUpdate, Language, Role, ShortText, UserQuery, UserUpdate,
};
use teleconsult::store::{self, DirectorySeed, Store, StoreError};
use time::OffsetDateTime;

use crate::backends::Backend;
use crate::fixtures::*;

/// Checks that the log grew by exactly `entry`, at seq `seq`, and still verifies.
async fn assert_appended(store: &dyn Store, seq: u64, entry: &AuditEntry) {
    let log = audit_log(store).await;
    assert_eq!(log.len() as u64, seq, "one record per change");
    let last = log.last().unwrap();
    assert_eq!(last.seq, seq);
    assert_eq!(&last.entry, entry);
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records_checked, seq);
    assert_eq!(report.head, Some((seq, last.hash.clone())));
}

pub async fn every_change_appends_one_audit_record(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact());
    assert_eq!((report.records_checked, report.head), (0, None));

    let audit = entry("directory.create_institution", "institution:zju2");
    store
        .create_institution(
            &institution("zju2", InstitutionKind::Consulting),
            audit.clone(),
        )
        .await
        .unwrap();
    assert_appended(store, 1, &audit).await;

    let audit = entry("directory.update_institution", "institution:zju2")
        .target_institution("zju2")
        .details(json!({"region": "Hangzhou"}));
    store
        .update_institution(
            &InstitutionUpdate {
                id: institution_id("zju2"),
                name_zh: name("浙大二院"),
                name_en: name("Zhejiang University Second Hospital"),
                region: ShortText::parse("Hangzhou").unwrap(),
            },
            audit.clone(),
        )
        .await
        .unwrap();
    assert_appended(store, 2, &audit).await;

    let audit = entry("directory.create_user", "user:zju2-chen").target_institution("zju2");
    store
        .create_user(&user("zju2-chen", "zju2", Role::Doctor), audit.clone())
        .await
        .unwrap();
    assert_appended(store, 3, &audit).await;

    let audit =
        entry("directory.set_specialist_profile", "user:zju2-chen").target_institution("zju2");
    store
        .set_specialist_profile(
            &profile("zju2-chen", &["cardiology"], &[Language::Mandarin]),
            audit.clone(),
        )
        .await
        .unwrap();
    assert_appended(store, 4, &audit).await;

    let audit = entry("directory.update_user", "user:zju2-chen").target_institution("zju2");
    store
        .update_user(
            &UserUpdate {
                id: user_id("zju2-chen"),
                display_name_zh: name("陈伟"),
                display_name_en: name("Chen Wei"),
                active: false,
            },
            audit.clone(),
        )
        .await
        .unwrap();
    assert_appended(store, 5, &audit).await;

    let audit = entry("directory.import", "directory").details(json!({"institutions": 1}));
    store
        .import_directory(
            &DirectorySeed {
                institutions: vec![institution(
                    "biru-county-hospital",
                    InstitutionKind::Inviting,
                )],
                ..Default::default()
            },
            audit.clone(),
        )
        .await
        .unwrap();
    assert_appended(store, 6, &audit).await;

    let mut audit = entry("consultation.request", "consultation:c1");
    audit.outcome = Outcome::Denied;
    let record = store.append_audit(audit.clone()).await.unwrap();
    assert_eq!(record.seq, 7);
    assert_appended(store, 7, &audit).await;
}

pub async fn concurrent_writers_keep_the_chain_contiguous(backend: &impl Backend) {
    let store = backend.store().await;
    seed_institutions(store.as_ref()).await;
    let before = audit_log(store.as_ref()).await.len();
    const WRITERS: usize = 50;

    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let user = user(
                    &format!("staff-{n:02}"),
                    "biru-county-hospital",
                    Role::ClinicStaff,
                );
                store
                    .create_user(
                        &user,
                        entry("directory.create_user", &format!("user:{}", user.id)),
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let log = audit_log(store.as_ref()).await;
    let total = (before + WRITERS) as u64;
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.head.map(|(seq, _)| seq), Some(total));
    let staff = store
        .users(&UserQuery {
            institution: Some(institution_id("biru-county-hospital")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(staff.len(), WRITERS);
}

pub async fn concurrent_duplicates_have_one_winner(backend: &impl Backend) {
    let store = backend.store().await;
    seed_institutions(store.as_ref()).await;
    let before = audit_log(store.as_ref()).await.len();
    const WRITERS: usize = 20;

    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_user(
                        &user("zju2-chen", "zju2", Role::Doctor),
                        entry("directory.create_user", "user:zju2-chen"),
                    )
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::AlreadyExists { entity: "user", id }) if id == "zju2-chen" => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    assert_eq!(created, 1);
    assert_eq!(audit_log(store.as_ref()).await.len(), before + 1);
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn audit_records_round_trip_exactly(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let at = |micros: i64| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap()
    };
    let mut entries = vec![
        AuditEntry {
            at: at(1_780_000_000_123_456),
            ..entry("consultation.request", "consultation:c1")
        },
        AuditEntry {
            at: at(1_780_000_001_000_001),
            outcome: Outcome::Invalid,
            ..entry("directory.create_user", "user:zju2-chen")
                .target_institution("zju2")
                .details(json!({"reason": "名字太长", "field": "user.display_name_zh"}))
        },
        AuditEntry {
            at: at(-1),
            outcome: Outcome::Error,
            ..entry("consultation.join", "consultation:c1").target_institution("")
        },
    ];
    entries.push(AuditEntry {
        outcome: Outcome::Denied,
        ..entry("session.connect", "session:?").details(json!({"claimed": "O=evil, CN=x"}))
    });

    let mut appended = Vec::new();
    for entry in &entries {
        appended.push(store.append_audit(entry.clone()).await.unwrap());
    }

    assert_eq!(appended[0].prev_hash, GENESIS_HASH);
    for (record, entry) in appended.iter().zip(&entries) {
        assert_eq!(&record.entry, entry);
    }
    assert_eq!(store.audit_records(0, 100).await.unwrap(), appended);
    assert_eq!(store.audit_records(1, 2).await.unwrap(), appended[1..3]);
    assert!(store.audit_records(4, 10).await.unwrap().is_empty());
}

pub async fn the_audit_log_refuses_changes_in_the_database(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    for n in 0..3 {
        store
            .append_audit(entry("consultation.request", &format!("consultation:c{n}")))
            .await
            .unwrap();
    }
    let before = audit_log(store).await;

    for sql in [
        "UPDATE audit_log SET details = '{\"edited\":true}' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
    ] {
        let error = backend.execute_raw(sql).await.unwrap_err();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }

    assert_eq!(audit_log(store).await, before);
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn tampering_is_detected(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    for n in 0..4 {
        store
            .append_audit(entry("consultation.request", &format!("consultation:c{n}")))
            .await
            .unwrap();
    }
    let first = audit_log(store).await.remove(0);

    backend.lift_audit_protection().await;
    backend
        .execute_raw("UPDATE audit_log SET details = '{\"edited\":true}' WHERE seq = 2")
        .await
        .unwrap();

    let report = store.verify_audit().await.unwrap();
    assert!(!report.is_intact());
    assert_eq!(report.first_bad.map(|(seq, _)| seq), Some(2));
    assert_eq!(report.head, Some((1, first.hash)));
}

/// Opens `NODES` stores on the backend's database at once, as broker nodes starting
/// together would, and checks that they share one directory and one chain.
async fn open_nodes_at_once(backend: &impl Backend) {
    const NODES: usize = 4;
    let nodes: Vec<_> = (0..NODES)
        .map(|_| {
            let url = backend.url().to_owned();
            tokio::spawn(async move { store::open(&url).await })
        })
        .collect();
    let mut opened = Vec::new();
    for node in nodes {
        opened.push(node.await.unwrap().expect("opening the database"));
    }
    let store = backend.store().await.as_ref();
    let before = audit_log(store).await.len() as u64;

    seed_institutions(opened[0].as_ref()).await;
    for node in &opened {
        assert_eq!(node.institutions(None).await.unwrap().len(), 3);
        node.append_audit(entry("node.start", "node"))
            .await
            .unwrap();
    }
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records_checked, before + 3 + NODES as u64);
}

pub async fn nodes_opening_a_migrated_database_at_once_share_it(backend: &impl Backend) {
    backend.store().await;
    open_nodes_at_once(backend).await;
}

pub async fn nodes_opening_a_new_database_at_once_migrate_it_once(backend: &impl Backend) {
    open_nodes_at_once(backend).await;
}
