//! The broker's gRPC server: mutual TLS on every connection, the teleconsult services,
//! gRPC health and server reflection.

mod audit_tasks;
mod incoming;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::api::gate::Gate;
use crate::api::{Account, Audit, Directory, Scheduling, Session};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::auth::Channel;
use crate::auth::tls::{self, HandshakeRefusal, TlsFiles};
use crate::console::{Assets, ConsoleService, ConsoleSettings};
use crate::events::ConsultationEvents;
use crate::proto::v1::account_service_server::AccountServiceServer;
use crate::proto::v1::audit_service_server::AuditServiceServer;
use crate::proto::v1::directory_service_server::DirectoryServiceServer;
use crate::proto::v1::scheduling_service_server::SchedulingServiceServer;
use crate::proto::v1::session_service_server::SessionServiceServer;
use crate::relay::{Relay, RelaySettings};
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::SharedStore;

pub use audit_tasks::{AuditSettings, AuditTaskError};
pub use incoming::HandshakeLimits;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Audit(#[from] AuditTaskError),
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
}

/// Everything the server needs besides its socket.
pub struct ServerSettings {
    pub tls: TlsFiles,
    pub handshake: HandshakeLimits,
    /// After shutdown is asked for, how long calls in flight may take to finish
    /// before the remaining connections are closed.
    pub shutdown_grace: Duration,
    pub scheduler: SchedulerSettings,
    pub relay: RelaySettings,
    /// Signed checkpoints of the audit log and forwarding to an audit repository.
    pub audit: AuditSettings,
    /// The web console's HTTPS port, if the broker serves one.
    pub console: Option<ConsoleSettings>,
}

/// Serves on `listener` until `shutdown` completes, then stops accepting, lets calls
/// in flight finish and returns.
pub async fn run(
    listener: TcpListener,
    settings: ServerSettings,
    store: SharedStore,
    events: ConsultationEvents,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let (refusals, refused) = mpsc::channel(256);
    let (tls_config, revocations) = tls::server_config(&settings.tls, Some(refusals), &[b"h2"])?;
    let audit_tasks = audit_tasks::AuditTasks::start(&settings.audit, &settings.tls, &store)?;
    let stop = CancellationToken::new();
    let auditor = tokio::spawn(audit_refusals(refused, store.clone()));
    // A shared ICE-TCP port that cannot be bound stops start-up: clinics behind
    // firewalls depend on it.
    let relay = Relay::start(settings.relay.clone(), store.clone(), events.clone())?;
    let scheduler = tokio::spawn(
        Scheduler::new(store.clone(), events.clone(), settings.scheduler).run(stop.clone()),
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DirectoryServiceServer<Directory>>()
        .await;
    health
        .set_serving::<SchedulingServiceServer<Scheduling>>()
        .await;
    health.set_serving::<SessionServiceServer<Session>>().await;
    health.set_serving::<AccountServiceServer<Account>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let gate = Gate::new(
        store.clone(),
        revocations,
        settings.console.as_ref().map(|c| c.session_key.clone()),
    );
    let policy = settings
        .console
        .as_ref()
        .map(|c| c.policy)
        .unwrap_or_default();
    let directory = DirectoryServiceServer::new(Directory::new(gate.clone()));
    let scheduling = SchedulingServiceServer::new(Scheduling::new(gate.clone(), events.clone()));
    let session = SessionServiceServer::new(Session::new(gate.clone(), relay.clone()));
    let audit = AuditServiceServer::new(Audit::new(gate.clone()));
    let account = AccountServiceServer::new(Account::new(gate, policy));

    // Both ports stop together: the first to be told tells the other.
    let stopping = CancellationToken::new();
    let console = match settings.console {
        Some(console) => {
            let mut routes = tonic::service::RoutesBuilder::default();
            routes
                .add_service(health_service.clone())
                .add_service(directory.clone())
                .add_service(scheduling.clone())
                .add_service(session.clone())
                .add_service(audit.clone())
                .add_service(account.clone());
            let service = ConsoleService::new(
                routes.routes().into_axum_router(),
                Assets::new(console.assets_dir),
            );
            let app = axum::Router::new().fallback_service(service);
            let (cert, key) = console.certificate.clone().unwrap_or_else(|| {
                (
                    settings.tls.server_cert.clone(),
                    settings.tls.server_key.clone(),
                )
            });
            let config = tls::console_config(&cert, &key)?;
            let incoming = incoming::tls_incoming(
                console.listener,
                config,
                settings.handshake,
                stop.clone(),
                Channel::Console,
            );
            let stopped = stopping.clone();
            Some(tokio::spawn(
                Server::builder()
                    .accept_http1(true)
                    .add_routes(tonic::service::Routes::from(app))
                    .serve_with_incoming_shutdown(incoming, async move {
                        stopped.cancelled().await;
                    }),
            ))
        }
        None => None,
    };

    let incoming = incoming::tls_incoming(
        listener,
        tls_config,
        settings.handshake,
        stop.clone(),
        Channel::Mutual,
    );
    let (signalled, drain) = tokio::sync::oneshot::channel::<()>();
    let serve = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(directory)
        .add_service(scheduling)
        .add_service(session)
        .add_service(audit)
        .add_service(account)
        .serve_with_incoming_shutdown(incoming, async {
            tokio::select! {
                () = shutdown => {}
                () = stopping.cancelled() => {}
            }
            stopping.cancel();
            tracing::info!("shutting down: no new connections, finishing calls in flight");
            health
                .set_not_serving::<DirectoryServiceServer<Directory>>()
                .await;
            health
                .set_not_serving::<SchedulingServiceServer<Scheduling>>()
                .await;
            health
                .set_not_serving::<SessionServiceServer<Session>>()
                .await;
            health
                .set_not_serving::<AccountServiceServer<Account>>()
                .await;
            // Live sessions are told and closed so that their streams end.
            relay.shutdown().await;
            // Long-lived watch streams end so that the server can drain.
            events.close();
            stop.cancel();
            let _ = signalled.send(());
        });
    let grace = settings.shutdown_grace;
    let served = tokio::select! {
        served = serve => served,
        () = async {
            match drain.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended without being asked to: let `serve` report why.
                Err(_) => std::future::pending().await,
            }
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "calls still in flight after the grace period; closing their connections");
            Ok(())
        }
    };
    stop.cancel();
    stopping.cancel();
    if let Some(console) = console {
        match tokio::time::timeout(grace + Duration::from_secs(1), console).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the console port stopped with an error"),
            Ok(_) => {}
            Err(_) => tracing::warn!("the console port did not stop in time"),
        }
    }
    let _ = scheduler.await;
    // The verifier holds the refusal sender; once the server is gone the auditor drains
    // what is queued and ends.
    drop(store);
    // Bounded: a connection tonic could not close would keep the sender alive.
    let _ = tokio::time::timeout(Duration::from_secs(5), auditor).await;
    // Last, once nothing else records: the final checkpoint, then the forwarder sends
    // what is left.
    audit_tasks.stop().await;
    served?;
    tracing::info!("server stopped");
    Ok(())
}

/// Writes handshake refusals to the audit log. The claimed identity is recorded as
/// such: the certificate failed verification, so it proves nothing.
async fn audit_refusals(mut refused: mpsc::Receiver<HandshakeRefusal>, store: SharedStore) {
    while let Some(refusal) = refused.recv().await {
        let actor = match &refusal.claimed {
            Some(claimed) => Actor {
                user: claimed.user.clone(),
                institution: claimed.institution.clone(),
                role: claimed.role.clone(),
                certificate_fingerprint: claimed.fingerprint.clone(),
            },
            None => Actor::default(),
        };
        let serial = refusal.claimed.as_ref().map(|c| c.serial.clone());
        let entry = AuditEntry::new(actor, "tls.handshake", "-", Outcome::Denied).details(json!({
            "reason": refusal.reason,
            "identity_verified": false,
            "certificate_serial": serial,
        }));
        if let Err(error) = store.append_audit(entry).await {
            tracing::error!(%error, "could not audit a refused handshake");
        }
    }
}

/// Ensures the process-wide rustls crypto provider is installed; call once at start-up.
pub fn init_crypto() {
    tls::install_crypto_provider();
}

/// For callers that want the whole TLS config without serving (e.g. `config check`).
pub fn check_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    Ok(tls::server_config(files, None, &[b"h2"])?.0)
}
