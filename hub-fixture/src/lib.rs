//! Fixture hub for sacbench.
#![forbid(unsafe_code)]

pub mod clock;
pub mod pki;
pub mod journal;
pub mod topics;
pub mod tls;
pub mod store;
pub mod session;
pub mod hub;
pub mod mqtt_server;
pub mod https;
pub mod est;
pub mod admin;
pub mod client;
pub mod selfcheck;
