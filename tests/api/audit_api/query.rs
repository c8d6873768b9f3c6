//! `Query`: each filter selects exactly the stored records it describes, in either
//! order, and a page-by-page walk stays correct while records keep arriving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use teleconsult::audit::{AuditRecord, Outcome};
use teleconsult::proto::v1 as pb;
use tokio::sync::watch;
use tonic::Code;

use super::{assert_same, audit_as, belongs_to, history, parties, seqs, stored_seqs, walk};
use crate::helpers::TestApp;
use crate::scheduling::{BIRU_ADMIN, PLATFORM_ADMIN, ts};

on_both_backends!(
    each_filter_selects_exactly_the_matching_records,
    an_oldest_first_walk_neither_repeats_nor_skips_while_records_arrive,
    a_newest_first_walk_stays_below_where_it_began,
);

type Matches = Box<dyn Fn(&AuditRecord) -> bool>;

async fn each_filter_selects_exactly_the_matching_records(app: TestApp) {
    let consultation = history(&app).await;
    let target = format!("consultation:{}", consultation.id);
    let all = app.audit_records().await;
    let (from, to) = (all[all.len() / 3].entry.at, all[2 * all.len() / 3].entry.at);
    let consultations = parties(&app).await;
    let request = pb::QueryAuditRequest::default;
    let cases: Vec<(&str, pb::QueryAuditRequest, Matches)> = vec![
        (
            "time range",
            pb::QueryAuditRequest {
                from: Some(ts(from)),
                to: Some(ts(to)),
                ..request()
            },
            Box::new(move |r| r.entry.at >= from && r.entry.at < to),
        ),
        (
            "institution (inviting)",
            pb::QueryAuditRequest {
                institution_id: "biru-county-hospital".into(),
                ..request()
            },
            {
                let consultations = consultations.clone();
                Box::new(move |r| belongs_to(r, "biru-county-hospital", &consultations))
            },
        ),
        (
            "institution (consulting)",
            pb::QueryAuditRequest {
                institution_id: "zju2-hospital".into(),
                ..request()
            },
            {
                let consultations = consultations.clone();
                Box::new(move |r| belongs_to(r, "zju2-hospital", &consultations))
            },
        ),
        (
            "user",
            pb::QueryAuditRequest {
                user_id: BIRU_ADMIN.into(),
                ..request()
            },
            Box::new(|r| r.entry.actor.user == BIRU_ADMIN),
        ),
        (
            "role",
            pb::QueryAuditRequest {
                role: "clinic_staff".into(),
                ..request()
            },
            Box::new(|r| r.entry.actor.role == "clinic_staff"),
        ),
        (
            "consultation",
            pb::QueryAuditRequest {
                consultation_id: consultation.id.clone(),
                ..request()
            },
            {
                let target = target.clone();
                Box::new(move |r| r.entry.target == target)
            },
        ),
        (
            "action",
            pb::QueryAuditRequest {
                action: "directory.create_user".into(),
                ..request()
            },
            Box::new(|r| r.entry.action == "directory.create_user"),
        ),
        (
            "outcome denied",
            pb::QueryAuditRequest {
                outcome: pb::Outcome::Denied as i32,
                ..request()
            },
            Box::new(|r| r.entry.outcome == Outcome::Denied),
        ),
        (
            "outcome invalid",
            pb::QueryAuditRequest {
                outcome: pb::Outcome::Invalid as i32,
                ..request()
            },
            Box::new(|r| r.entry.outcome == Outcome::Invalid),
        ),
        (
            "consultation, denied, by clinic staff",
            pb::QueryAuditRequest {
                consultation_id: consultation.id.clone(),
                outcome: pb::Outcome::Denied as i32,
                role: "clinic_staff".into(),
                ..request()
            },
            {
                let target = target.clone();
                Box::new(move |r| {
                    r.entry.target == target
                        && r.entry.outcome == Outcome::Denied
                        && r.entry.actor.role == "clinic_staff"
                })
            },
        ),
    ];

    let mut admin = audit_as(&app, PLATFORM_ADMIN);
    for (name, request, matches) in cases {
        for newest_first in [false, true] {
            let stored = app.audit_records().await;
            let mut expected: Vec<&AuditRecord> = stored.iter().filter(|r| matches(r)).collect();
            if newest_first {
                expected.reverse();
            }
            assert!(!expected.is_empty(), "{name}: the history has such records");
            let request = pb::QueryAuditRequest {
                newest_first,
                ..request.clone()
            };
            let answered = walk(&mut admin, request, 3).await.unwrap();
            // An oldest-first walk also meets its own reads, which are recorded as it
            // goes (and an institution filter selects them); nothing else is new.
            let head = stored.last().unwrap().seq;
            let (old, new) = answered.split_at(expected.len().min(answered.len()));
            assert_eq!(
                seqs(old),
                expected.iter().map(|r| r.seq).collect::<Vec<_>>(),
                "{name}, newest first: {newest_first}"
            );
            for (answered, stored) in old.iter().zip(expected) {
                assert_same(answered, stored);
            }
            for record in new {
                assert!(
                    !newest_first
                        && record.seq > head
                        && record.action == "audit.query"
                        && record.actor_user_id == PLATFORM_ADMIN,
                    "{name}: {record:?}"
                );
            }
        }
    }
    app.stop().await;
}

/// The admin's directory changes run in a task of their own, from the moment the walk
/// has read its first page; after each further page the walk waits until at least one
/// more record has been appended, so that the two really interleave.
struct Writer {
    go: Option<tokio::sync::oneshot::Sender<()>>,
    appended: watch::Receiver<usize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Writer {
    fn new(app: &TestApp, admin: &str, institution: &str, prefix: &str) -> Writer {
        let (go, start) = tokio::sync::oneshot::channel();
        let (sender, appended) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let mut directory = app.directory_as(admin);
        let (institution, prefix, stopped) =
            (institution.to_owned(), prefix.to_owned(), stop.clone());
        let task = tokio::spawn(async move {
            if start.await.is_err() {
                return 0;
            }
            let mut count = 0;
            while !stopped.load(Ordering::Relaxed) && count < 400 {
                directory
                    .create_user(pb::CreateUserRequest {
                        user: Some(pb::User {
                            id: format!("{prefix}-{count}"),
                            institution_id: institution.clone(),
                            role: pb::Role::ClinicStaff as i32,
                            display_name_zh: "拉姆".into(),
                            display_name_en: format!("Lhamo {count}"),
                            active: true,
                        }),
                    })
                    .await
                    .expect("the admin's change goes through");
                count += 1;
                sender.send_replace(count);
            }
            count
        });
        Writer {
            go: Some(go),
            appended,
            stop,
            task,
        }
    }

    /// Starts writing (the first time) and waits until another record has been
    /// appended since the last call.
    async fn another(&mut self) {
        if let Some(go) = self.go.take() {
            go.send(()).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), self.appended.changed())
            .await
            .expect("the writer keeps appending")
            .expect("the writer is running");
        self.appended.borrow_and_update();
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.go);
        self.task.await.unwrap()
    }
}

/// Pages `request` page by page, letting the writer append between pages.
async fn walk_while_writing(
    client: &mut super::Client,
    mut request: pb::QueryAuditRequest,
    writer: &mut Writer,
) -> Vec<pb::AuditRecord> {
    let mut records = Vec::new();
    let mut token = String::new();
    loop {
        request.page = Some(pb::PageRequest {
            page_size: 7,
            page_token: token,
        });
        let page = client.query(request.clone()).await.unwrap().into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            return records;
        }
        token = page.next_page_token;
        writer.another().await;
    }
}

async fn an_oldest_first_walk_neither_repeats_nor_skips_while_records_arrive(app: TestApp) {
    history(&app).await;
    super::create_users(&app, BIRU_ADMIN, "biru-county-hospital", "early", 20).await;
    let consultations = parties(&app).await;

    // Everything, as the platform admin.
    let before = app.audit_records().await;
    let mut writer = Writer::new(&app, PLATFORM_ADMIN, "nagqu-peoples", "walk-a");
    let mut admin = audit_as(&app, PLATFORM_ADMIN);
    let walked =
        walk_while_writing(&mut admin, pb::QueryAuditRequest::default(), &mut writer).await;
    let written = writer.finish().await;
    assert!(written > 0, "the writer ran during the walk");
    let walked = seqs(&walked);
    assert!(
        walked.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {walked:?}"
    );
    assert_eq!(
        walked[..before.len()],
        stored_seqs(&before)[..],
        "every record that existed when the walk began, none skipped"
    );
    assert!(
        walked.windows(2).all(|w| w[1] == w[0] + 1),
        "the walk also took in what arrived meanwhile, without gaps: {walked:?}"
    );

    // One institution's records, as its admin, while another's admin keeps writing.
    let before = app.audit_records().await;
    let mut writer = Writer::new(&app, PLATFORM_ADMIN, "biru-county-hospital", "walk-b");
    let mut biru = audit_as(&app, BIRU_ADMIN);
    let walked = walk_while_writing(&mut biru, pb::QueryAuditRequest::default(), &mut writer).await;
    writer.finish().await;
    let walked = seqs(&walked);
    assert!(walked.windows(2).all(|w| w[0] < w[1]), "{walked:?}");
    let expected: Vec<u64> = before
        .iter()
        .filter(|r| belongs_to(r, "biru-county-hospital", &consultations))
        .map(|r| r.seq)
        .collect();
    assert_eq!(walked[..expected.len()], expected[..]);
    let head = before.last().unwrap().seq;
    let after: Vec<AuditRecord> = app
        .audit_records()
        .await
        .into_iter()
        .filter(|r| r.seq > head && r.seq <= *walked.last().unwrap())
        .filter(|r| belongs_to(r, "biru-county-hospital", &consultations))
        .collect();
    assert_eq!(
        walked[expected.len()..],
        stored_seqs(&after)[..],
        "what arrived meanwhile, in order and complete up to where the walk ended"
    );
    app.stop().await;
}

async fn a_newest_first_walk_stays_below_where_it_began(app: TestApp) {
    history(&app).await;
    super::create_users(&app, BIRU_ADMIN, "biru-county-hospital", "early", 20).await;
    let before = app.audit_records().await;
    let mut writer = Writer::new(&app, PLATFORM_ADMIN, "nagqu-peoples", "walk-c");
    let mut admin = audit_as(&app, PLATFORM_ADMIN);
    let request = pb::QueryAuditRequest {
        newest_first: true,
        ..Default::default()
    };
    let walked = walk_while_writing(&mut admin, request, &mut writer).await;
    writer.finish().await;
    let mut expected = stored_seqs(&before);
    expected.reverse();
    assert_eq!(
        seqs(&walked),
        expected,
        "from the newest record when the walk began down to the first, once each"
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_queries_name_the_field() {
    let app = TestApp::spawn().await;
    let mut admin = audit_as(&app, PLATFORM_ADMIN);
    let now = time::OffsetDateTime::now_utc();
    let cases = [
        (
            pb::QueryAuditRequest {
                from: Some(ts(now)),
                to: Some(ts(now - time::Duration::hours(1))),
                ..Default::default()
            },
            "to",
        ),
        (
            pb::QueryAuditRequest {
                consultation_id: "no such id!".into(),
                ..Default::default()
            },
            "consultation_id",
        ),
        (
            pb::QueryAuditRequest {
                role: "surgeon".into(),
                ..Default::default()
            },
            "role",
        ),
        (
            pb::QueryAuditRequest {
                outcome: 42,
                ..Default::default()
            },
            "outcome",
        ),
        (
            pb::QueryAuditRequest {
                page: Some(pb::PageRequest {
                    page_size: 10,
                    page_token: "yesterday".into(),
                }),
                ..Default::default()
            },
            "page.page_token",
        ),
    ];
    for (request, field) in cases {
        let status = admin.query(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{field}: {status:?}"
        );
    }
    let records = app.audit_records().await;
    let last = records.last().unwrap();
    assert_eq!(
        (last.entry.action.as_str(), last.entry.outcome),
        ("audit.query", Outcome::Invalid),
        "a malformed query is recorded as such"
    );
    app.stop().await;
}
