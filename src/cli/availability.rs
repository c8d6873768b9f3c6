//! `teleconsult availability`: a doctor's weekly hours and exceptions, typed and shown
//! in Asia/Shanghai local time.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use teleconsult::proto::v1 as pb;

use super::client::{Broker, ConnectionArgs, finish, out, print_json};
use super::local_time::{
    self, clock, display_window, parse_clock, parse_local, parse_weekday, weekday_name,
};
use super::views;

const MINUTES_PER_DAY: u32 = 24 * 60;

#[derive(Debug, Subcommand)]
pub enum AvailabilityCommand {
    /// Replace a doctor's availability. Times are Asia/Shanghai local time.
    Set {
        /// The doctor; yourself when omitted.
        #[arg(long)]
        doctor: Option<String>,
        /// Weekly hours, repeatable: "mon 09:00-12:00", "mon-fri 14:00-17:00",
        /// "sat,sun 09:00-11:00"; an end before the start runs past midnight
        /// ("sun 22:00-01:00").
        #[arg(long, value_name = "DAYS HH:MM-HH:MM")]
        weekly: Vec<String>,
        /// Not available, repeatable: "2026-12-24T00:00/2026-12-26T00:00 holiday".
        #[arg(long, value_name = "START/END [REASON]")]
        exception: Vec<String>,
        /// Bookings are accepted at once, without the doctor's confirmation.
        #[arg(long)]
        auto_accept: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Show a doctor's availability.
    Show {
        /// The doctor; yourself when omitted.
        #[arg(long)]
        doctor: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn run(command: AvailabilityCommand) -> ExitCode {
    finish(dispatch(command).await)
}

async fn dispatch(command: AvailabilityCommand) -> anyhow::Result<ExitCode> {
    match command {
        AvailabilityCommand::Set {
            doctor,
            weekly,
            exception,
            auto_accept,
            connection,
        } => {
            let mut intervals = Vec::new();
            for text in &weekly {
                intervals.extend(parse_weekly(text).with_context(|| format!("--weekly {text:?}"))?);
            }
            let exceptions = exception
                .iter()
                .map(|text| parse_exception(text).with_context(|| format!("--exception {text:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut broker = connection.connect().await?;
            let doctor = doctor_or_self(&mut broker, doctor).await?;
            let saved = broker
                .scheduling
                .set_availability(pb::SetAvailabilityRequest {
                    availability: Some(pb::Availability {
                        doctor_id: doctor,
                        weekly: intervals,
                        exceptions,
                        auto_accept,
                    }),
                })
                .await?
                .into_inner();
            show(&broker, &saved, "saved the availability of");
        }
        AvailabilityCommand::Show { doctor, connection } => {
            let mut broker = connection.connect().await?;
            let doctor = doctor_or_self(&mut broker, doctor).await?;
            let found = broker
                .scheduling
                .get_availability(pb::GetAvailabilityRequest { doctor_id: doctor })
                .await?
                .into_inner();
            show(&broker, &found, "availability of");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The named doctor, or the caller.
pub async fn doctor_or_self(broker: &mut Broker, doctor: Option<String>) -> anyhow::Result<String> {
    match doctor {
        Some(doctor) => Ok(doctor),
        None => {
            let me = broker
                .directory
                .who_am_i(pb::WhoAmIRequest {})
                .await?
                .into_inner();
            me.principal
                .map(|p| p.user_id)
                .context("the broker did not say who you are; pass --doctor")
        }
    }
}

fn show(broker: &Broker, availability: &pb::Availability, heading: &str) {
    if broker.json {
        print_json(&views::availability(availability));
        return;
    }
    out!(
        "{heading} {} (Asia/Shanghai, UTC+8)",
        availability.doctor_id
    );
    if availability.weekly.is_empty() {
        out!("  weekly      none: no bookable slots");
    }
    for (i, interval) in availability.weekly.iter().enumerate() {
        let label = if i == 0 { "weekly" } else { "" };
        out!("  {label:<10}  {}", weekly_text(interval));
    }
    for (i, exception) in availability.exceptions.iter().enumerate() {
        let label = if i == 0 { "except" } else { "" };
        let window = display_window(exception.start.as_ref(), exception.end.as_ref());
        out!("  {label:<10}  {window}  {}", exception.reason);
    }
    let accept = if availability.auto_accept {
        "bookings are accepted at once"
    } else {
        "the doctor accepts each booking"
    };
    out!("  {:<10}  {accept}", "accept");
}

/// `Sun 22:00–01:00 (next day)`.
pub fn weekly_text(interval: &pb::WeeklyInterval) -> String {
    let next_day = if interval.end_minute > MINUTES_PER_DAY {
        " (next day)"
    } else {
        ""
    };
    let end = if interval.end_minute == MINUTES_PER_DAY {
        "24:00".to_owned()
    } else {
        clock(interval.end_minute)
    };
    format!(
        "{} {}–{end}{next_day}",
        weekday_name(interval.weekday),
        clock(interval.start_minute)
    )
}

/// `mon 09:00-12:00`, `mon-fri 09:00-12:00`, `sat,sun 22:00-01:00`.
fn parse_weekly(text: &str) -> anyhow::Result<Vec<pb::WeeklyInterval>> {
    let (days, hours) = text
        .trim()
        .split_once(char::is_whitespace)
        .context("expected DAYS HH:MM-HH:MM, e.g. \"mon 09:00-12:00\"")?;
    let (start, end) = hours
        .trim()
        .split_once(['-', '–'])
        .context("expected hours as HH:MM-HH:MM")?;
    let start_minute = parse_clock(start.trim())?;
    let mut end_minute = parse_clock(end.trim())?;
    if start_minute == MINUTES_PER_DAY {
        anyhow::bail!("an interval cannot start at 24:00");
    }
    if end_minute <= start_minute {
        // Past midnight: 22:00-01:00 ends at 01:00 the next day.
        end_minute += MINUTES_PER_DAY;
    }
    let mut weekdays = Vec::new();
    for part in days.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (parse_weekday(first)?, parse_weekday(last)?);
                if last < first {
                    anyhow::bail!("{part:?}: a range of days runs from Monday to Sunday");
                }
                weekdays.extend(first..=last);
            }
            None => weekdays.push(parse_weekday(part)?),
        }
    }
    Ok(weekdays
        .into_iter()
        .map(|weekday| pb::WeeklyInterval {
            weekday,
            start_minute,
            end_minute,
        })
        .collect())
}

/// `2026-12-24T00:00/2026-12-26T00:00 holiday`.
fn parse_exception(text: &str) -> anyhow::Result<pb::AvailabilityException> {
    let text = text.trim();
    let (range, reason) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let (start, end) = range
        .split_once('/')
        .context("expected START/END, e.g. 2026-12-24T00:00/2026-12-26T00:00")?;
    Ok(pb::AvailabilityException {
        start: Some(local_time::to_timestamp(parse_local(start)?)),
        end: Some(local_time::to_timestamp(parse_local(end)?)),
        reason: reason.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn interval(weekday: u32, start_minute: u32, end_minute: u32) -> pb::WeeklyInterval {
        pb::WeeklyInterval {
            weekday,
            start_minute,
            end_minute,
        }
    }

    #[test]
    fn weekly_hours_may_cross_midnight() {
        assert_eq!(
            parse_weekly("mon 09:00-12:00").unwrap(),
            vec![interval(1, 540, 720)]
        );
        let night = parse_weekly("sun 22:00-01:00").unwrap();
        assert_eq!(night, vec![interval(7, 1320, 1500)]);
        assert_eq!(weekly_text(&night[0]), "Sun 22:00–01:00 (next day)");
        assert_eq!(
            weekly_text(&parse_weekly("tue 00:00-24:00").unwrap()[0]),
            "Tue 00:00–24:00"
        );
        assert_eq!(parse_weekly("mon-wed,fri 14:00-17:00").unwrap().len(), 4);
        assert!(parse_weekly("fri-mon 09:00-10:00").is_err());
        assert!(parse_weekly("mon 9-12").is_err());
    }

    #[test]
    fn exceptions_are_local_time_with_a_reason() {
        let holiday = parse_exception("2026-12-24T00:00/2026-12-26T00:00 Christmas leave").unwrap();
        assert_eq!(
            holiday.start,
            Some(local_time::to_timestamp(datetime!(2026-12-23 16:00 UTC)))
        );
        assert_eq!(holiday.reason, "Christmas leave");
        assert!(parse_exception("2026-12-24T00:00").is_err());
    }
}
