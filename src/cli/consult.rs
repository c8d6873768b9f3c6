//! `teleconsult consult`: book, request, list and move consultations through their
//! lifecycle, and watch them change.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use teleconsult::proto::v1 as pb;
use time::OffsetDateTime;
use tokio_stream::StreamExt;

use super::client::{Broker, ConnectionArgs, finish, out, print_json};
use super::consultation_text::{event_line, print_consultation, print_list};
use super::local_time::{self, local_time_arg};
use super::views;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Requested,
    Scheduled,
    InSession,
    AwaitingReport,
    Completed,
    Declined,
    Cancelled,
    NoShow,
    Escalated,
}

impl From<StateArg> for pb::ConsultationState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Requested => Self::Requested,
            StateArg::Scheduled => Self::Scheduled,
            StateArg::InSession => Self::InSession,
            StateArg::AwaitingReport => Self::AwaitingReport,
            StateArg::Completed => Self::Completed,
            StateArg::Declined => Self::Declined,
            StateArg::Cancelled => Self::Cancelled,
            StateArg::NoShow => Self::NoShow,
            StateArg::Escalated => Self::Escalated,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsenterArg {
    Patient,
    Guardian,
    Relative,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Written,
    VerbalWitnessed,
}

#[derive(Debug, Subcommand)]
pub enum ConsultCommand {
    /// Book a doctor's free slot for a patient of your institution (see `slots search`).
    Book {
        #[arg(long)]
        doctor: String,
        /// Local start, YYYY-MM-DDTHH:MM (Asia/Shanghai).
        #[arg(long, value_parser = local_time_arg)]
        start: OffsetDateTime,
        /// Local end, YYYY-MM-DDTHH:MM (Asia/Shanghai).
        #[arg(long, value_parser = local_time_arg)]
        end: OffsetDateTime,
        /// The clinic's pseudonymous patient reference; never a name.
        #[arg(long)]
        patient_ref: String,
        #[arg(long)]
        specialty: String,
        /// Reason for the consultation.
        #[arg(long)]
        reason: String,
        /// Case summary.
        #[arg(long)]
        summary: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Ask the on-call doctors of a specialty for an urgent consultation.
    Urgent {
        #[arg(long)]
        specialty: String,
        #[arg(long)]
        patient_ref: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        summary: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// The consultations you may see (all pages), by start time.
    List {
        /// Only these states (repeatable).
        #[arg(long, value_enum)]
        state: Vec<StateArg>,
        /// Starting at or after this local time (YYYY-MM-DDTHH:MM).
        #[arg(long, value_parser = local_time_arg)]
        from: Option<OffsetDateTime>,
        /// Starting before this local time (YYYY-MM-DDTHH:MM).
        #[arg(long, value_parser = local_time_arg)]
        to: Option<OffsetDateTime>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// One consultation.
    Show {
        id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Accept a booking assigned to you, or an urgent request of your specialty.
    Accept {
        id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Decline a booking, with the reason the clinic will see.
    Decline {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Cancel before the session starts, with a reason.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Move to another free slot of the same doctor, in one step.
    Reschedule {
        id: String,
        #[arg(long, value_parser = local_time_arg)]
        start: OffsetDateTime,
        #[arg(long, value_parser = local_time_arg)]
        end: OffsetDateTime,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Record the patient's informed consent; nobody can join the session without it.
    Consent {
        id: String,
        #[arg(long, value_enum)]
        consenter: ConsenterArg,
        #[arg(long, value_enum)]
        method: MethodArg,
        /// Who witnessed verbal consent.
        #[arg(long)]
        witness: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Invite an interpreter or another doctor.
    Invite {
        id: String,
        #[arg(long)]
        user: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Print consultation events as they happen, until Ctrl-C.
    Watch {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

pub async fn run(command: ConsultCommand) -> ExitCode {
    finish(dispatch(command).await)
}

async fn dispatch(command: ConsultCommand) -> anyhow::Result<ExitCode> {
    use ConsultCommand as C;
    let (verb, answer, broker) = match command {
        C::Book {
            doctor,
            start,
            end,
            patient_ref,
            specialty,
            reason,
            summary,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::BookConsultationRequest {
                slot: Some(slot(doctor, start, end)),
                patient_ref,
                specialty,
                reason,
                case_summary: summary.unwrap_or_default(),
            };
            let answer = broker.scheduling.book_consultation(request).await?;
            ("booked", answer.into_inner(), broker)
        }
        C::Urgent {
            specialty,
            patient_ref,
            reason,
            summary,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::RequestUrgentConsultationRequest {
                specialty,
                patient_ref,
                reason,
                case_summary: summary.unwrap_or_default(),
            };
            let answer = broker.scheduling.request_urgent_consultation(request);
            ("requested", answer.await?.into_inner(), broker)
        }
        C::List {
            state,
            from,
            to,
            connection,
        } => return list(connection, state, from, to).await,
        C::Show { id, connection } => {
            let mut broker = connection.connect().await?;
            let answer = get(&mut broker, &id).await?;
            ("", answer, broker)
        }
        C::Accept { id, connection } => {
            let mut broker = connection.connect().await?;
            let request = pb::AcceptConsultationRequest { id };
            let answer = broker.scheduling.accept_consultation(request).await?;
            ("accepted", answer.into_inner(), broker)
        }
        C::Decline {
            id,
            reason,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::DeclineConsultationRequest { id, reason };
            let answer = broker.scheduling.decline_consultation(request).await?;
            ("declined", answer.into_inner(), broker)
        }
        C::Cancel {
            id,
            reason,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::CancelConsultationRequest { id, reason };
            let answer = broker.scheduling.cancel_consultation(request).await?;
            ("cancelled", answer.into_inner(), broker)
        }
        C::Reschedule {
            id,
            start,
            end,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let current = get(&mut broker, &id).await?;
            if current.doctor_id.is_empty() {
                anyhow::bail!("consultation {id} has no doctor yet: nothing to reschedule");
            }
            let request = pb::RescheduleConsultationRequest {
                id,
                new_slot: Some(slot(current.doctor_id, start, end)),
            };
            let answer = broker.scheduling.reschedule_consultation(request).await?;
            ("rescheduled", answer.into_inner(), broker)
        }
        C::Consent {
            id,
            consenter,
            method,
            witness,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::RecordConsentRequest {
                id,
                consent: Some(consent(consenter, method, witness)),
            };
            let answer = broker.scheduling.record_consent(request).await?;
            ("recorded consent for", answer.into_inner(), broker)
        }
        C::Invite {
            id,
            user,
            connection,
        } => {
            let mut broker = connection.connect().await?;
            let request = pb::InviteParticipantRequest { id, user_id: user };
            let answer = broker.scheduling.invite_participant(request).await?;
            ("invited to", answer.into_inner(), broker)
        }
        C::Watch { connection } => return watch(connection).await,
    };
    if broker.json {
        print_json(&views::consultation(&answer));
    } else {
        if !verb.is_empty() {
            out!("{verb} {}: {}", answer.id, views::state(answer.state));
        }
        print_consultation(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

fn slot(doctor: String, start: OffsetDateTime, end: OffsetDateTime) -> pb::Slot {
    pb::Slot {
        doctor_id: doctor,
        institution_id: String::new(),
        start: Some(local_time::to_timestamp(start)),
        end: Some(local_time::to_timestamp(end)),
    }
}

fn consent(
    consenter: ConsenterArg,
    method: MethodArg,
    witness: Option<String>,
) -> pb::ConsentRecord {
    use pb::consent_record::{Consenter, Method};
    pb::ConsentRecord {
        consenter: match consenter {
            ConsenterArg::Patient => Consenter::Patient,
            ConsenterArg::Guardian => Consenter::Guardian,
            ConsenterArg::Relative => Consenter::Relative,
        } as i32,
        method: match method {
            MethodArg::Written => Method::Written,
            MethodArg::VerbalWitnessed => Method::VerbalWitnessed,
        } as i32,
        recorded_by: String::new(),
        recorded_at: None,
        witness: witness.unwrap_or_default(),
    }
}

async fn get(broker: &mut Broker, id: &str) -> anyhow::Result<pb::Consultation> {
    let request = pb::GetConsultationRequest { id: id.to_owned() };
    Ok(broker
        .scheduling
        .get_consultation(request)
        .await?
        .into_inner())
}

async fn list(
    connection: ConnectionArgs,
    states: Vec<StateArg>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
) -> anyhow::Result<ExitCode> {
    let mut broker = connection.connect().await?;
    let mut request = pb::ListConsultationsRequest {
        states: states
            .into_iter()
            .map(|s| pb::ConsultationState::from(s) as i32)
            .collect(),
        from: from.map(local_time::to_timestamp),
        to: to.map(local_time::to_timestamp),
        page: Some(pb::PageRequest {
            page_size: 500,
            page_token: String::new(),
        }),
    };
    let mut found = Vec::new();
    loop {
        let page = broker
            .scheduling
            .list_consultations(request.clone())
            .await?
            .into_inner();
        found.extend(page.consultations);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page.as_mut().context("the page is set")?.page_token = page.next_page_token;
    }
    if broker.json {
        let listed: Vec<_> = found.iter().map(views::consultation).collect();
        print_json(&json!({ "consultations": listed }));
    } else {
        print_list(&found);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints events until Ctrl-C. A stream the broker ends is an error, so that a script
/// running this in a loop reconnects.
async fn watch(connection: ConnectionArgs) -> anyhow::Result<ExitCode> {
    let mut broker = connection.connect().await?;
    let mut events = broker
        .scheduling
        .watch(pb::WatchRequest {})
        .await?
        .into_inner();
    eprintln!("watching consultations (times in Asia/Shanghai); Ctrl-C to stop");
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            event = events.next() => event,
        };
        match event {
            Some(event) => {
                let event = event?;
                if broker.json {
                    out!("{}", views::event(&event));
                } else {
                    out!("{}", event_line(&event));
                }
            }
            None => anyhow::bail!("the broker ended the watch; list and watch again"),
        }
    }
}
