//! The emulated rig: namespaces instead of cables. See [`sandbox`] (the
//! run's private namespaces), [`topology`] (one case's dut ── gw ── hub
//! network), [`rig`] (the reference device as
//! the DUT) and [`gateway`] (the field gateway as the DUT, legacy Modbus
//! devices behind it).

mod board;
mod console;
pub mod dns;
pub mod gateway;
mod gdb_rtt;
mod netlink;
pub mod rig;
pub mod sandbox;
pub mod sntp;
pub mod topology;
mod udp_service;

pub use board::EmulatedSecondBoard;
pub use gateway::{GatewayRig, GatewayRigConfig};
pub use rig::{EmulatedRig, EmulatedRigConfig, FlashHold};
