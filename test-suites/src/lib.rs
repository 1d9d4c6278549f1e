//! The conformance suites of `docs/CASES.md` (NI, MT, KR, OTA, CD, GW),
//! run against a rig, with verdicts backed by evidence and written as
//! reports. `main.rs` is the cargo-test-compatible harness.
#![forbid(unsafe_code)]

pub mod case;
pub mod case_board;
pub mod case_hub;
pub mod cases;
pub mod events;
pub mod interrupt;
pub mod model;
pub mod preflight;
pub mod report;
pub mod runner;
pub mod standards;
pub mod timeline_record;
