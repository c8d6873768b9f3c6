//! Searching specialists.

use teleconsult::domain::directory::{
    InstitutionKind, Language, PageSize, Role, SpecialistQuery, UserUpdate,
};
use teleconsult::domain::ids::Specialty;
use teleconsult::store::Store;

use crate::backends::Backend;
use crate::fixtures::*;

async fn search(store: &dyn Store, query: SpecialistQuery) -> Vec<String> {
    store
        .search_specialists(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.profile.user_id.to_string())
        .collect()
}

async fn deactivate(store: &dyn Store, id: &str) {
    let user = store.user(&user_id(id)).await.unwrap().unwrap();
    store
        .update_user(
            &UserUpdate {
                id: user.id,
                display_name_zh: user.display_name_zh,
                display_name_en: user.display_name_en,
                active: false,
            },
            entry("directory.update_user", &format!("user:{id}")),
        )
        .await
        .unwrap();
}

pub async fn specialists_are_found_by_specialty_institution_language_and_name(
    backend: &impl Backend,
) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    store
        .create_institution(
            &institution("hz-first", InstitutionKind::Consulting),
            entry("directory.create_institution", "institution:hz-first"),
        )
        .await
        .unwrap();
    for (id, institution, zh, en, specialties, languages) in [
        (
            "zju2-chen",
            "zju2",
            "陈伟",
            "Chen Wei",
            &["cardiology", "high-altitude-medicine"][..],
            &[Language::Mandarin, Language::English][..],
        ),
        (
            "zju2-wang",
            "zju2",
            "王芳",
            "Wang Fang",
            &["nephrology"],
            &[Language::Mandarin, Language::Tibetan],
        ),
        (
            "hz-first-li",
            "hz-first",
            "李娜",
            "Li Na",
            &["cardiology"],
            &[Language::Tibetan],
        ),
        (
            "zju2-zhao",
            "zju2",
            "赵强",
            "Zhao Qiang",
            &["cardiology"],
            &[Language::Mandarin],
        ),
    ] {
        create_user(store, &named_user(id, institution, Role::Doctor, zh, en)).await;
        set_profile(store, &profile(id, specialties, languages)).await;
    }
    // A doctor without a profile is not a specialist.
    create_user(store, &user("zju2-sun", "zju2", Role::Doctor)).await;
    deactivate(store, "zju2-zhao").await;

    let specialty = |s: &str| Some(Specialty::parse(s).unwrap());
    let by_name = |text: &str| SpecialistQuery {
        name_contains: Some(text.to_owned()),
        ..Default::default()
    };
    assert_eq!(
        search(store, SpecialistQuery::default()).await,
        ["hz-first-li", "zju2-chen", "zju2-wang"]
    );
    assert_eq!(
        search(
            store,
            SpecialistQuery {
                specialty: specialty("cardiology"),
                ..Default::default()
            }
        )
        .await,
        ["hz-first-li", "zju2-chen"]
    );
    assert_eq!(
        search(
            store,
            SpecialistQuery {
                institution: Some(institution_id("zju2")),
                ..Default::default()
            }
        )
        .await,
        ["zju2-chen", "zju2-wang"]
    );
    assert_eq!(
        search(
            store,
            SpecialistQuery {
                language: Some(Language::Tibetan),
                ..Default::default()
            }
        )
        .await,
        ["hz-first-li", "zju2-wang"]
    );
    assert_eq!(
        search(
            store,
            SpecialistQuery {
                specialty: specialty("cardiology"),
                language: Some(Language::Mandarin),
                ..Default::default()
            }
        )
        .await,
        ["zju2-chen"]
    );
    assert!(
        search(
            store,
            SpecialistQuery {
                specialty: specialty("dermatology"),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    assert_eq!(search(store, by_name("CHEN")).await, ["zju2-chen"]);
    assert_eq!(search(store, by_name("wEi")).await, ["zju2-chen"]);
    assert_eq!(search(store, by_name("na")).await, ["hz-first-li"]);
    assert_eq!(search(store, by_name("芳")).await, ["zju2-wang"]);
    assert_eq!(search(store, by_name("陈伟")).await, ["zju2-chen"]);
    // Inactive specialists are hidden however they are looked for.
    assert!(search(store, by_name("Zhao")).await.is_empty());
    assert!(search(store, by_name("Sun")).await.is_empty());

    let found = store
        .search_specialists(&SpecialistQuery {
            specialty: specialty("high-altitude-medicine"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].display_name_en, name("Chen Wei"));
    assert_eq!(found[0].institution, institution_id("zju2"));
    assert_eq!(
        found[0].profile,
        profile(
            "zju2-chen",
            &["cardiology", "high-altitude-medicine"],
            &[Language::Mandarin, Language::English]
        )
    );
}

pub async fn search_pages_cover_every_specialist_once(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed_institutions(store).await;
    // Ids that sort differently by byte than by most locales' rules, where punctuation
    // is ignored: pages must follow byte order, as SQLite and Rust do.
    let ids = [
        "doc-1", "doc.1", "doc0", "doc_1", "doca", "doc-10", "doc-2", "d", "da", "d-a", "d.a",
        "d_a", "doc1", "hidden",
    ];
    for id in ids {
        create_user(store, &user(id, "zju2", Role::Doctor)).await;
        set_profile(store, &profile(id, &["cardiology"], &[Language::Mandarin])).await;
    }
    deactivate(store, "hidden").await;
    let mut expected: Vec<&str> = ids.into_iter().filter(|id| *id != "hidden").collect();
    expected.sort();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = search(
            store,
            SpecialistQuery {
                after: after.as_deref().map(user_id),
                limit: PageSize::new(4),
                ..Default::default()
            },
        )
        .await;
        assert!(page.len() <= 4, "{page:?}");
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page);
    }

    assert_eq!(seen, expected);
    assert_eq!(
        search(
            store,
            SpecialistQuery {
                after: Some(user_id("doc-1")),
                limit: PageSize::new(2),
                ..Default::default()
            }
        )
        .await,
        ["doc-10", "doc-2"]
    );
}
