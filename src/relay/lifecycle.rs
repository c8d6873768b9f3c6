//! The lifecycle operations the live session performs: the first admitted join moves
//! a consultation to IN_SESSION, the end of the session to AWAITING_REPORT. They go
//! through the same store interface (and so the same audit chain) as every RPC.

use serde_json::json;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::domain::consultation::{
    Consultation, ConsultationId, ConsultationState, Event, LifecycleError,
};
use crate::events::{ConsultationEvents, NoticeKind};
use crate::store::{SharedStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionLifecycleError {
    #[error("consultation {0} not found")]
    NotFound(ConsultationId),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn read(
    store: &SharedStore,
    id: &ConsultationId,
) -> Result<Consultation, SessionLifecycleError> {
    store
        .consultation(id)
        .await?
        .ok_or_else(|| SessionLifecycleError::NotFound(id.clone()))
}

async fn apply(
    store: &SharedStore,
    events: &ConsultationEvents,
    consultation: Consultation,
    actor: Actor,
    action: &str,
    event: Event,
) -> Result<Consultation, SessionLifecycleError> {
    let next = consultation.apply(event)?;
    let audit = AuditEntry::new(
        actor,
        action,
        format!("consultation:{}", consultation.id),
        Outcome::Ok,
    )
    .target_institution(&consultation.inviting_institution)
    .details(json!({
        "from": consultation.state.as_str(),
        "to": next.state.as_str(),
        "version": next.version,
    }));
    store.update_consultation(&next, audit).await?;
    events.publish(NoticeKind::Changed, &next);
    Ok(next)
}

/// The first participant was admitted: SCHEDULED → IN_SESSION. Refused without the
/// patient's recorded consent. Participants who join at the same moment race to start
/// it; whoever loses finds the session started and joins it.
pub async fn start_session(
    store: &SharedStore,
    events: &ConsultationEvents,
    id: &ConsultationId,
    actor: Actor,
) -> Result<Consultation, SessionLifecycleError> {
    // Each lost race means the consultation moved on; a few are plenty.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let consultation = read(store, id).await?;
        if consultation.state == ConsultationState::InSession {
            return Ok(consultation);
        }
        match apply(
            store,
            events,
            consultation,
            actor.clone(),
            "session.start",
            Event::StartSession,
        )
        .await
        {
            // Someone else changed it since it was read: read it again.
            Err(SessionLifecycleError::Store(StoreError::Concurrent { .. })) if attempts < 5 => {
                continue;
            }
            result => return result,
        }
    }
}

/// The doctor ended the session, or everyone left: IN_SESSION → AWAITING_REPORT.
pub async fn end_session(
    store: &SharedStore,
    events: &ConsultationEvents,
    id: &ConsultationId,
    actor: Actor,
) -> Result<Consultation, SessionLifecycleError> {
    let consultation = read(store, id).await?;
    apply(
        store,
        events,
        consultation,
        actor,
        "session.end",
        Event::EndSession,
    )
    .await
}
