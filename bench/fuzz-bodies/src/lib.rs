//! The bodies of sacbench's fuzz targets: one `pub fn target(data: &[u8])`
//! per parser that reads bytes the bench does not control (a device's MQTT
//! stream, the hub's stream as the device reads it, firmware images, EST
//! requests, captures, and the rig, DUT and gateway mapping files).
//!
//! Each body is deterministic (no clock, no randomness, no IO but in-memory
//! buffers) and panics only on a real bug: a panic in the code under test,
//! or a broken invariant it asserts (see each body's documentation). The
//! cargo-fuzz crate in `fuzz/` (nightly, libFuzzer) calls them, one target
//! per body; `tests/smoke.rs` replays the checked-in corpus `fuzz/corpus/`
//! and runs proptest-generated inputs through them on stable Rust, as part
//! of `cargo xtask test`. `docs/FUZZING.md` has the commands and the
//! figures of the long runs.

#![forbid(unsafe_code)]

mod device_session;
mod est;
mod files;
mod hub_session;
mod input;
mod mcuboot;
mod pcapng;
#[doc(hidden)]
pub mod seeds;

pub use device_session::device_session;
pub use est::est_csr;
pub use files::{dut_file, gateway_mapping, rig_file};
pub use hub_session::hub_session;
pub use mcuboot::mcuboot_image;
pub use pcapng::pcapng_analysis;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every fuzz target by name (the file name in `fuzz/fuzz_targets/` and
/// the folder in `fuzz/corpus/`), with its body. The smoke test checks
/// that this list, the targets and the corpus folders agree.
pub const TARGETS: &[(&str, Body)] = &[
    ("hub_session", hub_session),
    ("device_session", device_session),
    ("mcuboot_image", mcuboot_image),
    ("est_csr", est_csr),
    ("pcapng_analysis", pcapng_analysis),
    ("rig_file", rig_file),
    ("dut_file", dut_file),
    ("gateway_mapping", gateway_mapping),
];
