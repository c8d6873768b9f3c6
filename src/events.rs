//! Live consultation events inside one broker node: every change is published here,
//! and each `Watch` stream passes on those its caller may see.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::domain::consultation::Consultation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A new booking.
    Created,
    /// Any change to an existing consultation.
    Changed,
    /// A new urgent request for the on-call pool.
    UrgentRequest,
    /// The clinic side has joined and waits for the doctor.
    PatientWaiting,
    /// An urgent request went unanswered and was offered more widely.
    Escalated,
}

#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub consultation: Consultation,
    pub at: OffsetDateTime,
}

/// The node's event hub. Cheap to clone.
#[derive(Clone)]
pub struct ConsultationEvents {
    sender: broadcast::Sender<Arc<Notice>>,
    closed: CancellationToken,
}

impl Default for ConsultationEvents {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl ConsultationEvents {
    /// A watcher more than `capacity` events behind is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
            closed: CancellationToken::new(),
        }
    }

    pub fn publish(&self, kind: NoticeKind, consultation: &Consultation) {
        let notice = Notice {
            kind,
            consultation: consultation.clone(),
            at: crate::audit::now_micros(),
        };
        // Nobody watching is fine.
        let _ = self.sender.send(Arc::new(notice));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.sender.subscribe()
    }

    /// Cancelled when the server shuts down, so that watch streams end and let the
    /// server drain.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    pub fn close(&self) {
        self.closed.cancel();
    }
}
