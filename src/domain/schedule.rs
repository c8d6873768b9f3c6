//! Availability and slots. Doctors publish weekly hours in Asia/Shanghai local time
//! (the time Tibet uses too); the broker stores and compares instants in UTC.
//!
//! China has kept UTC+8 all year since 1991, so local time is a fixed offset and no
//! time-zone database is needed: a weekly interval maps to the same UTC hours every
//! week, including across local midnight.

use std::fmt;

use time::{Duration, OffsetDateTime, UtcOffset, Weekday};

use super::InvalidValue;
use super::directory::SlotMinutes;
use super::ids::UserId;

/// Asia/Shanghai: UTC+8, no daylight saving time.
pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+8 is a valid offset"),
};

/// Bookings are claimed in quanta of this many minutes (see `SlotMinutes`).
pub const QUANTUM_MINUTES: i64 = 5;

const MINUTES_PER_DAY: u32 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY;

/// A span of time: `start < end`, both UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl Window {
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Result<Self, InvalidValue> {
        if start >= end {
            return Err(InvalidValue::new("the end must be after the start"));
        }
        Ok(Self {
            start: start.to_offset(UtcOffset::UTC),
            end: end.to_offset(UtcOffset::UTC),
        })
    }

    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }

    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, instant: OffsetDateTime) -> bool {
        self.start <= instant && instant < self.end
    }

    /// The start of every booking quantum the window covers. A window on the quantum
    /// grid (as every slot is) is covered exactly.
    pub fn quanta(&self) -> Vec<OffsetDateTime> {
        let step = Duration::minutes(QUANTUM_MINUTES);
        let mut at = floor_to_quantum(self.start);
        let mut quanta = Vec::new();
        while at < self.end {
            quanta.push(at);
            at += step;
        }
        quanta
    }
}

/// `2026-11-30 09:00`: the minute `at` falls in, in Asia/Shanghai time.
pub fn local_minute(at: OffsetDateTime) -> String {
    let at = at.to_offset(SHANGHAI);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute()
    )
}

impl fmt::Display for Window {
    /// In Asia/Shanghai time, as people in the clinics read it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.start.to_offset(SHANGHAI);
        let end = self.end.to_offset(SHANGHAI);
        write!(f, "{}–", local_minute(self.start))?;
        if end.date() != start.date() {
            write!(
                f,
                "{:04}-{:02}-{:02} ",
                end.year(),
                end.month() as u8,
                end.day()
            )?;
        }
        write!(f, "{:02}:{:02} (UTC+8)", end.hour(), end.minute())
    }
}

fn floor_to_quantum(at: OffsetDateTime) -> OffsetDateTime {
    let seconds = at.unix_timestamp();
    let quantum = QUANTUM_MINUTES * 60;
    OffsetDateTime::from_unix_timestamp(seconds - seconds.rem_euclid(quantum))
        .expect("flooring stays in range")
}

/// Weekly recurring hours in Asia/Shanghai local time: on `weekday`, from
/// `start_minute` to `end_minute` after local midnight. `end_minute` may pass 1440 to
/// run past midnight (a night clinic 20:00–02:00 is 1200–1560).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyInterval {
    weekday: Weekday,
    start_minute: u32,
    end_minute: u32,
}

impl WeeklyInterval {
    /// `weekday` is ISO: 1 = Monday … 7 = Sunday. Minutes are multiples of 5.
    pub fn new(weekday: u32, start_minute: u32, end_minute: u32) -> Result<Self, InvalidValue> {
        let weekday = match weekday {
            1 => Weekday::Monday,
            2 => Weekday::Tuesday,
            3 => Weekday::Wednesday,
            4 => Weekday::Thursday,
            5 => Weekday::Friday,
            6 => Weekday::Saturday,
            7 => Weekday::Sunday,
            _ => {
                return Err(InvalidValue::new(
                    "weekday must be 1 (Monday) to 7 (Sunday)",
                ));
            }
        };
        if start_minute >= MINUTES_PER_DAY {
            return Err(InvalidValue::new("start_minute must be below 1440"));
        }
        if end_minute <= start_minute {
            return Err(InvalidValue::new("end_minute must be after start_minute"));
        }
        if end_minute - start_minute > MINUTES_PER_DAY {
            return Err(InvalidValue::new("an interval may last at most 24 hours"));
        }
        if start_minute % 5 != 0 || end_minute % 5 != 0 {
            return Err(InvalidValue::new("minutes must be multiples of 5"));
        }
        Ok(Self {
            weekday,
            start_minute,
            end_minute,
        })
    }

    pub fn weekday(&self) -> u32 {
        u32::from(self.weekday.number_from_monday())
    }

    pub fn start_minute(&self) -> u32 {
        self.start_minute
    }

    pub fn end_minute(&self) -> u32 {
        self.end_minute
    }

    /// Minutes from Monday 00:00 local time, as a half-open range that may wrap.
    fn week_minutes(&self) -> (u32, u32) {
        let day = u32::from(self.weekday.number_days_from_monday()) * MINUTES_PER_DAY;
        (day + self.start_minute, day + self.end_minute)
    }

    /// The interval's occurrence in the week starting at local Monday `monday`.
    fn occurrence(&self, monday: OffsetDateTime) -> Window {
        let (start, end) = self.week_minutes();
        Window::new(
            monday + Duration::minutes(i64::from(start)),
            monday + Duration::minutes(i64::from(end)),
        )
        .expect("start is before end")
    }
}

impl fmt::Display for WeeklyInterval {
    /// e.g. `Mon 09:00-12:00` or `Sun 22:00-01:00+1` (local time).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            [self.weekday.number_days_from_monday() as usize];
        let clock = |minute: u32| format!("{:02}:{:02}", (minute / 60) % 24, minute % 60);
        write!(
            f,
            "{day} {}-{}",
            clock(self.start_minute),
            clock(self.end_minute)
        )?;
        if self.end_minute > MINUTES_PER_DAY {
            f.write_str("+1")?;
        }
        Ok(())
    }
}

/// A period in which a doctor is not available (leave, holidays), UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityException {
    pub window: Window,
    pub reason: String,
}

/// A doctor's published availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub doctor: UserId,
    weekly: Vec<WeeklyInterval>,
    exceptions: Vec<AvailabilityException>,
    /// Bookings are accepted without the doctor's confirmation.
    pub auto_accept: bool,
}

impl Availability {
    pub const MAX_INTERVALS: usize = 100;
    pub const MAX_EXCEPTIONS: usize = 500;

    /// Weekly intervals must not overlap one another, counting those that run past
    /// midnight into the next day (and Sunday night into Monday).
    pub fn new(
        doctor: UserId,
        mut weekly: Vec<WeeklyInterval>,
        mut exceptions: Vec<AvailabilityException>,
        auto_accept: bool,
    ) -> Result<Self, (String, InvalidValue)> {
        if weekly.len() > Self::MAX_INTERVALS {
            return Err((
                "weekly".to_owned(),
                InvalidValue(format!("at most {} intervals", Self::MAX_INTERVALS)),
            ));
        }
        if exceptions.len() > Self::MAX_EXCEPTIONS {
            return Err((
                "exceptions".to_owned(),
                InvalidValue(format!("at most {} exceptions", Self::MAX_EXCEPTIONS)),
            ));
        }
        let spans: Vec<(u32, u32)> = weekly.iter().map(WeeklyInterval::week_minutes).collect();
        for (i, a) in spans.iter().enumerate() {
            for (j, b) in spans.iter().enumerate().skip(i + 1) {
                // Compare on the circle of the week: shift b by a week either way.
                let overlapping = [
                    0i64,
                    -i64::from(MINUTES_PER_WEEK),
                    i64::from(MINUTES_PER_WEEK),
                ]
                .iter()
                .any(|shift| {
                    let (b0, b1) = (i64::from(b.0) + shift, i64::from(b.1) + shift);
                    i64::from(a.0) < b1 && b0 < i64::from(a.1)
                });
                if overlapping {
                    return Err((
                        format!("weekly[{j}]"),
                        InvalidValue(format!("overlaps weekly[{i}]")),
                    ));
                }
            }
        }
        weekly.sort_by_key(|interval| interval.week_minutes());
        exceptions.sort_by_key(|exception| exception.window);
        Ok(Self {
            doctor,
            weekly,
            exceptions,
            auto_accept,
        })
    }

    pub fn weekly(&self) -> &[WeeklyInterval] {
        &self.weekly
    }

    pub fn exceptions(&self) -> &[AvailabilityException] {
        &self.exceptions
    }

    /// Every slot of `slot_minutes` offered in `range`: consecutive slots from the
    /// start of each weekly interval (a partial slot at its end is not offered), none
    /// overlapping an exception, each lying wholly inside `range`. Earliest first.
    pub fn slots(&self, slot_minutes: SlotMinutes, range: &Window) -> Vec<Window> {
        let length = Duration::minutes(i64::from(slot_minutes.get()));
        let mut slots = Vec::new();
        // Local Mondays from the week before `range` (an interval that started then
        // may run into it) to the week of its end.
        let mut monday = local_monday(range.start()) - Duration::weeks(1);
        while monday < range.end() {
            for interval in &self.weekly {
                let occurrence = interval.occurrence(monday);
                let mut start = occurrence.start();
                while start + length <= occurrence.end() {
                    let slot = Window::new(start, start + length).expect("positive length");
                    if range.start() <= slot.start()
                        && slot.end() <= range.end()
                        && !self.exceptions.iter().any(|e| e.window.overlaps(&slot))
                    {
                        slots.push(slot);
                    }
                    start += length;
                }
            }
            monday += Duration::weeks(1);
        }
        slots.sort();
        slots.dedup();
        slots
    }

    /// The offered slots in `range` none of whose quanta is in `claimed`.
    pub fn free_slots(
        &self,
        slot_minutes: SlotMinutes,
        range: &Window,
        claimed: &std::collections::HashSet<OffsetDateTime>,
    ) -> Vec<Window> {
        self.slots(slot_minutes, range)
            .into_iter()
            .filter(|slot| !slot.quanta().iter().any(|q| claimed.contains(q)))
            .collect()
    }

    /// Whether `slot` is one of the slots this availability offers.
    pub fn offers(&self, slot_minutes: SlotMinutes, slot: &Window) -> bool {
        self.slots(slot_minutes, slot).contains(slot)
    }
}

/// Local (UTC+8) Monday 00:00 of the week containing `instant`, as a UTC instant.
fn local_monday(instant: OffsetDateTime) -> OffsetDateTime {
    let local = instant.to_offset(SHANGHAI);
    let days = i64::from(local.weekday().number_days_from_monday());
    let midnight = local.replace_time(time::Time::MIDNIGHT);
    (midnight - Duration::days(days)).to_offset(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn doctor() -> UserId {
        UserId::parse("zju2-cardio-chen").unwrap()
    }

    fn window(start: OffsetDateTime, end: OffsetDateTime) -> Window {
        Window::new(start, end).unwrap()
    }

    #[test]
    fn local_hours_map_to_utc() {
        // Monday 09:00–10:00 in Hangzhou and Nagqu is 01:00–02:00 UTC.
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(1, 9 * 60, 10 * 60).unwrap()],
            vec![],
            false,
        )
        .unwrap();
        let week = window(
            datetime!(2026-11-30 00:00 UTC),
            datetime!(2026-12-07 00:00 UTC),
        );
        let slots = availability.slots(SlotMinutes::DEFAULT, &week);
        assert_eq!(
            slots,
            vec![
                window(
                    datetime!(2026-11-30 01:00 UTC),
                    datetime!(2026-11-30 01:30 UTC)
                ),
                window(
                    datetime!(2026-11-30 01:30 UTC),
                    datetime!(2026-11-30 02:00 UTC)
                ),
            ]
        );
        assert_eq!(slots[0].to_string(), "2026-11-30 09:00–09:30 (UTC+8)");
    }

    #[test]
    fn an_interval_across_local_midnight() {
        // Sunday 22:00 – Monday 01:00 local: 14:00–17:00 UTC on Sunday.
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(7, 22 * 60, 25 * 60).unwrap()],
            vec![],
            false,
        )
        .unwrap();
        let range = window(
            datetime!(2026-12-06 00:00 UTC),
            datetime!(2026-12-07 00:00 UTC),
        );
        let slots = availability.slots(SlotMinutes::parse(60).unwrap(), &range);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0].start(), datetime!(2026-12-06 14:00 UTC));
        assert_eq!(slots[2].end(), datetime!(2026-12-06 17:00 UTC));
        assert_eq!(slots[2].to_string(), "2026-12-07 00:00–01:00 (UTC+8)");
        assert_eq!(
            slots[1].to_string(),
            "2026-12-06 23:00–2026-12-07 00:00 (UTC+8)"
        );
    }

    #[test]
    fn a_sunday_night_interval_reaches_into_the_next_week() {
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(7, 23 * 60, 26 * 60).unwrap()],
            vec![],
            false,
        )
        .unwrap();
        // Local Monday 00:00–02:00 is Sunday 16:00–18:00 UTC.
        let range = window(
            datetime!(2026-12-06 16:00 UTC),
            datetime!(2026-12-06 18:00 UTC),
        );
        assert_eq!(
            availability
                .slots(SlotMinutes::parse(60).unwrap(), &range)
                .len(),
            2
        );
    }

    #[test]
    fn overlapping_intervals_are_refused_even_across_the_week_end() {
        let overlapping = Availability::new(
            doctor(),
            vec![
                WeeklyInterval::new(7, 22 * 60, 26 * 60).unwrap(),
                WeeklyInterval::new(1, 60, 120).unwrap(),
            ],
            vec![],
            false,
        );
        assert!(overlapping.is_err());
        let adjacent = Availability::new(
            doctor(),
            vec![
                WeeklyInterval::new(1, 8 * 60, 12 * 60).unwrap(),
                WeeklyInterval::new(1, 12 * 60, 13 * 60).unwrap(),
            ],
            vec![],
            false,
        );
        assert!(adjacent.is_ok());
    }

    #[test]
    fn exceptions_remove_slots() {
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(2, 14 * 60, 16 * 60).unwrap()],
            vec![AvailabilityException {
                window: window(
                    datetime!(2026-12-01 06:30 UTC),
                    datetime!(2026-12-01 07:00 UTC),
                ),
                reason: "ward round".into(),
            }],
            false,
        )
        .unwrap();
        let range = window(
            datetime!(2026-12-01 00:00 UTC),
            datetime!(2026-12-02 00:00 UTC),
        );
        let starts: Vec<_> = availability
            .slots(SlotMinutes::DEFAULT, &range)
            .iter()
            .map(|slot| slot.start())
            .collect();
        assert_eq!(
            starts,
            vec![
                datetime!(2026-12-01 06:00 UTC),
                datetime!(2026-12-01 07:00 UTC),
                datetime!(2026-12-01 07:30 UTC)
            ]
        );
    }

    #[test]
    fn offers_only_slots_on_the_grid() {
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(1, 9 * 60, 12 * 60).unwrap()],
            vec![],
            false,
        )
        .unwrap();
        let on_grid = window(
            datetime!(2026-11-30 01:30 UTC),
            datetime!(2026-11-30 02:00 UTC),
        );
        let off_grid = window(
            datetime!(2026-11-30 01:15 UTC),
            datetime!(2026-11-30 01:45 UTC),
        );
        let too_long = window(
            datetime!(2026-11-30 01:30 UTC),
            datetime!(2026-11-30 02:30 UTC),
        );
        assert!(availability.offers(SlotMinutes::DEFAULT, &on_grid));
        assert!(!availability.offers(SlotMinutes::DEFAULT, &off_grid));
        assert!(!availability.offers(SlotMinutes::DEFAULT, &too_long));
    }

    #[test]
    fn weekly_intervals_validate() {
        assert!(WeeklyInterval::new(0, 0, 60).is_err());
        assert!(WeeklyInterval::new(8, 0, 60).is_err());
        assert!(WeeklyInterval::new(1, 60, 60).is_err());
        assert!(WeeklyInterval::new(1, 1440, 1500).is_err());
        assert!(WeeklyInterval::new(1, 0, 1445).is_err());
        assert!(WeeklyInterval::new(1, 3, 60).is_err());
        assert!(WeeklyInterval::new(1, 1200, 2600).is_ok());
    }

    #[test]
    fn claimed_quanta_take_their_slots() {
        let availability = Availability::new(
            doctor(),
            vec![WeeklyInterval::new(1, 9 * 60, 11 * 60).unwrap()],
            vec![],
            false,
        )
        .unwrap();
        let range = window(
            datetime!(2026-11-30 00:00 UTC),
            datetime!(2026-12-01 00:00 UTC),
        );
        // A 45-minute booking made before the doctor moved to 30-minute slots covers
        // 01:30–02:15 UTC: it takes the 01:30 and 02:00 slots.
        let claimed = window(
            datetime!(2026-11-30 01:30 UTC),
            datetime!(2026-11-30 02:15 UTC),
        )
        .quanta()
        .into_iter()
        .collect();
        let free: Vec<_> = availability
            .free_slots(SlotMinutes::DEFAULT, &range, &claimed)
            .iter()
            .map(|s| s.start())
            .collect();
        assert_eq!(
            free,
            vec![
                datetime!(2026-11-30 01:00 UTC),
                datetime!(2026-11-30 02:30 UTC)
            ]
        );
    }

    #[test]
    fn quanta_cover_a_slot() {
        let slot = window(
            datetime!(2026-11-30 01:30 UTC),
            datetime!(2026-11-30 02:00 UTC),
        );
        let quanta = slot.quanta();
        assert_eq!(quanta.len(), 6);
        assert_eq!(quanta[0], datetime!(2026-11-30 01:30 UTC));
        assert_eq!(quanta[5], datetime!(2026-11-30 01:55 UTC));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Slots never overlap one another, lie on the quantum grid, have the
            /// specialist's length and are all offered.
            #[test]
            fn slots_are_disjoint_and_offered(
                intervals in proptest::collection::vec((1u32..=7, 0u32..288, 1u32..288), 0..6),
                slot in prop::sample::select(vec![10u32, 15, 20, 30, 45, 60]),
                offset_days in 0i64..30,
            ) {
                let weekly: Vec<_> = intervals
                    .iter()
                    .filter_map(|&(day, start, length)| WeeklyInterval::new(day, start * 5, start * 5 + length * 5).ok())
                    .collect();
                let Ok(availability) = Availability::new(doctor(), weekly, vec![], false) else {
                    return Ok(());
                };
                let from = datetime!(2026-11-01 00:00 UTC) + Duration::days(offset_days);
                let range = window(from, from + Duration::days(9));
                let minutes = SlotMinutes::parse(slot).unwrap();
                let slots = availability.slots(minutes, &range);
                for pair in slots.windows(2) {
                    prop_assert!(pair[0].end() <= pair[1].start());
                }
                for s in &slots {
                    prop_assert_eq!(s.duration(), Duration::minutes(i64::from(slot)));
                    prop_assert_eq!(s.start().unix_timestamp() % 300, 0);
                    prop_assert!(availability.offers(minutes, s));
                }
            }
        }
    }
}
