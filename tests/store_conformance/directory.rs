//! Institutions, users and specialists.

use teleconsult::domain::directory::{
    Institution, InstitutionKind, InstitutionUpdate, Language, Role, ShortText, UserQuery,
    UserUpdate,
};
use teleconsult::store::{DirectorySeed, ImportSummary, StoreError};

use crate::backends::Backend;
use crate::fixtures::*;

pub async fn institutions_are_created_listed_and_filtered(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let created = [
        institution("zju2", InstitutionKind::Consulting),
        institution("biru-county-hospital", InstitutionKind::Inviting),
        institution("platform", InstitutionKind::Platform),
        institution("nagqu.peoples", InstitutionKind::Inviting),
        institution("hz-first", InstitutionKind::Consulting),
    ];
    for institution in &created {
        store
            .create_institution(institution, entry("directory.create_institution", "x"))
            .await
            .unwrap();
    }

    assert_eq!(
        store.institution(&institution_id("zju2")).await.unwrap(),
        Some(created[0].clone())
    );
    assert_eq!(
        store.institution(&institution_id("nowhere")).await.unwrap(),
        None
    );
    let ids = |list: Vec<Institution>| {
        list.into_iter()
            .map(|i| i.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.institutions(None).await.unwrap()),
        [
            "biru-county-hospital",
            "hz-first",
            "nagqu.peoples",
            "platform",
            "zju2"
        ]
    );
    assert_eq!(
        ids(store
            .institutions(Some(InstitutionKind::Inviting))
            .await
            .unwrap()),
        ["biru-county-hospital", "nagqu.peoples"]
    );
    assert_eq!(
        store
            .institutions(Some(InstitutionKind::Consulting))
            .await
            .unwrap(),
        [created[4].clone(), created[0].clone()]
    );
}

pub async fn a_duplicate_institution_is_refused_and_leaves_no_trace(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let original = institution("zju2", InstitutionKind::Consulting);
    store
        .create_institution(&original, entry("directory.create_institution", "x"))
        .await
        .unwrap();
    let before = audit_log(store).await;

    let mut renamed = original.clone();
    renamed.name_en = name("Another hospital");
    let error = store
        .create_institution(&renamed, entry("directory.create_institution", "x"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, StoreError::AlreadyExists { entity: "institution", id } if id == "zju2"),
        "{error:?}"
    );
    assert_eq!(audit_log(store).await, before);
    assert_eq!(
        store.institution(&original.id).await.unwrap(),
        Some(original)
    );
}

pub async fn users_are_checked_before_they_are_created(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    let before = audit_log(store).await.len();

    let homeless = user("chen", "nowhere", Role::Doctor);
    let error = store
        .create_user(&homeless, entry("directory.create_user", "user:chen"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "institution", id } if id == "nowhere"),
        "{error:?}"
    );

    let misplaced = user("chen", "biru-county-hospital", Role::Doctor);
    let error = store
        .create_user(&misplaced, entry("directory.create_user", "user:chen"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");

    let doctor = user("chen", "zju2", Role::Doctor);
    create_user(store, &doctor).await;
    let mut twin = user("chen", "biru-county-hospital", Role::Interpreter);
    twin.display_name_en = name("Someone else");
    let error = store
        .create_user(&twin, entry("directory.create_user", "user:chen"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { entity: "user", id } if id == "chen"),
        "{error:?}"
    );

    assert_eq!(store.user(&doctor.id).await.unwrap(), Some(doctor));
    assert_eq!(store.user(&user_id("nobody")).await.unwrap(), None);
    assert_eq!(audit_log(store).await.len(), before + 1);
}

pub async fn users_and_institutions_are_updated(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    let doctor = user("chen", "zju2", Role::Doctor);
    create_user(store, &doctor).await;

    let update = InstitutionUpdate {
        id: institution_id("zju2"),
        name_zh: name("浙江大学医学院附属第二医院"),
        name_en: name("Second Affiliated Hospital, Zhejiang University"),
        region: ShortText::parse("Hangzhou").unwrap(),
    };
    let updated = store
        .update_institution(&update, entry("directory.update_institution", "x"))
        .await
        .unwrap();
    assert_eq!(updated.kind, InstitutionKind::Consulting);
    assert_eq!(updated.name_en, update.name_en);
    assert_eq!(updated.region, update.region);
    assert_eq!(store.institution(&update.id).await.unwrap(), Some(updated));

    let deactivate = UserUpdate {
        id: doctor.id.clone(),
        display_name_zh: name("陈伟"),
        display_name_en: name("Chen Wei"),
        active: false,
    };
    let updated = store
        .update_user(&deactivate, entry("directory.update_user", "user:chen"))
        .await
        .unwrap();
    assert!(!updated.active);
    assert_eq!(updated.role, Role::Doctor);
    assert_eq!(updated.institution, doctor.institution);
    assert_eq!(updated.display_name_en, deactivate.display_name_en);
    assert_eq!(store.user(&doctor.id).await.unwrap(), Some(updated));

    let before = audit_log(store).await;
    let missing = InstitutionUpdate {
        id: institution_id("nowhere"),
        ..update
    };
    let error = store
        .update_institution(&missing, entry("directory.update_institution", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "institution", id } if id == "nowhere"),
        "{error:?}"
    );
    let missing = UserUpdate {
        id: user_id("nobody"),
        ..deactivate
    };
    let error = store
        .update_user(&missing, entry("directory.update_user", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "user", id } if id == "nobody"),
        "{error:?}"
    );
    assert_eq!(audit_log(store).await, before);
}

pub async fn users_are_filtered(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    for user in [
        user("zju2-chen", "zju2", Role::Doctor),
        user("zju2-admin", "zju2", Role::Admin),
        user("zju2-lobsang", "zju2", Role::Interpreter),
        user("biru-dawa", "biru-county-hospital", Role::ClinicStaff),
        user("biru-admin", "biru-county-hospital", Role::Admin),
        user("zju2-wang", "zju2", Role::Doctor),
    ] {
        create_user(store, &user).await;
    }
    store
        .update_user(
            &UserUpdate {
                id: user_id("zju2-wang"),
                display_name_zh: name("王"),
                display_name_en: name("Wang"),
                active: false,
            },
            entry("directory.update_user", "user:zju2-wang"),
        )
        .await
        .unwrap();

    let ids = |query: UserQuery| async move {
        store
            .users(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(UserQuery::default()).await,
        [
            "biru-admin",
            "biru-dawa",
            "zju2-admin",
            "zju2-chen",
            "zju2-lobsang"
        ]
    );
    assert_eq!(
        ids(UserQuery {
            include_inactive: true,
            ..Default::default()
        })
        .await,
        [
            "biru-admin",
            "biru-dawa",
            "zju2-admin",
            "zju2-chen",
            "zju2-lobsang",
            "zju2-wang"
        ]
    );
    assert_eq!(
        ids(UserQuery {
            institution: Some(institution_id("zju2")),
            ..Default::default()
        })
        .await,
        ["zju2-admin", "zju2-chen", "zju2-lobsang"]
    );
    assert_eq!(
        ids(UserQuery {
            role: Some(Role::Doctor),
            include_inactive: true,
            ..Default::default()
        })
        .await,
        ["zju2-chen", "zju2-wang"]
    );
    assert_eq!(
        ids(UserQuery {
            institution: Some(institution_id("biru-county-hospital")),
            role: Some(Role::Admin),
            include_inactive: false,
        })
        .await,
        ["biru-admin"]
    );
    assert!(
        ids(UserQuery {
            institution: Some(institution_id("nowhere")),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

pub async fn a_specialist_profile_is_set_and_replaced(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    let doctor = named_user("zju2-chen", "zju2", Role::Doctor, "陈伟", "Chen Wei");
    create_user(store, &doctor).await;
    assert_eq!(store.specialist(&doctor.id).await.unwrap(), None);

    let first = profile(
        "zju2-chen",
        &["high-altitude-medicine", "cardiology"],
        &[Language::Mandarin, Language::English],
    );
    let specialist = store
        .set_specialist_profile(&first, entry("directory.set_specialist_profile", "x"))
        .await
        .unwrap();
    assert_eq!(specialist.profile, first);
    assert_eq!(specialist.institution, doctor.institution);
    assert_eq!(specialist.display_name_zh, doctor.display_name_zh);
    assert_eq!(specialist.display_name_en, doctor.display_name_en);
    assert_eq!(
        store.specialist(&doctor.id).await.unwrap(),
        Some(specialist)
    );

    let mut second = profile("zju2-chen", &["nephrology"], &[Language::Tibetan]);
    second.on_call = false;
    second.title = name("Attending physician");
    let specialist = store
        .set_specialist_profile(&second, entry("directory.set_specialist_profile", "x"))
        .await
        .unwrap();
    assert_eq!(specialist.profile, second);
    assert_eq!(
        store.specialist(&doctor.id).await.unwrap(),
        Some(specialist)
    );
}

pub async fn only_active_doctors_get_a_specialist_profile(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    create_user(store, &user("zju2-lobsang", "zju2", Role::Interpreter)).await;
    create_user(store, &user("zju2-wang", "zju2", Role::Doctor)).await;
    store
        .update_user(
            &UserUpdate {
                id: user_id("zju2-wang"),
                display_name_zh: name("王"),
                display_name_en: name("Wang"),
                active: false,
            },
            entry("directory.update_user", "user:zju2-wang"),
        )
        .await
        .unwrap();
    let before = audit_log(store).await;

    for refused in ["zju2-lobsang", "zju2-wang"] {
        let error = store
            .set_specialist_profile(
                &profile(refused, &["cardiology"], &[Language::Mandarin]),
                entry("directory.set_specialist_profile", "x"),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
        assert_eq!(store.specialist(&user_id(refused)).await.unwrap(), None);
    }
    let error = store
        .set_specialist_profile(
            &profile("nobody", &["cardiology"], &[Language::Mandarin]),
            entry("directory.set_specialist_profile", "x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "user", id } if id == "nobody"),
        "{error:?}"
    );
    assert_eq!(audit_log(store).await, before);
}

pub async fn a_directory_import_is_idempotent(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let seed = DirectorySeed {
        institutions: vec![
            institution("zju2", InstitutionKind::Consulting),
            institution("biru-county-hospital", InstitutionKind::Inviting),
        ],
        users: vec![
            user("zju2-chen", "zju2", Role::Doctor),
            user("biru-dawa", "biru-county-hospital", Role::ClinicStaff),
        ],
        specialists: vec![profile(
            "zju2-chen",
            &["cardiology"],
            &[Language::Mandarin, Language::Tibetan],
        )],
    };
    let expected = ImportSummary {
        institutions: 2,
        users: 2,
        specialists: 1,
    };

    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let summary = store
            .import_directory(&seed, entry("directory.import", "directory"))
            .await
            .unwrap();
        assert_eq!(summary, expected);
        snapshots.push((
            store.institutions(None).await.unwrap(),
            store
                .users(&UserQuery {
                    include_inactive: true,
                    ..Default::default()
                })
                .await
                .unwrap(),
            store.specialist(&user_id("zju2-chen")).await.unwrap(),
        ));
    }

    assert_eq!(snapshots[0], snapshots[1]);
    let (institutions, users, specialist) = &snapshots[0];
    assert_eq!(
        institutions,
        &[seed.institutions[1].clone(), seed.institutions[0].clone()]
    );
    assert_eq!(users, &[seed.users[1].clone(), seed.users[0].clone()]);
    assert_eq!(
        specialist.as_ref().map(|s| &s.profile),
        Some(&seed.specialists[0])
    );
    let log = audit_log(store).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| r.entry.action == "directory.import"));
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn a_failed_import_changes_nothing(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    let seed = DirectorySeed {
        institutions: vec![institution("zju2", InstitutionKind::Consulting)],
        users: vec![
            user("zju2-chen", "zju2", Role::Doctor),
            user("biru-dawa", "biru-county-hospital", Role::ClinicStaff),
        ],
        specialists: vec![],
    };

    let error = store
        .import_directory(&seed, entry("directory.import", "directory"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, StoreError::NotFound { entity: "institution", id }
            if id == "biru-county-hospital"),
        "{error:?}"
    );
    assert!(store.institutions(None).await.unwrap().is_empty());
    assert_eq!(store.user(&user_id("zju2-chen")).await.unwrap(), None);
    assert!(audit_log(store).await.is_empty());
}
