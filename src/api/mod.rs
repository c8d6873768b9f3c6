//! The gRPC services. Each handler is thin: admit the caller, convert the request,
//! ask the policy, call the store with the audit entry, convert the answer.

mod account;
mod audit;
pub mod convert;
mod directory;
pub mod error;
pub mod gate;
pub mod scheduling;
mod session;

pub use account::Account;
pub use audit::Audit;
pub use directory::Directory;
pub use error::ApiError;
pub use scheduling::Scheduling;
pub use session::Session;
