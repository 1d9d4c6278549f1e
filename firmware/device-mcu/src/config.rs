//! Build-time network configuration of the **bring-up diagnostic** only
//! (an image whose provisioning region holds no record); a provisioned
//! device takes its address from its record (`provision.rs`).
//!
//! `DEVICE_MCU_IP` (CIDR, default 10.0.17.2/24) and `DEVICE_MCU_PEER`
//! (address:port of the TCP peer, default 10.0.17.1:7700), read at build time.
//!
//! And, for every image, the reconnect backoff's base and the length of a
//! session that resets it: `DEVICE_MCU_BACKOFF_BASE_MS` and
//! `DEVICE_MCU_BACKOFF_STABLE_MS` (defaults device-core's 1000 ms and
//! 60 000 ms; the rig's test images use small ones so an outage's growing
//! delays, and a reset, take seconds).

use device_core::backoff::BackoffConfig;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

/// The device's address and the peer it dials.
pub struct Network {
    /// The interface's address and prefix.
    pub address: Ipv4Cidr,
    /// The TCP peer's address.
    pub peer: Ipv4Address,
    /// The TCP peer's port.
    pub peer_port: u16,
}

const DEFAULT_IP: &str = "10.0.17.2/24";
const DEFAULT_PEER: &str = "10.0.17.1:7700";

/// The configuration this image was built with; a malformed build-time value
/// falls back to the default (and the console line shows what is in use).
pub fn network() -> Network {
    let ip = option_env!("DEVICE_MCU_IP").unwrap_or(DEFAULT_IP);
    let peer = option_env!("DEVICE_MCU_PEER").unwrap_or(DEFAULT_PEER);
    let address = parse_cidr(ip)
        .or_else(|| parse_cidr(DEFAULT_IP))
        .unwrap_or(Ipv4Cidr::new(Ipv4Address::new(10, 0, 17, 2), 24));
    let (peer, peer_port) = parse_endpoint(peer)
        .or_else(|| parse_endpoint(DEFAULT_PEER))
        .unwrap_or((Ipv4Address::new(10, 0, 17, 1), 7700));
    Network {
        address,
        peer,
        peer_port,
    }
}

fn parse_cidr(s: &str) -> Option<Ipv4Cidr> {
    let (addr, len) = s.split_once('/')?;
    Some(Ipv4Cidr::new(addr.parse().ok()?, len.parse().ok()?))
}

/// Parses `a.b.c.d:port`.
pub fn parse_endpoint(s: &str) -> Option<(Ipv4Address, u16)> {
    let (addr, port) = s.rsplit_once(':')?;
    Some((addr.parse().ok()?, port.parse().ok()?))
}

/// The reconnect policy: device-core's defaults (cap 5 min, reset after a
/// session of 60 s), with the base from `DEVICE_MCU_BACKOFF_BASE_MS` and
/// the stable session from `DEVICE_MCU_BACKOFF_STABLE_MS` when they were
/// set at build time (a malformed or out-of-range value — a base under 2 ms
/// or over the cap, a stable session under 1 s — keeps the default).
pub fn backoff() -> BackoffConfig {
    let default = BackoffConfig::default();
    let base = option_env!("DEVICE_MCU_BACKOFF_BASE_MS")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|ms| (2..=default.cap_ms).contains(ms))
        .unwrap_or(default.base_ms);
    let stable = option_env!("DEVICE_MCU_BACKOFF_STABLE_MS")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|ms| *ms >= 1000)
        .unwrap_or(default.stable_session_ms);
    BackoffConfig {
        base_ms: base,
        stable_session_ms: stable,
        ..default
    }
}
