//! Fixture hub for sacbench.
#![forbid(unsafe_code)]

pub mod admin;
pub mod client;
pub mod clock;
pub mod est;
pub mod https;
pub mod hub;
mod hub_state;
pub mod journal;
pub mod mqtt_server;
pub mod pki;
pub mod selfcheck;
pub mod serial;
pub mod session;
pub mod store;
pub mod tls;
pub mod topics;
mod trouble;
