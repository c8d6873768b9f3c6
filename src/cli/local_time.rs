//! Times as people in the clinics read and type them: Asia/Shanghai (UTC+8, the time
//! Tibet uses too), while the wire carries UTC.

use anyhow::{Context, bail};
use prost_types::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use teleconsult::domain::schedule::{SHANGHAI, Window};

/// How the commands accept a local time, for help texts and messages.
pub const LOCAL_FORMAT: &str = "YYYY-MM-DDTHH:MM (Asia/Shanghai)";

/// Parses `2026-12-01T09:00` (or with a space instead of `T`) as Asia/Shanghai time, a
/// bare date as its local midnight, and an RFC 3339 time with an explicit offset as
/// given.
pub fn parse_local(text: &str) -> anyhow::Result<OffsetDateTime> {
    let text = text.trim();
    if let Ok(instant) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(instant);
    }
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let normalised = text.replacen(' ', "T", 1);
    if let Ok(local) = PrimitiveDateTime::parse(&normalised, minutes) {
        return Ok(local.assume_offset(SHANGHAI));
    }
    if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(date.with_time(Time::MIDNIGHT).assume_offset(SHANGHAI));
    }
    bail!("{text:?} is not a time: expected {LOCAL_FORMAT}, e.g. 2026-12-01T09:00")
}

/// The same, for clap's `value_parser`.
pub fn local_time_arg(text: &str) -> Result<OffsetDateTime, String> {
    parse_local(text).map_err(|e| e.to_string())
}

/// `2026-12-01T09:00`: the form the commands accept, for printing commands to run.
pub fn argument(instant: OffsetDateTime) -> String {
    let local = instant.to_offset(SHANGHAI);
    local
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]"))
        .expect("formatting a date never fails")
}

/// `2026-12-01 09:00 (UTC+8)`.
pub fn display(instant: OffsetDateTime) -> String {
    let local = instant.to_offset(SHANGHAI);
    let text = local
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .expect("formatting a date never fails");
    format!("{text} (UTC+8)")
}

pub fn to_timestamp(instant: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: instant.unix_timestamp(),
        nanos: instant.nanosecond() as i32,
    }
}

pub fn from_timestamp(timestamp: &Timestamp) -> anyhow::Result<OffsetDateTime> {
    let nanos = i128::from(timestamp.seconds) * 1_000_000_000 + i128::from(timestamp.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).context("a timestamp out of range")
}

/// `2026-12-01 09:00 (UTC+8)`, or `-` when unset.
pub fn display_timestamp(timestamp: Option<&Timestamp>) -> String {
    match timestamp.map(from_timestamp) {
        Some(Ok(instant)) => display(instant),
        Some(Err(_)) => "(invalid time)".to_owned(),
        None => "-".to_owned(),
    }
}

/// `2026-12-01 09:00–09:30 (UTC+8)`, with the end date when it falls on another day.
pub fn display_window(start: Option<&Timestamp>, end: Option<&Timestamp>) -> String {
    let (Some(start), Some(end)) = (start, end) else {
        return "-".to_owned();
    };
    match (from_timestamp(start), from_timestamp(end)) {
        (Ok(start), Ok(end)) => match Window::new(start, end) {
            Ok(window) => window.to_string(),
            Err(_) => format!("{} – {}", display(start), display(end)),
        },
        _ => "(invalid time)".to_owned(),
    }
}

/// RFC 3339 in UTC, as the JSON output carries times.
pub fn rfc3339(timestamp: Option<&Timestamp>) -> serde_json::Value {
    match timestamp.map(from_timestamp) {
        Some(Ok(instant)) => instant
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map(serde_json::Value::String)
            .unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// ISO weekday (1 = Monday) from `mon`, `Monday`, `1`.
pub fn parse_weekday(text: &str) -> anyhow::Result<u32> {
    let lower = text.to_ascii_lowercase();
    if let Ok(number) = lower.parse::<u32>()
        && (1..=7).contains(&number)
    {
        return Ok(number);
    }
    WEEKDAYS
        .iter()
        .position(|day| lower == *day || (lower.len() == 3 && day.starts_with(&lower)))
        .map(|index| index as u32 + 1)
        .with_context(|| format!("{text:?} is not a weekday (mon … sun)"))
}

pub fn weekday_name(weekday: u32) -> &'static str {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    weekday
        .checked_sub(1)
        .and_then(|i| NAMES.get(i as usize))
        .copied()
        .unwrap_or("?")
}

/// Minutes after midnight from `09:30`; `24:00` is the end of the day.
pub fn parse_clock(text: &str) -> anyhow::Result<u32> {
    let parsed = text.split_once(':').and_then(|(hours, minutes)| {
        if !(1..=2).contains(&hours.len()) || minutes.len() != 2 {
            return None;
        }
        let hours: u32 = hours.parse().ok()?;
        let minutes: u32 = minutes.parse().ok()?;
        let total = hours * 60 + minutes;
        (minutes < 60 && total <= 24 * 60).then_some(total)
    });
    parsed.with_context(|| format!("{text:?} is not a time of day (HH:MM)"))
}

/// `09:30` from minutes after midnight, wrapping past midnight.
pub fn clock(minutes: u32) -> String {
    let minutes = minutes % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn local_input_is_shanghai_time() {
        let expected = datetime!(2026-12-01 01:00 UTC);
        assert_eq!(parse_local("2026-12-01T09:00").unwrap(), expected);
        assert_eq!(parse_local("2026-12-01 09:00").unwrap(), expected);
        assert_eq!(parse_local("2026-12-01T01:00:00Z").unwrap(), expected);
        assert_eq!(
            parse_local("2026-12-01").unwrap(),
            datetime!(2026-11-30 16:00 UTC)
        );
        assert!(parse_local("01/12/2026 09:00").is_err());
        assert_eq!(argument(expected), "2026-12-01T09:00");
    }

    #[test]
    fn output_crosses_midnight_in_local_time() {
        // 23:30 UTC is 07:30 the next morning in Nagqu and Hangzhou.
        let late = to_timestamp(datetime!(2026-12-31 23:30 UTC));
        assert_eq!(display_timestamp(Some(&late)), "2027-01-01 07:30 (UTC+8)");
        let start = to_timestamp(datetime!(2026-12-06 14:00 UTC));
        let end = to_timestamp(datetime!(2026-12-06 17:00 UTC));
        assert_eq!(
            display_window(Some(&start), Some(&end)),
            "2026-12-06 22:00–2026-12-07 01:00 (UTC+8)"
        );
    }

    #[test]
    fn weekdays_and_clock_times() {
        assert_eq!(parse_weekday("mon").unwrap(), 1);
        assert_eq!(parse_weekday("Sunday").unwrap(), 7);
        assert_eq!(parse_weekday("3").unwrap(), 3);
        assert!(parse_weekday("mo").is_err());
        assert!(parse_weekday("8").is_err());
        assert_eq!(parse_clock("09:30").unwrap(), 570);
        assert_eq!(parse_clock("24:00").unwrap(), 1440);
        assert!(parse_clock("24:30").is_err());
        assert!(parse_clock("9:75").is_err());
        assert_eq!(clock(1500), "01:00");
    }
}
