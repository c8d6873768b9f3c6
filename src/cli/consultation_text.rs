//! Consultations as text: a detail block, a table and one line per live event, with
//! times in Asia/Shanghai.

use teleconsult::proto::v1 as pb;

use super::client::{out, print_table};
use super::local_time::{display_timestamp, display_window};
use super::views;

pub fn print_consultation(c: &pb::Consultation) {
    let field = |label: &str, value: &str| {
        if !value.is_empty() {
            out!("  {label:<13} {value}");
        }
    };
    out!(
        "consultation {}  {} ({})",
        c.id,
        views::state(c.state),
        views::urgency(c.urgency).to_ascii_lowercase()
    );
    field(
        "patient",
        &format!(
            "{} (reference of {})",
            c.patient_ref, c.inviting_institution_id
        ),
    );
    field("specialty", &c.specialty);
    if c.doctor_id.is_empty() {
        field("doctor", "not yet assigned");
    } else {
        field(
            "doctor",
            &format!("{} ({})", c.doctor_id, c.consulting_institution_id),
        );
    }
    field("time", &display_window(c.start.as_ref(), c.end.as_ref()));
    field(
        "requested",
        &format!(
            "by {} at {}",
            c.requested_by,
            display_timestamp(c.created_at.as_ref())
        ),
    );
    if c.accepted_at.is_some() {
        let mut accepted = display_timestamp(c.accepted_at.as_ref());
        if c.seconds_to_accept > 0 {
            accepted.push_str(&format!(
                ", {} after the request",
                elapsed(c.seconds_to_accept)
            ));
        }
        field("accepted", &accepted);
    }
    if c.escalated_at.is_some() {
        field("escalated", &display_timestamp(c.escalated_at.as_ref()));
    }
    field("reason", &c.reason);
    field("summary", &c.case_summary);
    match &c.consent {
        Some(consent) => field("consent", &consent_text(consent)),
        None => field("consent", "not recorded: nobody can join the session yet"),
    }
    field("interpreters", &c.interpreter_ids.join(", "));
    field("also invited", &c.additional_doctor_ids.join(", "));
    field("state reason", &c.state_reason);
    field("version", &c.version.to_string());
}

fn consent_text(consent: &pb::ConsentRecord) -> String {
    let consenter = views::short(
        consent.consenter,
        "CONSENTER_",
        pb::consent_record::Consenter::as_str_name,
    );
    let method = views::short(
        consent.method,
        "METHOD_",
        pb::consent_record::Method::as_str_name,
    );
    let mut text = format!(
        "{}, {}",
        consenter.to_ascii_lowercase(),
        method.to_ascii_lowercase().replace('_', "-")
    );
    if !consent.witness.is_empty() {
        text.push_str(&format!(" (witness {})", consent.witness));
    }
    text.push_str(&format!(
        "; recorded by {} at {}",
        consent.recorded_by,
        display_timestamp(consent.recorded_at.as_ref())
    ));
    text
}

/// `1 h 05 min`, `12 min`, `40 s`.
fn elapsed(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

pub fn print_list(consultations: &[pb::Consultation]) {
    if consultations.is_empty() {
        out!("no consultations");
        return;
    }
    let rows: Vec<Vec<String>> = consultations
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                views::state(c.state),
                views::urgency(c.urgency).to_ascii_lowercase(),
                c.specialty.clone(),
                c.patient_ref.clone(),
                if c.doctor_id.is_empty() {
                    "-".to_owned()
                } else {
                    c.doctor_id.clone()
                },
                display_window(c.start.as_ref(), c.end.as_ref()),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "STATE",
            "URGENCY",
            "SPECIALTY",
            "PATIENT",
            "DOCTOR",
            "TIME (ASIA/SHANGHAI)",
        ],
        &rows,
    );
}

/// `2026-12-01 09:03 (UTC+8)  URGENT_REQUEST  c-…  REQUESTED  cardiology  biru-p-1  …`.
pub fn event_line(event: &pb::ConsultationEvent) -> String {
    let kind = views::short(
        event.kind,
        "KIND_",
        pb::consultation_event::Kind::as_str_name,
    );
    let at = display_timestamp(event.at.as_ref());
    match &event.consultation {
        Some(c) => {
            let doctor = if c.doctor_id.is_empty() {
                "no doctor yet"
            } else {
                &c.doctor_id
            };
            format!(
                "{at}  {kind:<15} {}  {:<15} {} ({})  patient {}  {doctor}  {}",
                c.id,
                views::state(c.state),
                c.specialty,
                views::urgency(c.urgency).to_ascii_lowercase(),
                c.patient_ref,
                display_window(c.start.as_ref(), c.end.as_ref()),
            )
        }
        None => format!("{at}  {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::elapsed;

    #[test]
    fn waiting_times_read_naturally() {
        assert_eq!(elapsed(40), "40 s");
        assert_eq!(elapsed(720), "12 min");
        assert_eq!(elapsed(3900), "1 h 05 min");
    }
}
