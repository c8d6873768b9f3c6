//! teleconsult: a telemedicine consultation broker.

pub mod audit;
pub mod domain;
pub mod store;

/// Generated protobuf and gRPC code for `proto/teleconsult/v1`.
pub mod proto {
    pub mod v1 {
        tonic::include_proto!("teleconsult.v1");
    }

    /// The encoded descriptors of every proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("teleconsult_descriptor");
}
