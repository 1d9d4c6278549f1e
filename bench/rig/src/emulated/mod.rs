//! The emulated rig: namespaces instead of cables. See [`sandbox`] (the
//! run's private namespaces), [`topology`] (one case's dut ── gw ── hub
//! network) and [`scan`] (the NI scanner).

pub mod rig;
pub mod sandbox;
pub mod scan;
pub mod topology;

pub use rig::{EmulatedRig, EmulatedRigConfig, HUB_HOST};
