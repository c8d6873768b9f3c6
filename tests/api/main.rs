//! Integration tests against the real broker: real mTLS, a real database, real gRPC
//! clients over loopback.

mod helpers;

mod audit;
mod authorization;
mod cli;
mod cli_client;
mod directory;
mod health;
mod interop;
mod scheduling;
mod session;
mod tls;
