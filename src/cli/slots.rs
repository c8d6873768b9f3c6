//! `teleconsult slots search`: free slots, earliest first, each with the command that
//! books it.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use teleconsult::proto::v1 as pb;
use time::OffsetDateTime;

use super::client::{Broker, ConnectionArgs, finish, out, print_json};
use super::local_time::{self, display_window, from_timestamp, local_time_arg};
use super::specialists::LanguageArg;
use super::views;

#[derive(Debug, Subcommand)]
pub enum SlotsCommand {
    /// Free slots of active specialists, earliest first. The broker searches from now
    /// to a week after --from unless --to says otherwise (at most 31 days).
    Search {
        /// A specialty code, e.g. cardiology.
        #[arg(long)]
        specialty: Option<String>,
        /// A consulting institution's id, e.g. zju2-hospital.
        #[arg(long)]
        institution: Option<String>,
        /// A language the specialist consults in.
        #[arg(long, value_enum)]
        language: Option<LanguageArg>,
        /// Only this doctor's slots.
        #[arg(long)]
        doctor: Option<String>,
        /// From this local time (YYYY-MM-DDTHH:MM, Asia/Shanghai); default now.
        #[arg(long, value_parser = local_time_arg)]
        from: Option<OffsetDateTime>,
        /// Until this local time (YYYY-MM-DDTHH:MM, Asia/Shanghai).
        #[arg(long, value_parser = local_time_arg)]
        to: Option<OffsetDateTime>,
        /// At most this many slots.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=5000))]
        limit: u32,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn run(command: SlotsCommand) -> ExitCode {
    finish(search(command).await)
}

async fn search(command: SlotsCommand) -> anyhow::Result<ExitCode> {
    let SlotsCommand::Search {
        specialty,
        institution,
        language,
        doctor,
        from,
        to,
        limit,
        connection,
    } = command;
    let mut broker = connection.connect().await?;
    let mut request = pb::SearchSlotsRequest {
        specialty: specialty.clone().unwrap_or_default(),
        institution_id: institution.unwrap_or_default(),
        language: LanguageArg::to_proto(language),
        from: from.map(local_time::to_timestamp),
        to: to.map(local_time::to_timestamp),
        page: None,
        doctor_id: doctor.unwrap_or_default(),
    };
    let mut slots: Vec<pb::Slot> = Vec::new();
    let mut next_page_token = String::new();
    loop {
        let wanted = limit as usize - slots.len();
        request.page = Some(pb::PageRequest {
            page_size: wanted.min(500) as u32,
            page_token: next_page_token.clone(),
        });
        let page = broker
            .scheduling
            .search_slots(request.clone())
            .await?
            .into_inner();
        slots.extend(page.slots.into_iter().take(wanted));
        next_page_token = page.next_page_token;
        if next_page_token.is_empty() || slots.len() >= limit as usize {
            break;
        }
    }
    if broker.json {
        let listed: Vec<_> = slots.iter().map(views::slot).collect();
        print_json(&json!({ "slots": listed, "next_page_token": next_page_token }));
        return Ok(ExitCode::SUCCESS);
    }
    if slots.is_empty() {
        out!("no free slots match (times in Asia/Shanghai, UTC+8)");
        return Ok(ExitCode::SUCCESS);
    }
    let doctors = profiles(&mut broker, &slots).await;
    for slot in &slots {
        let profile = doctors.get(&slot.doctor_id);
        let name = profile
            .map(|p| format!(" {} {}", p.display_name_zh, p.display_name_en))
            .unwrap_or_default();
        out!(
            "{}  {}{name}, {}",
            display_window(slot.start.as_ref(), slot.end.as_ref()),
            slot.doctor_id,
            slot.institution_id
        );
        out!("    {}", book_command(slot, specialty.as_deref(), profile));
    }
    if !next_page_token.is_empty() {
        out!("more slots: raise --limit, or search from a later --from");
    }
    Ok(ExitCode::SUCCESS)
}

/// The specialist profiles of the slots' doctors, for their names and specialties.
/// Best effort: a slot is worth showing without its doctor's name.
async fn profiles(broker: &mut Broker, slots: &[pb::Slot]) -> HashMap<String, pb::Specialist> {
    let mut found = HashMap::new();
    for slot in slots {
        if found.contains_key(&slot.doctor_id) {
            continue;
        }
        let request = pb::GetSpecialistRequest {
            user_id: slot.doctor_id.clone(),
        };
        if let Ok(profile) = broker.directory.get_specialist(request).await {
            found.insert(slot.doctor_id.clone(), profile.into_inner());
        }
    }
    found
}

/// The command that books `slot`: exact up to the patient and the reason.
fn book_command(
    slot: &pb::Slot,
    specialty: Option<&str>,
    profile: Option<&pb::Specialist>,
) -> String {
    let time = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| from_timestamp(t).ok())
            .map(local_time::argument)
            .unwrap_or_default()
    };
    let specialty = match (specialty, profile) {
        (Some(specialty), _) => specialty.to_owned(),
        (None, Some(profile)) if profile.specialties.len() == 1 => profile.specialties[0].clone(),
        (None, Some(profile)) => format!("<{}>", profile.specialties.join("|")),
        (None, None) => "SPECIALTY".to_owned(),
    };
    format!(
        "teleconsult consult book --doctor {} --start {} --end {} --specialty {specialty} --patient-ref REF --reason \"REASON\"",
        slot.doctor_id,
        time(slot.start.as_ref()),
        time(slot.end.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_book_command_names_the_slot_in_local_time() {
        let slot = pb::Slot {
            doctor_id: "zju2-cardio-chen".into(),
            institution_id: "zju2-hospital".into(),
            start: Some(local_time::to_timestamp(datetime!(2026-12-06 15:30 UTC))),
            end: Some(local_time::to_timestamp(datetime!(2026-12-06 16:00 UTC))),
        };
        assert_eq!(
            book_command(&slot, Some("cardiology"), None),
            "teleconsult consult book --doctor zju2-cardio-chen --start 2026-12-06T23:30 \
             --end 2026-12-07T00:00 --specialty cardiology --patient-ref REF --reason \"REASON\""
        );
    }
}
