//! Local hours become UTC slots: Nagqu and Hangzhou keep UTC+8 all year, so 09:00 on a
//! Monday is 01:00Z on that Monday in every week, including the weeks in which Europe
//! and North America change their clocks, across local midnight and across the end of
//! the week.

use time::macros::time;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, Weekday};
use tonic::Code;

use super::{
    CHEN, DAWA, UTC_PLUS_8, ZHOU, ZJU2, free_starts, instant, interval, local, monday_ahead,
    publish, refused, search, ts, usual_week,
};
use crate::helpers::TestApp;
use teleconsult::proto::v1 as pb;

fn utc(date: Date, at: Time) -> OffsetDateTime {
    PrimitiveDateTime::new(date, at).assume_utc()
}

/// The `n`th Sunday (from 1) of a month, or the last one for `n = 0`.
fn sunday(year: i32, month: Month, n: u8) -> Date {
    let first = Date::from_calendar_date(year, month, 1).unwrap();
    let sundays: Vec<Date> = (0..31)
        .map(|d| first + Duration::days(d))
        .filter(|d| d.month() == month && d.weekday() == Weekday::Sunday)
        .collect();
    if n == 0 {
        *sundays.last().unwrap()
    } else {
        sundays[usize::from(n - 1)]
    }
}

/// The slots [`usual_week`] should yield in `[from, to)`, worked out day by day on the
/// local clock.
fn expected_starts(from: OffsetDateTime, to: OffsetDateTime) -> Vec<OffsetDateTime> {
    let mut starts = Vec::new();
    let mut day = from.to_offset(UTC_PLUS_8).date() - Duration::days(1);
    while local(day, 0, 0) < to {
        match day.weekday() {
            Weekday::Monday => {
                starts.extend((0..6).map(|i| local(day, 9, 0) + Duration::minutes(30 * i)));
            }
            Weekday::Sunday => {
                starts.extend((0..6).map(|i| local(day, 22, 0) + Duration::minutes(30 * i)));
            }
            _ => {}
        }
        day = day.next_day().unwrap();
    }
    starts.retain(|&start| from <= start && start + Duration::minutes(30) <= to);
    starts.sort();
    starts
}

#[tokio::test]
async fn local_hours_are_eight_hours_ahead_of_utc_whenever_other_zones_change_their_clocks() {
    let app = TestApp::spawn().await;
    publish(&app, CHEN, usual_week(), false).await;
    let year = OffsetDateTime::now_utc().year() + 1;
    let ranges = [
        // North America springs forward on the second Sunday of March, Europe on the
        // last.
        utc(
            Date::from_calendar_date(year, Month::March, 1).unwrap(),
            Time::MIDNIGHT,
        ),
        // Europe falls back on the last Sunday of October, North America on the first
        // Sunday of November.
        utc(
            Date::from_calendar_date(year, Month::October, 18).unwrap(),
            Time::MIDNIGHT,
        ),
    ];
    for from in ranges {
        let to = from + Duration::days(30);
        let slots = search(&app, CHEN, from, to).await;
        let starts: Vec<_> = slots.iter().map(|s| instant(s.start.as_ref())).collect();
        assert_eq!(starts, expected_starts(from, to), "from {from}");
        for slot in &slots {
            assert_eq!(slot.institution_id, ZJU2);
            assert_eq!(
                instant(slot.end.as_ref()) - instant(slot.start.as_ref()),
                Duration::minutes(30)
            );
        }
        // Every Monday morning at 01:00Z and every Sunday night at 14:00Z, written out
        // in UTC rather than converted.
        for start in &starts {
            let clock = (start.weekday(), start.hour(), start.minute());
            assert!(
                matches!(
                    clock,
                    (Weekday::Monday, 1..=3, 0 | 30) | (Weekday::Sunday, 14..=16, 0 | 30)
                ),
                "{start} is not a usual hour"
            );
        }
    }

    // The weeks in which other zones shift are no different.
    for sunday in [
        sunday(year, Month::March, 2),
        sunday(year, Month::March, 0),
        sunday(year, Month::October, 0),
        sunday(year, Month::November, 1),
    ] {
        let monday = sunday.next_day().unwrap();
        let starts = free_starts(
            &app,
            CHEN,
            utc(sunday, Time::MIDNIGHT),
            utc(monday, time!(12:00)),
        )
        .await;
        assert_eq!(starts.first(), Some(&utc(sunday, time!(14:00))), "{sunday}");
        assert!(starts.contains(&utc(monday, time!(01:00))), "{monday}");
        assert_eq!(starts.last(), Some(&utc(monday, time!(03:30))), "{monday}");
        assert_eq!(starts.len(), 12, "{sunday}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_night_clinic_runs_across_local_midnight_into_the_next_week() {
    let app = TestApp::spawn().await;
    publish(&app, CHEN, usual_week(), false).await;
    let year = OffsetDateTime::now_utc().year() + 1;
    let sunday = sunday(year, Month::March, 0);
    let monday = sunday.next_day().unwrap();
    let starts = free_starts(
        &app,
        CHEN,
        utc(sunday, Time::MIDNIGHT),
        utc(monday, Time::MIDNIGHT) + Duration::days(1),
    )
    .await;
    let expected: Vec<_> = [
        // Sunday 22:00 to Monday 01:00 local is Sunday 14:00–17:00Z.
        utc(sunday, time!(14:00)),
        utc(sunday, time!(14:30)),
        utc(sunday, time!(15:00)),
        utc(sunday, time!(15:30)),
        utc(sunday, time!(16:00)),
        utc(sunday, time!(16:30)),
        // Monday 09:00–12:00 local is Monday 01:00–04:00Z.
        utc(monday, time!(01:00)),
        utc(monday, time!(01:30)),
        utc(monday, time!(02:00)),
        utc(monday, time!(02:30)),
        utc(monday, time!(03:00)),
        utc(monday, time!(03:30)),
    ]
    .into();
    assert_eq!(starts, expected);

    // The last two slots of the night clinic are already Monday, and the next ISO
    // week, in Nagqu.
    let local_days: Vec<_> = starts[..6]
        .iter()
        .map(|s| {
            let local = s.to_offset(UTC_PLUS_8);
            (local.weekday(), local.iso_week(), local.hour())
        })
        .collect();
    let week = sunday.iso_week();
    assert_eq!(
        local_days,
        [
            (Weekday::Sunday, week, 22),
            (Weekday::Sunday, week, 22),
            (Weekday::Sunday, week, 23),
            (Weekday::Sunday, week, 23),
            (Weekday::Monday, monday.iso_week(), 0),
            (Weekday::Monday, monday.iso_week(), 0),
        ]
    );
    assert_ne!(week, monday.iso_week());

    // A night slot after midnight is booked like any other.
    let booked = super::book(
        &app,
        DAWA,
        super::booking(super::slot(CHEN, utc(sunday, time!(16:30)))),
    )
    .await;
    assert_eq!(instant(booked.start.as_ref()), utc(sunday, time!(16:30)));
    assert_eq!(instant(booked.end.as_ref()), utc(sunday, time!(17:00)));
    app.stop().await;
}

#[tokio::test]
async fn slots_that_have_begun_are_not_offered() {
    let app = TestApp::spawn().await;
    let every_day = (1..=7).map(|day| interval(day, 0, 24 * 60)).collect();
    publish(&app, ZHOU, every_day, false).await;
    let before = OffsetDateTime::now_utc();
    let to = before + Duration::days(1);
    let starts = free_starts(&app, ZHOU, before - Duration::days(2), to).await;
    let after = OffsetDateTime::now_utc();

    assert!(starts.iter().all(|&s| s >= before), "{starts:?}");
    assert!(starts[0] < after + Duration::minutes(30), "{starts:?}");
    assert!((47..=48).contains(&starts.len()), "{}", starts.len());
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::minutes(30));
    }
    assert!(
        starts
            .iter()
            .all(|s| s.minute() % 30 == 0 && s.second() == 0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_search_spans_at_most_31_days() {
    let app = TestApp::spawn().await;
    publish(&app, CHEN, usual_week(), false).await;
    let from = local(monday_ahead(0), 0, 0);
    let mut client = app.scheduling_as(DAWA);
    let request = |to: OffsetDateTime| pb::SearchSlotsRequest {
        from: Some(ts(from)),
        to: Some(ts(to)),
        ..Default::default()
    };

    let status = refused(
        client
            .search_slots(request(from + Duration::days(32)))
            .await,
        Code::InvalidArgument,
        "31 days",
    );
    assert!(status.message().starts_with("to:"), "{status:?}");
    let status = refused(
        client
            .search_slots(request(from - Duration::hours(1)))
            .await,
        Code::InvalidArgument,
        "",
    );
    assert!(status.message().starts_with("to:"), "{status:?}");

    let month = client
        .search_slots(request(from + Duration::days(31)))
        .await
        .unwrap()
        .into_inner();
    // Five Mondays and four Sundays: 54 slots, of which the first page holds 50.
    assert_eq!(month.slots.len(), 50);
    assert!(!month.next_page_token.is_empty());

    refused(
        client
            .search_slots(pb::SearchSlotsRequest {
                page: Some(pb::PageRequest {
                    page_size: 10,
                    page_token: "not-a-token".into(),
                }),
                ..request(from + Duration::days(7))
            })
            .await,
        Code::InvalidArgument,
        "page.page_token",
    );
    app.stop().await;
}
