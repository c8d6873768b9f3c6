//! The live half of the demo: the people connect, the consultation is prepared (see
//! [`super::scheduling`]), the session runs with synthetic media, and the opinion is
//! signed.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use teleconsult::proto::v1 as pb;
use teleconsult::relay::synthetic::{SyntheticMedia, SyntheticParticipant, eventually};
use tonic::Status;

use super::super::client::{describe, out};
use super::super::views;
use super::cast::{Person, Roles};
use super::report::MediaReport;
use super::scheduling::{book_and_prepare, write_opinion};

/// How long the demo waits for media to start flowing before it calls that a failure.
const MEDIA_PATIENCE: Duration = Duration::from_secs(15);
/// Seconds of media between the first two participants and the interpreter's arrival.
const BEFORE_INTERPRETER: Duration = Duration::from_secs(2);

/// A refusal as a one-line error naming the step.
pub(super) fn refused(step: &str) -> impl FnOnce(Status) -> anyhow::Error + '_ {
    move |status| anyhow::anyhow!("{step}: {}", describe(&status))
}

/// One numbered line of the story.
pub(super) struct Steps(u32);

impl Steps {
    pub(super) fn step(&mut self, text: &str) {
        self.0 += 1;
        out!("{:>2}. {text}", self.0);
    }

    pub(super) fn state(&self, consultation: &pb::Consultation) {
        out!(
            "      consultation state: {}",
            views::state(consultation.state)
        );
    }

    pub(super) fn note(&self, text: &str) {
        out!("      {text}");
    }
}

/// Everything between the broker starting and the session's opinion being signed.
/// Returns the consultation's id and what each participant received.
pub(super) async fn run(
    data_dir: &Path,
    address: SocketAddr,
    roles: &Roles,
    media_seconds: u64,
) -> anyhow::Result<(String, MediaReport)> {
    let pki = data_dir.join("pki");
    let mut nurse = Person::connect(&pki, address, &roles.nurse).await?;
    let mut cardiologist = Person::connect(&pki, address, &roles.cardiologist).await?;
    let interpreter = Person::connect(&pki, address, &roles.interpreter).await?;
    out!("Each person connects with their own client certificate; the broker knows them as:");
    for (part, person) in [
        ("clinic nurse", &nurse),
        ("cardiologist", &cardiologist),
        ("interpreter", &interpreter),
    ] {
        out!(
            "  {part:<13} {} ({}, {})",
            person.name,
            person.id,
            person.role
        );
        out!("  {:<13} {}", "", person.institution);
    }
    out!();

    let mut steps = Steps(0);
    let consultation = book_and_prepare(&mut steps, &mut nurse, &mut cardiologist).await?;
    let id = consultation.id.clone();

    // The live session.
    let media = SyntheticMedia::default();
    steps.step("The nurse and the cardiologist join the live session");
    steps.note(&format!(
        "each a WebRTC peer (ICE, DTLS-SRTP) sending synthetic Opus audio ({} kbit/s) and",
        media.audio_bps / 1000
    ));
    steps.note(&format!(
        "VP8 video ({} kbit/s) to the broker's SFU, which forwards it to the others",
        media.video_bps / 1000
    ));
    let joined = Instant::now();
    let nurse_peer = join(&nurse, &id, media).await?;
    let cardiologist_peer = join(&cardiologist, &id, media).await?;
    steps.state(&get(&mut nurse, &id).await?);
    let two = [&nurse_peer, &cardiologist_peer];
    if !eventually(MEDIA_PATIENCE, || all_receiving(&two)).await {
        bail!(
            "media did not flow between {} and {} within {} s",
            nurse.id,
            cardiologist.id,
            MEDIA_PATIENCE.as_secs()
        );
    }
    steps.note(&format!(
        "media flowing both ways {:.1} s after joining",
        joined.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(BEFORE_INTERPRETER).await;

    steps.step(&format!(
        "The cardiologist invites the Tibetan–Mandarin interpreter {}",
        interpreter.label()
    ));
    cardiologist
        .scheduling
        .invite_participant(pb::InviteParticipantRequest {
            id: id.clone(),
            user_id: interpreter.id.clone(),
        })
        .await
        .map_err(refused("inviting the interpreter"))?;
    let arrived = Instant::now();
    let interpreter_peer = join(&interpreter, &id, media).await?;
    let three = [&nurse_peer, &cardiologist_peer, &interpreter_peer];
    if !eventually(MEDIA_PATIENCE, || all_receiving(&three)).await {
        let report = MediaReport::snapshot(&three);
        bail!(
            "media did not reach every participant within {} s of the interpreter joining: {}",
            MEDIA_PATIENCE.as_secs(),
            report.silent_pairs().join("; ")
        );
    }
    steps.note(&format!(
        "the SFU renegotiated: all three send and receive, {:.1} s after the interpreter joined",
        arrived.elapsed().as_secs_f64()
    ));
    steps.state(&get(&mut nurse, &id).await?);
    steps.step(&format!(
        "The consult goes on for {media_seconds} s (synthetic media only)"
    ));
    tokio::time::sleep(Duration::from_secs(media_seconds)).await;

    steps.step("The cardiologist ends the session for everyone");
    cardiologist
        .session
        .end_session(pb::EndSessionRequest {
            consultation_id: id.clone(),
        })
        .await
        .map_err(refused("ending the session"))?;
    let ended = eventually(Duration::from_secs(5), || {
        three
            .iter()
            .all(|p| p.ended.load(std::sync::atomic::Ordering::Relaxed))
    })
    .await;
    if !ended {
        bail!("the broker did not end every participant's session stream");
    }
    let media_report = MediaReport::snapshot(&three);
    for peer in three {
        peer.leave().await;
    }
    steps.state(&get(&mut nurse, &id).await?);

    write_opinion(&mut steps, &mut cardiologist, &mut nurse, &id).await?;
    out!();
    Ok((id, media_report))
}

/// The consultation as `person` sees it now.
pub(super) async fn get(person: &mut Person, id: &str) -> anyhow::Result<pb::Consultation> {
    Ok(person
        .scheduling
        .get_consultation(pb::GetConsultationRequest { id: id.to_owned() })
        .await
        .map_err(refused("reading the consultation"))?
        .into_inner())
}

async fn join(
    person: &Person,
    id: &str,
    media: SyntheticMedia,
) -> anyhow::Result<SyntheticParticipant> {
    SyntheticParticipant::join(person.channel.clone(), &person.id, id, media)
        .await
        .map_err(|status| {
            anyhow::anyhow!("{} joining the session: {}", person.id, describe(&status))
        })
}

/// Whether every participant has received audio and video from every other.
fn all_receiving(peers: &[&SyntheticParticipant]) -> bool {
    peers.iter().all(|receiver| {
        peers
            .iter()
            .filter(|sender| sender.user != receiver.user)
            .all(|sender| {
                receiver.received_from(&sender.user, "audio") > 0
                    && receiver.received_from(&sender.user, "video") > 0
            })
    })
}
