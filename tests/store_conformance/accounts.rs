//! Passwords, lockouts, web sessions and enrollments.

use teleconsult::audit::AuditRecord;
use teleconsult::domain::directory::Role;
use teleconsult::store::{Enrollment, FailureOutcome, Store, StoreError, WebSession};

use crate::backends::Backend;
use crate::fixtures::*;

const NOW: i64 = 1_780_000_000_000_000;
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const LIMIT: u32 = 3;
const LOCK: i64 = 15 * MINUTE;

/// Two doctors at zju2, neither with a password yet.
async fn seed(store: &dyn Store) {
    seed_institutions(store).await;
    create_user(store, &user("zju2-chen", "zju2", Role::Doctor)).await;
    create_user(store, &user("zju2-wang", "zju2", Role::Doctor)).await;
}

async fn set_password(store: &dyn Store, user: &str, hash: &str, now: i64) {
    store
        .set_password(
            &user_id(user),
            hash,
            now,
            entry("account.set_password", &format!("user:{user}")),
        )
        .await
        .expect("setting a password");
}

async fn fail(store: &dyn Store, user: &str, now: i64) -> Result<FailureOutcome, StoreError> {
    store
        .record_failed_sign_in(
            &user_id(user),
            now,
            LIMIT,
            LOCK,
            entry("account.sign_in", &format!("user:{user}")),
        )
        .await
}

fn session(id: u128, user: &str, now: i64) -> WebSession {
    WebSession {
        id: format!("{id:032x}"),
        user: user_id(user),
        created_at: now,
        expires_at: now + 12 * HOUR,
        ended_at: None,
    }
}

fn enrollment(token: u8, user: &str) -> Enrollment {
    Enrollment {
        token_hash: token_hash(token),
        user: user_id(user),
        created_at: NOW,
        expires_at: NOW + 24 * HOUR,
        used_at: None,
    }
}

fn token_hash(token: u8) -> String {
    format!("{token:02x}").repeat(32)
}

async fn create_enrollment(store: &dyn Store, enrollment: &Enrollment) {
    store
        .create_enrollment(
            enrollment,
            entry(
                "account.create_enrollment",
                &format!("user:{}", enrollment.user),
            ),
        )
        .await
        .expect("creating an enrollment");
}

/// The records appended since the log was `before`.
async fn appended(store: &dyn Store, before: &[AuditRecord]) -> Vec<String> {
    let log = audit_log(store).await;
    assert_eq!(
        &log[..before.len()],
        before,
        "earlier records are unchanged"
    );
    log[before.len()..]
        .iter()
        .map(|record| record.entry.action.clone())
        .collect()
}

pub async fn a_password_needs_an_existing_user(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let before = audit_log(store).await;

    let error = store
        .set_password(
            &user_id("zju2-nobody"),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            NOW,
            entry("account.set_password", "user:zju2-nobody"),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(&error, StoreError::NotFound { entity: "user", id } if id == "zju2-nobody"),
        "{error:?}"
    );
    assert_eq!(
        store.credential(&user_id("zju2-nobody")).await.unwrap(),
        None
    );
    assert!(appended(store, &before).await.is_empty());
}

pub async fn a_password_is_set_and_replaced(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    assert_eq!(store.credential(&user_id("zju2-chen")).await.unwrap(), None);
    let before = audit_log(store).await;

    set_password(store, "zju2-chen", "first-hash", NOW).await;
    // Signed in from two browsers (and another user from a third).
    for (id, user) in [(1, "zju2-chen"), (2, "zju2-chen"), (3, "zju2-wang")] {
        store
            .start_web_session(
                &session(id, user, NOW + 1),
                entry("account.sign_in", &format!("user:{user}")),
            )
            .await
            .unwrap();
    }
    set_password(store, "zju2-chen", "second-hash", NOW + MINUTE).await;
    // The new password signed both of the user's browsers out, nobody else's.
    for id in [1u128, 2] {
        let ended = store
            .web_session(&format!("{id:032x}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.ended_at, Some(NOW + MINUTE), "session {id}");
    }
    let other = store
        .web_session(&format!("{:032x}", 3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.ended_at, None);

    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.user, user_id("zju2-chen"));
    assert_eq!(credential.password_hash, "second-hash");
    assert_eq!(credential.failed_attempts, 0);
    assert_eq!(credential.locked_until, None);
    assert_eq!(credential.updated_at, NOW + MINUTE);
    assert_eq!(store.credential(&user_id("zju2-wang")).await.unwrap(), None);
    assert_eq!(
        appended(store, &before).await,
        [
            "account.set_password",
            "account.sign_in",
            "account.sign_in",
            "account.sign_in",
            "account.set_password"
        ]
    );
}

pub async fn failures_lock_the_account_at_the_limit_until_the_lock_expires(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let before = audit_log(store).await;

    let error = fail(store, "zju2-chen", NOW).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "credential", id } if id == "zju2-chen"),
        "{error:?}"
    );
    assert!(appended(store, &before).await.is_empty());

    set_password(store, "zju2-chen", "hash", NOW).await;
    let before = audit_log(store).await;
    let unlocked = |failed_attempts| FailureOutcome {
        failed_attempts,
        locked_until: None,
    };
    assert_eq!(
        fail(store, "zju2-chen", NOW + 1).await.unwrap(),
        unlocked(1)
    );
    assert_eq!(
        fail(store, "zju2-chen", NOW + 2).await.unwrap(),
        unlocked(2)
    );
    let locked_until = NOW + 3 + LOCK;
    assert_eq!(
        fail(store, "zju2-chen", NOW + 3).await.unwrap(),
        FailureOutcome {
            failed_attempts: 0,
            locked_until: Some(locked_until),
        }
    );
    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (0, Some(locked_until))
    );

    // A failure while locked is counted and leaves the lock as it is.
    assert_eq!(
        fail(store, "zju2-chen", NOW + 4).await.unwrap(),
        FailureOutcome {
            failed_attempts: 1,
            locked_until: Some(locked_until),
        }
    );

    // Once the lock has expired it is no longer reported, and the next failure drops it.
    assert_eq!(
        fail(store, "zju2-chen", locked_until).await.unwrap(),
        unlocked(2)
    );
    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (2, None)
    );
    assert_eq!(
        appended(store, &before).await,
        ["account.sign_in"; 5].map(String::from)
    );
    // The other user's account is not touched.
    assert_eq!(store.credential(&user_id("zju2-wang")).await.unwrap(), None);
}

pub async fn concurrent_failures_are_all_counted(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    set_password(store.as_ref(), "zju2-chen", "hash", NOW).await;
    let before = audit_log(store.as_ref()).await;
    const FAILURES: i64 = 20;

    let tasks: Vec<_> = (0..FAILURES)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { fail(store.as_ref(), "zju2-chen", NOW + n).await })
        })
        .collect();
    let mut locks = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().failed_attempts == 0 {
            locks += 1;
        }
    }

    // 20 failures with a limit of 3: six locks, and two failures counted since.
    assert_eq!(locks, 6);
    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.failed_attempts, 2);
    assert!(credential.locked_until.is_some());
    assert_eq!(
        appended(store.as_ref(), &before).await.len(),
        FAILURES as usize
    );
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn a_new_password_clears_the_lock(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    set_password(store, "zju2-chen", "hash", NOW).await;
    for n in 0..LIMIT + 1 {
        fail(store, "zju2-chen", NOW + i64::from(n)).await.unwrap();
    }
    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.failed_attempts, 1);
    assert!(credential.locked_until.is_some());

    set_password(store, "zju2-chen", "new-hash", NOW + MINUTE).await;

    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.password_hash, "new-hash");
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (0, None)
    );
}

pub async fn a_web_session_clears_failures_and_an_expired_lock(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    set_password(store, "zju2-chen", "hash", NOW).await;
    for n in 0..LIMIT + 1 {
        fail(store, "zju2-chen", NOW + i64::from(n)).await.unwrap();
    }
    let before = audit_log(store).await;

    let after_the_lock = NOW + 10 + LOCK;
    store
        .start_web_session(
            &session(1, "zju2-chen", after_the_lock),
            entry("account.sign_in", "user:zju2-chen"),
        )
        .await
        .unwrap();

    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.password_hash, "hash");
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (0, None)
    );
    assert_eq!(appended(store, &before).await, ["account.sign_in"]);
}

pub async fn a_web_session_reads_back_as_stored(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let before = audit_log(store).await;
    let stored = session(0xfeed, "zju2-wang", NOW);

    // A user without a password can have a session too (the store does not judge how
    // they signed in).
    store
        .start_web_session(&stored, entry("account.sign_in", "user:zju2-wang"))
        .await
        .unwrap();

    assert_eq!(
        store.web_session(&stored.id).await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .web_session(&format!("{:032x}", 0xbeef))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.credential(&user_id("zju2-wang")).await.unwrap(), None);
    assert_eq!(appended(store, &before).await, ["account.sign_in"]);

    let before = audit_log(store).await;
    let error = store
        .start_web_session(
            &session(0xfeed, "zju2-chen", NOW + 1),
            entry("account.sign_in", "user:zju2-chen"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { entity: "web session", id } if *id == stored.id),
        "{error:?}"
    );
    let error = store
        .start_web_session(
            &session(0xf00d, "zju2-nobody", NOW + 1),
            entry("account.sign_in", "user:zju2-nobody"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "user", .. }),
        "{error:?}"
    );
    assert_eq!(store.web_session(&stored.id).await.unwrap(), Some(stored));
    assert_eq!(
        store
            .web_session(&format!("{:032x}", 0xf00d))
            .await
            .unwrap(),
        None
    );
    assert!(appended(store, &before).await.is_empty());
}

pub async fn a_web_session_ends_once(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let started = session(7, "zju2-chen", NOW);
    store
        .start_web_session(&started, entry("account.sign_in", "user:zju2-chen"))
        .await
        .unwrap();
    let before = audit_log(store).await;
    let sign_out = || entry("account.sign_out", "user:zju2-chen");

    assert!(
        store
            .end_web_session(&started.id, NOW + HOUR, sign_out())
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_web_session(&started.id, NOW + 2 * HOUR, sign_out())
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_web_session(&format!("{:032x}", 8), NOW + HOUR, sign_out())
            .await
            .unwrap()
    );

    assert_eq!(
        store.web_session(&started.id).await.unwrap(),
        Some(WebSession {
            ended_at: Some(NOW + HOUR),
            ..started
        })
    );
    assert_eq!(appended(store, &before).await, ["account.sign_out"]);
}

pub async fn an_enrollment_is_created_once(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let before = audit_log(store).await;
    let created = enrollment(1, "zju2-chen");

    create_enrollment(store, &created).await;
    assert_eq!(
        store.enrollment(&created.token_hash).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.enrollment(&token_hash(2)).await.unwrap(), None);
    assert_eq!(
        appended(store, &before).await,
        ["account.create_enrollment"]
    );

    let before = audit_log(store).await;
    let error = store
        .create_enrollment(
            &enrollment(1, "zju2-wang"),
            entry("account.create_enrollment", "user:zju2-wang"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::AlreadyExists { entity: "enrollment", id } if *id == created.token_hash),
        "{error:?}"
    );
    let error = store
        .create_enrollment(
            &enrollment(3, "zju2-nobody"),
            entry("account.create_enrollment", "user:zju2-nobody"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotFound { entity: "user", .. }),
        "{error:?}"
    );
    assert_eq!(
        store.enrollment(&created.token_hash).await.unwrap(),
        Some(created)
    );
    assert_eq!(store.enrollment(&token_hash(3)).await.unwrap(), None);
    assert!(appended(store, &before).await.is_empty());
}

pub async fn an_enrollment_sets_the_password_and_starts_a_session(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    // An old password with a lock on it: enrolling replaces both.
    set_password(store, "zju2-chen", "old-hash", NOW).await;
    for n in 0..LIMIT {
        fail(store, "zju2-chen", NOW + i64::from(n)).await.unwrap();
    }
    let created = enrollment(1, "zju2-chen");
    create_enrollment(store, &created).await;
    let before = audit_log(store).await;
    let now = NOW + HOUR;
    let started = session(42, "zju2-chen", now);

    store
        .enroll(
            &created.token_hash,
            "new-hash",
            &started,
            entry("account.enroll", "user:zju2-chen"),
        )
        .await
        .unwrap();

    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.password_hash, "new-hash");
    assert_eq!(
        (credential.failed_attempts, credential.locked_until),
        (0, None)
    );
    assert_eq!(credential.updated_at, now);
    assert_eq!(
        store.enrollment(&created.token_hash).await.unwrap(),
        Some(Enrollment {
            used_at: Some(now),
            ..created
        })
    );
    assert_eq!(store.web_session(&started.id).await.unwrap(), Some(started));
    assert_eq!(appended(store, &before).await, ["account.enroll"]);
}

pub async fn an_unusable_enrollment_is_refused_and_changes_nothing(backend: &impl Backend) {
    let store = backend.store().await.as_ref();
    seed(store).await;
    let used = enrollment(1, "zju2-chen");
    create_enrollment(store, &used).await;
    store
        .enroll(
            &used.token_hash,
            "first-hash",
            &session(1, "zju2-chen", NOW + MINUTE),
            entry("account.enroll", "user:zju2-chen"),
        )
        .await
        .unwrap();
    let expired = Enrollment {
        expires_at: NOW + HOUR,
        ..enrollment(2, "zju2-wang")
    };
    create_enrollment(store, &expired).await;
    let valid = enrollment(3, "zju2-wang");
    create_enrollment(store, &valid).await;
    let before = audit_log(store).await;
    let chen_before = store.credential(&user_id("zju2-chen")).await.unwrap();

    let attempts = [
        (
            "unknown token",
            token_hash(9),
            session(10, "zju2-wang", NOW + MINUTE),
        ),
        (
            "used token",
            used.token_hash.clone(),
            session(11, "zju2-chen", NOW + 2 * MINUTE),
        ),
        // Expired exactly when the session would start.
        (
            "expired token",
            expired.token_hash.clone(),
            session(12, "zju2-wang", NOW + HOUR),
        ),
        (
            "another user's token",
            valid.token_hash.clone(),
            session(13, "zju2-chen", NOW + MINUTE),
        ),
    ];
    for (case, token, attempt) in &attempts {
        let error = store
            .enroll(
                token,
                "other-hash",
                attempt,
                entry("account.enroll", &format!("user:{}", attempt.user)),
            )
            .await
            .unwrap_err();
        match *case {
            "unknown token" => assert!(
                matches!(&error, StoreError::NotFound { entity: "enrollment", id } if id == token),
                "{case}: {error:?}"
            ),
            _ => assert!(
                matches!(error, StoreError::Conflict(_)),
                "{case}: {error:?}"
            ),
        }
        assert_eq!(
            store.web_session(&attempt.id).await.unwrap(),
            None,
            "{case}"
        );
    }

    assert_eq!(
        store.credential(&user_id("zju2-chen")).await.unwrap(),
        chen_before
    );
    assert_eq!(store.credential(&user_id("zju2-wang")).await.unwrap(), None);
    assert_eq!(
        store.enrollment(&expired.token_hash).await.unwrap(),
        Some(expired)
    );
    assert_eq!(
        store.enrollment(&valid.token_hash).await.unwrap(),
        Some(valid)
    );
    assert!(appended(store, &before).await.is_empty());
}

pub async fn concurrent_enrollments_with_one_token_have_one_winner(backend: &impl Backend) {
    let store = backend.store().await;
    seed(store.as_ref()).await;
    let created = enrollment(1, "zju2-chen");
    create_enrollment(store.as_ref(), &created).await;
    let before = audit_log(store.as_ref()).await;
    const ATTEMPTS: u128 = 10;

    let tasks: Vec<_> = (0..ATTEMPTS)
        .map(|n| {
            let store = store.clone();
            let token = created.token_hash.clone();
            tokio::spawn(async move {
                let started = session(100 + n, "zju2-chen", NOW + MINUTE);
                let outcome = store
                    .enroll(
                        &token,
                        &format!("hash-{n}"),
                        &started,
                        entry("account.enroll", "user:zju2-chen"),
                    )
                    .await;
                (n, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (n, Ok(())) => winners.push(n),
            (_, Err(StoreError::Conflict(_))) => {}
            (_, Err(other)) => panic!("unexpected error {other:?}"),
        }
    }

    let [winner] = winners[..] else {
        panic!("one enrollment should succeed, not {winners:?}");
    };
    let credential = store
        .credential(&user_id("zju2-chen"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.password_hash, format!("hash-{winner}"));
    for n in 0..ATTEMPTS {
        let stored = store
            .web_session(&session(100 + n, "zju2-chen", NOW).id)
            .await
            .unwrap();
        assert_eq!(stored.is_some(), n == winner, "session of attempt {n}");
    }
    assert_eq!(
        store
            .enrollment(&created.token_hash)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(NOW + MINUTE)
    );
    assert_eq!(appended(store.as_ref(), &before).await, ["account.enroll"]);
    assert!(store.verify_audit().await.unwrap().is_intact());
}
