//! `SessionService`: signaling for the live consult. The stream is admitted like any
//! call (certificate or web session, policy, audit), then the domain decides whether
//! this participant may join now, and the relay carries the rest. `Join` carries both
//! directions on one stream; browsers, which cannot stream requests over gRPC-Web,
//! use `Open` (the broker's half) and `Signal` (one call per client message).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::scheduling::consultation_id;
use super::convert::session::{from_participant, to_participant};
use super::error::ApiError;
use super::gate::{AuditTarget, Call, Gate};
use super::scheduling::{consultation_target, load_authorized};
use crate::audit::{Actor, now_micros};
use crate::auth::web_session::new_session_id;
use crate::domain::InvalidField;
use crate::domain::consultation::Consultation;
use crate::domain::policy::Action;
use crate::domain::session;
use crate::proto::v1 as pb;
use crate::proto::v1::session_service_server::SessionService;
use crate::proto::v1::signal_request::Message as In;
use crate::proto::v1::signal_response::Message as Out;
use crate::relay::Relay;
use crate::relay::room::Member;
use crate::relay::signal::{FromParticipant, ParticipantInfo, ToParticipant};
use crate::store::SharedStore;

/// How long a new stream may take to say which consultation it joins.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub type SignalStream = Pin<Box<dyn Stream<Item = Result<pb::SignalResponse, Status>> + Send>>;

pub struct Session {
    gate: Gate,
    store: SharedStore,
    relay: Relay,
    /// The participants of `Open` streams, by channel id.
    channels: Arc<Mutex<HashMap<String, OpenChannel>>>,
}

impl Session {
    pub fn new(gate: Gate, relay: Relay) -> Self {
        Self {
            store: gate.store().clone(),
            gate,
            relay,
            channels: Arc::default(),
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

/// A participant admitted to a session, before a transport carries their signaling.
struct Entered {
    consultation: Consultation,
    member: Arc<Member>,
    actor: Actor,
    outbox: mpsc::Receiver<ToParticipant>,
}

/// An `Open` stream's participant, reachable by `Signal` under its channel id.
#[derive(Clone)]
struct OpenChannel {
    user: String,
    consultation: Consultation,
    member: Arc<Member>,
}

impl Session {
    /// Admits the caller to the live session of consultation `requested`.
    async fn enter(
        &self,
        call: &Call,
        requested: &str,
        field_name: &str,
    ) -> Result<Entered, Status> {
        let id = call
            .check(
                consultation_id(requested, field_name),
                &AuditTarget::unknown(),
            )
            .await?;
        let consultation = load_authorized(call, &self.store, &id).await?;
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
        let (out, outbox) = mpsc::channel::<ToParticipant>(256);
        let entered = self
            .relay
            .enter(&consultation, participant, actor.clone(), out)
            .await
            .map_err(ApiError::from);
        let member = call.check(entered, &target).await?;
        Ok(Entered {
            consultation,
            member,
            actor,
            outbox,
        })
    }
}

/// Hands one participant message to the relay. `Err` carries why the participant's
/// signaling must stop (they have been told).
async fn relay_message(
    relay: &Relay,
    consultation: &Consultation,
    member: &Arc<Member>,
    message: FromParticipant,
) -> Result<(), &'static str> {
    let signaled = relay.signal(&consultation.id, member, message).await;
    match signaled {
        Ok(()) => Ok(()),
        // The session ended as this message crossed it; the participant has been
        // told why.
        Err(crate::relay::RelayError::NotInSession(_)) => Err("session ended"),
        Err(error) => {
            tracing::info!(%error, user = member.user(), "signaling message refused");
            let text = ApiError::from(error).to_string();
            member.send(ToParticipant::Ended(text)).await;
            Err("signaling error")
        }
    }
}

#[tonic::async_trait]
impl SessionService for Session {
    type JoinStream = SignalStream;
    type OpenStream = SignalStream;

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
        let Entered {
            consultation,
            member,
            actor,
            mut outbox,
        } = self
            .enter(&call, &requested, "join.consultation_id")
            .await?;

        // Broker → participant: ends after the session-ended message.
        let (responses, stream) = mpsc::channel::<Result<pb::SignalResponse, Status>>(256);
        tokio::spawn(async move {
            while let Some(message) = outbox.recv().await {
                let last = message.is_last();
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
                            if let Err(reason) =
                                relay_message(&relay, &consultation, &member, message).await
                            {
                                break reason;
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

    async fn open(
        &self,
        request: Request<pb::JoinSession>,
    ) -> Result<Response<SignalStream>, Status> {
        let call = self.gate.admit(&request, Action::JoinSession).await?;
        let requested = request.into_inner().consultation_id;
        let Entered {
            consultation,
            member,
            actor,
            mut outbox,
        } = self.enter(&call, &requested, "consultation_id").await?;
        let channel = new_session_id();
        self.channels.lock().await.insert(
            channel.clone(),
            OpenChannel {
                user: member.user().to_owned(),
                consultation: consultation.clone(),
                member: member.clone(),
            },
        );

        // Broker → participant, until the session ends for them or the client goes.
        let (responses, stream) = mpsc::channel::<Result<pb::SignalResponse, Status>>(256);
        let relay = self.relay.clone();
        let channels = self.channels.clone();
        tokio::spawn(async move {
            let reason = loop {
                // The outbox first, so that a queued `ended` still reaches the client.
                let next = tokio::select! {
                    biased;
                    next = outbox.recv() => next,
                    () = responses.closed() => break "closed the stream",
                    () = member.ended() => break "left",
                };
                let Some(message) = next else {
                    break "session ended";
                };
                let last = message.is_last();
                let mut response = to_participant(message);
                if let Some(Out::Joined(joined)) = &mut response.message {
                    joined.channel = channel.clone();
                }
                if responses.send(Ok(response)).await.is_err() {
                    break "closed the stream";
                }
                if last {
                    break "session ended";
                }
            };
            channels.lock().await.remove(&channel);
            relay.leave(&consultation, &member, actor, reason).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(stream))))
    }

    async fn signal(
        &self,
        request: Request<pb::SignalMessage>,
    ) -> Result<Response<pb::SignalAck>, Status> {
        let call = self.gate.admit(&request, Action::JoinSession).await?;
        let pb::SignalMessage { channel, message } = request.into_inner();
        let open = self.channels.lock().await.get(&channel).cloned();
        let Some(open) = open.filter(|open| open.user == call.principal.user.as_str()) else {
            // Another user's channel is as unknown to the caller as a closed one.
            let error = ApiError::NotFound(
                "channel: no open session stream of yours has this channel".into(),
            );
            return Err(call.refuse(error, &AuditTarget::unknown()).await);
        };
        let target = consultation_target(&open.consultation);
        let parsed = match message {
            Some(message) if !matches!(message.message, Some(In::Join(_))) => {
                from_participant(message).map_err(|invalid| {
                    InvalidField::new(format!("message.{}", invalid.field), invalid.problem)
                })
            }
            Some(_) => Err(InvalidField::new(
                "message.join",
                "join belongs to Open, not Signal",
            )),
            None => Err(InvalidField::new("message", "is required")),
        };
        let message = call.check(parsed, &target).await?;
        if message == FromParticipant::Leave {
            self.channels.lock().await.remove(&channel);
            self.relay
                .leave(
                    &open.consultation,
                    &open.member,
                    Actor::from(&call.principal),
                    "left",
                )
                .await;
            return Ok(Response::new(pb::SignalAck {}));
        }
        if let Err(reason) =
            relay_message(&self.relay, &open.consultation, &open.member, message).await
        {
            let error = ApiError::FailedPrecondition(format!("the session stream ended: {reason}"));
            return Err(call.refuse(error, &target).await);
        }
        Ok(Response::new(pb::SignalAck {}))
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
