//! The live consult: rooms of participants whose media the broker's SFU forwards, the
//! lifecycle hooks a session drives (first join → IN_SESSION, end → AWAITING_REPORT)
//! and the session log (joins, leaves, ICE states, quality) in the audit chain.

pub mod ice_tcp;
pub mod lifecycle;
pub mod media;
mod quality;
pub mod room;
pub mod signal;
pub mod synthetic;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use self::media::MediaSettings;
use self::room::{Member, Room, RoomError, RoomNote};
use self::signal::{FromParticipant, ParticipantInfo, ToParticipant};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::domain::consultation::{Consultation, ConsultationId, ConsultationState};
use crate::domain::session::{SessionRole, SessionWindow};
use crate::events::{ConsultationEvents, NoticeKind};
use crate::store::SharedStore;

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub media: MediaSettings,
    pub window: SessionWindow,
    /// When everyone has left, how long the session waits for someone to come back
    /// before it ends.
    pub empty_grace: Duration,
    /// How often each participant's quality summary is written to the session log.
    pub quality_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            media: MediaSettings::default(),
            window: SessionWindow::default(),
            empty_grace: Duration::from_secs(120),
            quality_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::SessionLifecycleError),
    #[error("{0} is not in the session")]
    NotInSession(String),
    #[error("ice-tcp: cannot listen on {address}: {source}")]
    IceTcp {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The node's live sessions. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RelaySettings,
    store: SharedStore,
    events: ConsultationEvents,
    runtime: Arc<dyn webrtc::runtime::Runtime>,
    rooms: Mutex<HashMap<ConsultationId, Arc<Room>>>,
    notes: mpsc::UnboundedSender<(ConsultationId, RoomNote)>,
    stop: CancellationToken,
}

impl Relay {
    /// Starts the relay, and the shared ICE-TCP listener when `media.ice_tcp` is set.
    pub fn start(
        mut settings: RelaySettings,
        store: SharedStore,
        events: ConsultationEvents,
    ) -> Result<Self, RelayError> {
        if let Some(address) = settings.media.ice_tcp.filter(|_| settings.media.tcp) {
            let mux = ice_tcp::IceTcpMux::bind(address, ice_tcp::IceTcpLimits::default())
                .map_err(|source| RelayError::IceTcp { address, source })?;
            settings.media.ice_tcp_mux = Some(mux);
        }
        Ok(Self::with_settings(settings, store, events))
    }

    /// [`Relay::start`], falling back to a listener per connection when the shared
    /// ICE-TCP port cannot be bound.
    pub fn new(settings: RelaySettings, store: SharedStore, events: ConsultationEvents) -> Self {
        match Self::start(settings.clone(), store.clone(), events.clone()) {
            Ok(relay) => relay,
            Err(error) => {
                tracing::error!(%error, "ice-tcp: each connection gets a listener of its own");
                let mut settings = settings;
                settings.media.ice_tcp = None;
                Self::with_settings(settings, store, events)
            }
        }
    }

    fn with_settings(
        settings: RelaySettings,
        store: SharedStore,
        events: ConsultationEvents,
    ) -> Self {
        let (notes, noted) = mpsc::unbounded_channel();
        let runtime = webrtc::runtime::default_runtime().expect("the tokio runtime is compiled in");
        let relay = Self {
            inner: Arc::new(Inner {
                settings,
                store,
                events,
                runtime,
                rooms: Mutex::new(HashMap::new()),
                notes,
                stop: CancellationToken::new(),
            }),
        };
        tokio::spawn(relay.clone().write_notes(noted));
        tokio::spawn(relay.clone().summarise_quality());
        relay
    }

    pub fn window(&self) -> SessionWindow {
        self.inner.settings.window
    }

    pub async fn room(&self, consultation: &ConsultationId) -> Option<Arc<Room>> {
        self.inner.rooms.lock().await.get(consultation).cloned()
    }

    /// Admits an already authorized participant: moves the consultation into session
    /// on its first join, replaces an earlier connection of the same user (a
    /// reconnect), and tells the doctor when the clinic side is waiting.
    pub async fn enter(
        &self,
        consultation: &Consultation,
        participant: ParticipantInfo,
        actor: Actor,
        out: mpsc::Sender<ToParticipant>,
    ) -> Result<Arc<Member>, RelayError> {
        let mut current = consultation.clone();
        if consultation.state == ConsultationState::Scheduled {
            current = lifecycle::start_session(
                &self.inner.store,
                &self.inner.events,
                &consultation.id,
                actor.clone(),
            )
            .await?;
        }
        let room = {
            let mut rooms = self.inner.rooms.lock().await;
            rooms
                .entry(consultation.id.clone())
                .or_insert_with(|| {
                    Room::new(
                        consultation.id.clone(),
                        format!("session-{}", consultation.id),
                        self.inner.settings.media.clone(),
                        self.inner.runtime.clone(),
                        self.inner.notes.clone(),
                    )
                })
                .clone()
        };
        // The earlier connection is told before it is closed, so that it does not
        // reconnect and replace this one in turn.
        let earlier = room
            .members()
            .await
            .into_iter()
            .find(|m| m.user() == participant.user);
        if let Some(earlier) = earlier {
            earlier.send(ToParticipant::Replaced).await;
        }
        let replaced = room.leave(&participant.user).await.is_some();
        let role = participant.role;
        let member = room.join(participant, out).await?;
        self.log(
            &consultation.id,
            &current,
            actor,
            "session.join",
            json!({ "role": role.as_str(), "reconnect": replaced }),
        )
        .await;
        if role == SessionRole::ClinicSide {
            let doctor_present = match &current.doctor {
                Some(doctor) => room
                    .members()
                    .await
                    .iter()
                    .any(|m| m.user() == doctor.as_str()),
                None => false,
            };
            if !doctor_present {
                self.inner
                    .events
                    .publish(NoticeKind::PatientWaiting, &current);
            }
        }
        Ok(member)
    }

    /// Handles a message from a participant.
    pub async fn signal(
        &self,
        consultation: &ConsultationId,
        member: &Arc<Member>,
        message: FromParticipant,
    ) -> Result<(), RelayError> {
        let room = self
            .room(consultation)
            .await
            .ok_or_else(|| RelayError::NotInSession(member.user().to_owned()))?;
        match message {
            FromParticipant::Answer(sdp) => room.answer(member, sdp).await?,
            FromParticipant::Candidate(candidate) => room.candidate(member, candidate).await?,
            FromParticipant::Mute {
                audio_muted,
                video_muted,
            } => room.mute(member, audio_muted, video_muted).await,
            FromParticipant::RestartIce => room.restart_ice(member).await?,
            FromParticipant::Leave => {}
        }
        Ok(())
    }

    /// A participant left (or their stream broke). When nobody is left, the session
    /// ends after the grace period unless someone comes back.
    pub async fn leave(
        &self,
        consultation: &Consultation,
        member: &Arc<Member>,
        actor: Actor,
        reason: &str,
    ) {
        let Some(room) = self.room(&consultation.id).await else {
            return;
        };
        // A reconnect may already have replaced this connection with a newer one.
        let current = room
            .members()
            .await
            .into_iter()
            .find(|m| m.user() == member.user());
        if !current.is_some_and(|m| Arc::ptr_eq(&m, member)) {
            return;
        }
        let summary = quality::summary(member).await;
        room.leave(member.user()).await;
        self.log(
            &consultation.id,
            consultation,
            actor,
            "session.leave",
            json!({ "reason": reason, "quality": summary }),
        )
        .await;
        if room.members().await.is_empty() {
            // Counted from the last departure: any join or leave since makes this
            // timer stale.
            let epoch = room.presence_epoch();
            let relay = self.clone();
            let room = room.clone();
            let consultation = consultation.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = relay.inner.stop.cancelled() => {}
                    () = tokio::time::sleep(relay.inner.settings.empty_grace) => {
                        if room.presence_epoch() == epoch && room.members().await.is_empty() {
                            let _ = relay
                                .end(&consultation, Actor::system("relay"), "everyone left")
                                .await;
                        }
                    }
                }
            });
        }
    }

    /// Ends the session for everyone: connections close, the consultation moves to
    /// AWAITING_REPORT.
    pub async fn end(
        &self,
        consultation: &Consultation,
        actor: Actor,
        reason: &str,
    ) -> Result<(), RelayError> {
        let room = self.room(&consultation.id).await;
        if let Some(room) = room {
            for member in room.members().await {
                let summary = quality::summary(&member).await;
                self.log(
                    &consultation.id,
                    consultation,
                    actor.clone(),
                    "session.quality",
                    json!({ "final": true, "quality": summary }),
                )
                .await;
            }
            // Participants hear the reason before the room disappears, so a signal that
            // crosses the end finds the room still there.
            room.close(reason).await;
            let mut rooms = self.inner.rooms.lock().await;
            if rooms
                .get(&consultation.id)
                .is_some_and(|r| Arc::ptr_eq(r, &room))
            {
                rooms.remove(&consultation.id);
            }
        }
        let latest = self
            .inner
            .store
            .consultation(&consultation.id)
            .await
            .ok()
            .flatten();
        if latest.is_some_and(|c| c.state == ConsultationState::InSession) {
            lifecycle::end_session(
                &self.inner.store,
                &self.inner.events,
                &consultation.id,
                actor,
            )
            .await?;
        }
        Ok(())
    }

    /// Server shutdown: every session's participants are told and disconnected; the
    /// consultations stay IN_SESSION so that they can rejoin when the broker is back.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        if let Some(mux) = &self.inner.settings.media.ice_tcp_mux {
            mux.stop();
        }
        let rooms: Vec<_> = self
            .inner
            .rooms
            .lock()
            .await
            .drain()
            .map(|(_, r)| r)
            .collect();
        for room in rooms {
            room.close("the broker is restarting; join again in a moment")
                .await;
        }
    }

    async fn log(
        &self,
        id: &ConsultationId,
        consultation: &Consultation,
        actor: Actor,
        action: &str,
        details: serde_json::Value,
    ) {
        let entry = AuditEntry::new(actor, action, format!("consultation:{id}"), Outcome::Ok)
            .target_institution(&consultation.inviting_institution)
            .details(details);
        if let Err(error) = self.inner.store.append_audit(entry).await {
            tracing::error!(%error, consultation_id = %id, "could not write the session log");
        }
    }

    /// Writes what rooms report (ICE state changes) to the session log.
    async fn write_notes(self, mut noted: mpsc::UnboundedReceiver<(ConsultationId, RoomNote)>) {
        while let Some((id, note)) = noted.recv().await {
            let RoomNote::IceState { user, state } = note;
            let institution = match self.inner.store.consultation(&id).await {
                Ok(Some(c)) => c.inviting_institution.to_string(),
                _ => String::new(),
            };
            let entry = AuditEntry::new(
                Actor::system("relay"),
                "session.ice_state",
                format!("consultation:{id}"),
                Outcome::Ok,
            )
            .target_institution(institution)
            .details(json!({ "participant": user, "state": state }));
            if let Err(error) = self.inner.store.append_audit(entry).await {
                tracing::error!(%error, consultation_id = %id, "could not write the session log");
            }
        }
    }

    /// Every `quality_interval`, a quality summary per participant of every session.
    async fn summarise_quality(self) {
        let mut ticks = tokio::time::interval(self.inner.settings.quality_interval);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = self.inner.stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let rooms: Vec<_> = self.inner.rooms.lock().await.values().cloned().collect();
            for room in rooms {
                let Ok(Some(consultation)) =
                    self.inner.store.consultation(&room.consultation).await
                else {
                    continue;
                };
                for member in room.members().await {
                    let summary = quality::summary(&member).await;
                    self.log(
                        &room.consultation,
                        &consultation,
                        Actor::system("relay"),
                        "session.quality",
                        json!({ "final": false, "quality": summary }),
                    )
                    .await;
                }
            }
        }
    }
}
