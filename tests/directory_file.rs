//! The example directory goes through the real import path: parsed from the file in
//! `deploy/`, imported into a fresh SQLite store, and found again by the searches
//! clinics use.

use std::path::Path;

use teleconsult::audit::{Actor, AuditEntry, Outcome};
use teleconsult::directory_file;
use teleconsult::domain::directory::{Language, SpecialistQuery};
use teleconsult::domain::ids::{InstitutionId, Specialty, UserId};
use teleconsult::store::Store;
use teleconsult::store::sqlite::SqliteStore;

#[tokio::test]
async fn the_example_directory_imports_into_a_fresh_store() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/directory.example.toml");
    let seed = directory_file::load(&path).expect("the example loads");

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("broker.db"))
        .await
        .unwrap();
    let audit = AuditEntry::new(
        Actor::local_operator(),
        "directory.import",
        "directory",
        Outcome::Ok,
    );
    let summary = store.import_directory(&seed, audit).await.unwrap();
    assert_eq!(summary.institutions, seed.institutions.len());
    assert_eq!(summary.users, seed.users.len());
    assert_eq!(summary.specialists, seed.specialists.len());

    let admin = store
        .user(&UserId::parse("platform-admin").unwrap())
        .await
        .unwrap()
        .expect("platform-admin was imported");
    assert!(admin.institution.is_platform());

    // A Biru clinic looking for a Tibetan-speaking high-altitude specialist finds one.
    let query = SpecialistQuery {
        specialty: Some(Specialty::parse("high-altitude-medicine").unwrap()),
        language: Some(Language::Tibetan),
        ..SpecialistQuery::default()
    };
    let found = store.search_specialists(&query).await.unwrap();
    assert!(!found.is_empty());

    // Importing the same file again changes nothing but is accepted (an upsert).
    let again = AuditEntry::new(
        Actor::local_operator(),
        "directory.import",
        "directory",
        Outcome::Ok,
    );
    store.import_directory(&seed, again).await.unwrap();
    let biru = store
        .institution(&InstitutionId::parse("biru-county-hospital").unwrap())
        .await
        .unwrap()
        .expect("biru-county-hospital");
    assert_eq!(biru.name_zh.as_str(), "比如县人民医院");
    assert!(store.verify_audit().await.unwrap().is_intact());
}
