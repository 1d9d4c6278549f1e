//! The image's fault switches: names from device-core's catalogue
//! (`device_core::faults`), chosen **at build time** with
//! cargo features named as the catalogue names them (`--features
//! listen-debug,no-dedupe`; `build.rs` makes the list), so one image carries one
//! fault set — the image a firmware team would flash to prove a case can
//! fail — and no default build has any. Printed at boot:
//! `device-mcu: faults=[…]`.
//!
//! Applied here: `listen-debug` (`debugport.rs`: TCP 2323 answered),
//! `no-server-verify` (`verify.rs`: any hub certificate chain accepted),
//! `no-dedupe` (device-core's machine: a command whose `$.mid` was applied is
//! applied again).

use device_core::faults::FaultSet;

/// The checked list from `build.rs` (comma-separated catalogue names).
const LIST: &str = env!("DEVICE_MCU_FAULT_LIST");

/// The faults this image was built with.
pub fn active() -> FaultSet {
    // build.rs checked every name against the same catalogue, so this
    // cannot fail; were it to, the image would run with no fault.
    FaultSet::from_names(LIST.split(',').filter(|n| !n.is_empty())).unwrap_or(FaultSet::NONE)
}

/// The list as printed at boot (`listen-debug,no-dedupe`, or empty).
pub fn list() -> &'static str {
    LIST
}
