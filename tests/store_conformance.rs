//! The store conformance suite: every test runs against every backend, each on a fresh
//! database, so that SQLite and PostgreSQL behave alike behind `Store`.
//!
//! The PostgreSQL tests need a server: set `TELECONSULT_TEST_DATABASE_URL`, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; each test creates its own database
//! there. Without it they are skipped. Set `TEST_LOG` to see the stores' logs.

#[path = "store_conformance/accounts.rs"]
mod accounts;
#[path = "store_conformance/audit.rs"]
mod audit;
#[path = "store_conformance/backends.rs"]
mod backends;
#[path = "store_conformance/directory.rs"]
mod directory;
#[path = "store_conformance/fixtures.rs"]
mod fixtures;
#[path = "store_conformance/scheduling.rs"]
mod scheduling;
#[path = "store_conformance/search.rs"]
mod search;

use backends::Backend;

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Runs `test` on a fresh store of `B`, unless `B` is not available here.
async fn run<B: Backend, F: AsyncFnOnce(&B)>(test: F) {
    init_logging();
    let Some(backend) = B::start().await else {
        return;
    };
    test(&backend).await;
    backend.finish().await;
}

/// Generates, in a module named after the backend, one test per suite function, and
/// one for each function listed after `also`.
macro_rules! store_suite {
    ($backend:ident, $harness:ty $(, also: [$($also:tt)*])?) => {
        mod $backend {
            store_suite!(@tests $harness;
                directory::institutions_are_created_listed_and_filtered,
                directory::a_duplicate_institution_is_refused_and_leaves_no_trace,
                directory::users_are_checked_before_they_are_created,
                directory::users_and_institutions_are_updated,
                directory::users_are_filtered,
                directory::a_specialist_profile_is_set_and_replaced,
                directory::only_active_doctors_get_a_specialist_profile,
                directory::a_directory_import_is_idempotent,
                directory::a_failed_import_changes_nothing,
                search::specialists_are_found_by_specialty_institution_language_and_name,
                search::search_pages_cover_every_specialist_once,
                audit::every_change_appends_one_audit_record,
                audit::concurrent_writers_keep_the_chain_contiguous,
                audit::concurrent_duplicates_have_one_winner,
                audit::audit_records_round_trip_exactly,
                audit::the_audit_log_refuses_changes_in_the_database,
                audit::tampering_is_detected,
                audit::nodes_opening_a_migrated_database_at_once_share_it,
                audit::nodes_opening_a_new_database_at_once_migrate_it_once,
                scheduling::availability_round_trips_and_is_replaced,
                scheduling::a_consultation_reads_back_as_stored,
                scheduling::a_slot_is_booked_once,
                scheduling::concurrent_bookings_of_one_slot_have_one_winner,
                scheduling::a_change_to_a_stale_version_is_refused,
                scheduling::concurrent_changes_of_one_version_have_one_winner,
                scheduling::cancelling_releases_the_slot,
                scheduling::rescheduling_moves_the_claim,
                scheduling::concurrent_swaps_of_two_slots_are_both_refused,
                scheduling::claimed_quanta_are_those_in_the_range,
                scheduling::listings_show_each_caller_their_consultations,
                scheduling::listings_filter_by_state_and_start,
                scheduling::pages_cover_every_consultation_once,
                scheduling::unanswered_and_missed_consultations_are_found,
                scheduling::opinions_are_drafted_signed_and_corrected,
                scheduling::concurrent_drafting_signing_and_changes_never_deadlock,
                accounts::a_password_needs_an_existing_user,
                accounts::a_password_is_set_and_replaced,
                accounts::failures_lock_the_account_at_the_limit_until_the_lock_expires,
                accounts::concurrent_failures_are_all_counted,
                accounts::a_new_password_clears_the_lock,
                accounts::a_web_session_clears_failures_and_an_expired_lock,
                accounts::a_web_session_reads_back_as_stored,
                accounts::a_web_session_ends_once,
                accounts::an_enrollment_is_created_once,
                accounts::an_enrollment_sets_the_password_and_starts_a_session,
                accounts::an_unusable_enrollment_is_refused_and_changes_nothing,
                accounts::concurrent_enrollments_with_one_token_have_one_winner,
            );
            $(store_suite!(@tests $harness; $($also)*);)?
        }
    };
    (@tests $harness:ty; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                crate::run::<$harness, _>(async |backend| crate::$module::$test(backend).await)
                    .await;
            }
        )*
    };
}

store_suite!(sqlite, crate::backends::Sqlite);
store_suite!(postgres, crate::backends::Postgres);

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_postgres_server_is_unavailable() {
    let error = teleconsult::store::open("postgres://postgres@127.0.0.1:1/teleconsult")
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(
        matches!(error, teleconsult::store::StoreError::Unavailable(_)),
        "{error:?}"
    );
}
