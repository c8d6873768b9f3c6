//! `SessionService`: signaling for the live consult. The stream is admitted like any
//! call (certificate, policy, audit), then the domain decides whether this participant
//! may join now, and the relay carries the rest.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::scheduling::consultation_id;
use super::convert::session::{from_participant, to_participant};
use super::error::ApiError;
use super::gate::{AuditTarget, Gate};
use super::scheduling::{consultation_target, load_authorized};
use crate::audit::{Actor, now_micros};
use crate::auth::tls::Revocations;
use crate::domain::InvalidField;
use crate::domain::policy::Action;
use crate::domain::session;
use crate::proto::v1 as pb;
use crate::proto::v1::session_service_server::SessionService;
use crate::proto::v1::signal_request::Message as In;
use crate::relay::Relay;
use crate::relay::signal::{FromParticipant, ParticipantInfo, ToParticipant};
use crate::store::SharedStore;

/// How long a new stream may take to say which consultation it joins.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub type SignalStream = Pin<Box<dyn Stream<Item = Result<pb::SignalResponse, Status>> + Send>>;

pub struct Session {
    gate: Gate,
    store: SharedStore,
    relay: Relay,
}

impl Session {
    pub fn new(store: SharedStore, revocations: Revocations, relay: Relay) -> Self {
        Self {
            gate: Gate::new(store.clone(), revocations),
            store,
            relay,
        }
    }
}

fn first_join(message: Option<pb::SignalRequest>) -> Result<String, InvalidField> {
    match message.and_then(|m| m.message) {
        Some(In::Join(join)) => Ok(join.consultation_id),
        Some(_) => Err(InvalidField::new(
            "message",
            "the first message must be join",
        )),
        None => Err(InvalidField::new(
            "join",
            "the stream ended before naming a consultation",
        )),
    }
}

#[tonic::async_trait]
impl SessionService for Session {
    type JoinStream = SignalStream;

    async fn join(
        &self,
        request: Request<Streaming<pb::SignalRequest>>,
    ) -> Result<Response<SignalStream>, Status> {
        let call = self.gate.admit(&request, Action::JoinSession).await?;
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(JOIN_TIMEOUT, inbound.message()).await {
            Ok(Ok(message)) => first_join(message),
            Ok(Err(status)) => return Err(status),
            Err(_) => Err(InvalidField::new("join", "no join message within 30 s")),
        };
        let requested = call.check(first, &AuditTarget::unknown()).await?;
        let id = call
            .check(
                consultation_id(&requested, "join.consultation_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let admitted = session::admit(
            &call.principal,
            &consultation,
            now_micros(),
            self.relay.window(),
        )
        .map_err(ApiError::from);
        let role = call.check(admitted, &target).await?;
        let user = call
            .check(self.store.user(&call.principal.user).await, &target)
            .await?;
        let participant = ParticipantInfo {
            user: call.principal.user.to_string(),
            role,
            display_name: user
                .map(|u| {
                    format!(
                        "{} {}",
                        u.display_name_zh.as_str(),
                        u.display_name_en.as_str()
                    )
                })
                .unwrap_or_default(),
        };
        let actor = Actor::from(&call.principal);
        let (out, mut outbox) = mpsc::channel::<ToParticipant>(256);
        let entered = self
            .relay
            .enter(&consultation, participant, actor.clone(), out)
            .await
            .map_err(ApiError::from);
        let member = call.check(entered, &target).await?;

        // Broker → participant: ends after the session-ended message.
        let (responses, stream) = mpsc::channel::<Result<pb::SignalResponse, Status>>(256);
        tokio::spawn(async move {
            while let Some(message) = outbox.recv().await {
                let last = matches!(message, ToParticipant::Ended(_));
                if responses.send(Ok(to_participant(message))).await.is_err() || last {
                    return;
                }
            }
        });

        // Participant → broker: until they leave or the stream breaks.
        let relay = self.relay.clone();
        tokio::spawn(async move {
            let reason = loop {
                let next = tokio::select! {
                    () = member.ended() => break "session ended",
                    next = inbound.message() => next,
                };
                match next {
                    Ok(Some(request)) => match from_participant(request) {
                        Ok(FromParticipant::Leave) => break "left",
                        Ok(message) => {
                            let signaled = relay.signal(&consultation.id, &member, message).await;
                            if let Err(crate::relay::RelayError::NotInSession(_)) = signaled {
                                // The session ended as this message crossed it; the
                                // participant has been told why.
                                break "session ended";
                            }
                            if let Err(error) = signaled {
                                tracing::info!(%error, user = member.user(), "signaling message refused");
                                let text = ApiError::from(error).to_string();
                                member.send(ToParticipant::Ended(text)).await;
                                break "signaling error";
                            }
                        }
                        Err(invalid) => {
                            tracing::info!(%invalid, user = member.user(), "invalid signaling message");
                            member.send(ToParticipant::Ended(invalid.to_string())).await;
                            break "invalid signaling message";
                        }
                    },
                    Ok(None) => break "closed the stream",
                    Err(_) => break "connection lost",
                }
            };
            relay.leave(&consultation, &member, actor, reason).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        let call = self.gate.admit(&request, Action::EndSession).await?;
        let id = call
            .check(
                consultation_id(&request.get_ref().consultation_id, "consultation_id"),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(&call, &self.store, &id).await?;
        let target = consultation_target(&consultation);
        let ended = self
            .relay
            .end(
                &consultation,
                Actor::from(&call.principal),
                "the doctor ended the session",
            )
            .await
            .map_err(ApiError::from);
        call.check(ended, &target).await?;
        Ok(Response::new(pb::EndSessionResponse {}))
    }
}
