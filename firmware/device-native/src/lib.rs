//! The emulated board: the reference device (`device-core`) with real IO —
//! a flash file, an emulated MCUboot-style bootloader, RTT logs, and a
//! tokio/rustls shell for MQTT, EST and firmware download.
#![deny(unsafe_code)]

pub mod app;
pub mod bootloader;
pub mod clock;
pub mod flash;
pub mod https;
pub mod provisioning;
pub mod rtt;
pub mod tls;
