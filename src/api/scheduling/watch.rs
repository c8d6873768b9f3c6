//! `Watch`: live consultation events, filtered to what the caller may see.

use std::pin::Pin;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Scheduling;
use crate::api::convert::scheduling::notice_to_proto;
use crate::api::gate::AuditTarget;
use crate::domain::policy::{self, Action, Target};
use crate::proto::v1 as pb;

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::ConsultationEvent, Status>> + Send>>;

impl Scheduling {
    pub(super) async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let call = self.gate.admit(&request, Action::Watch).await?;
        call.authorize(&Target::none(), &AuditTarget::new("consultations", None))
            .await?;
        let principal = call.principal;
        let mut events = self.events.subscribe();
        let closed = self.events.closed();
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    () = closed.cancelled() => return,
                    () = sender.closed() => return,
                    received = events.recv() => received,
                };
                let message = match notice {
                    Ok(notice) if policy::can_see(&principal, &notice.consultation) => {
                        Ok(notice_to_proto(&notice))
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Err(Status::resource_exhausted(format!(
                            "this watcher fell {missed} events behind; list consultations and watch again"
                        )))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let last = message.is_err();
                if sender.send(message).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
