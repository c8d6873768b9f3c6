//! The lifecycle operations the live session performs: the first admitted join moves
//! a consultation to IN_SESSION, the end of the session to AWAITING_REPORT. They go
//! through the same store interface (and so the same audit chain) as every RPC.

use serde_json::json;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::domain::consultation::{Consultation, ConsultationId, Event, LifecycleError};
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

async fn apply(
    store: &SharedStore,
    events: &ConsultationEvents,
    id: &ConsultationId,
    actor: Actor,
    action: &str,
    event: Event,
) -> Result<Consultation, SessionLifecycleError> {
    let consultation = store
        .consultation(id)
        .await?
        .ok_or_else(|| SessionLifecycleError::NotFound(id.clone()))?;
    let next = consultation.apply(event)?;
    let audit = AuditEntry::new(actor, action, format!("consultation:{id}"), Outcome::Ok)
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
/// patient's recorded consent.
pub async fn start_session(
    store: &SharedStore,
    events: &ConsultationEvents,
    id: &ConsultationId,
    actor: Actor,
) -> Result<Consultation, SessionLifecycleError> {
    apply(
        store,
        events,
        id,
        actor,
        "session.start",
        Event::StartSession,
    )
    .await
}

/// The doctor ended the session, or everyone left: IN_SESSION → AWAITING_REPORT.
pub async fn end_session(
    store: &SharedStore,
    events: &ConsultationEvents,
    id: &ConsultationId,
    actor: Actor,
) -> Result<Consultation, SessionLifecycleError> {
    apply(store, events, id, actor, "session.end", Event::EndSession).await
}
