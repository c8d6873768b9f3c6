//! teleconsult: a telemedicine consultation broker.
//!
//! Layers, in the direction data flows: [`api`] (gRPC services, thin) asks [`domain`]
//! (pure rules) and calls [`store`] (persistence with the [`audit`] chain); [`auth`]
//! holds the PKI and TLS; [`server`] wires them onto a socket.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod directory_file;
pub mod domain;
pub mod events;
pub mod relay;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod telemetry;

/// Generated protobuf and gRPC code for `proto/teleconsult/v1`.
pub mod proto {
    pub mod v1 {
        tonic::include_proto!("teleconsult.v1");
    }

    /// The encoded descriptors of every proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("teleconsult_descriptor");
}
