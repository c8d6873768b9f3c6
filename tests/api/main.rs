//! Integration tests against the real broker: real mTLS, a real database, real gRPC
//! clients over loopback.

mod dev_broker;
mod helpers;

mod audit;
mod audit_api;
mod authorization;
mod cli;
mod cli_client;
mod console;
mod crash;
mod demo;
mod directory;
mod health;
mod interop;
mod scheduling;
mod session;
mod tls;
