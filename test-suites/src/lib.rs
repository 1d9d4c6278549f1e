//! The conformance suites of `docs/CASES.md` (NI, MT, KR, OTA, CD, GW),
//! run against a rig, with verdicts backed by evidence and written as
//! reports. `harness` is the cargo-test-compatible harness of the
//! `sacbench-suite` binary and the `conformance` test target.
#![forbid(unsafe_code)]

pub mod case;
pub mod case_board;
pub mod case_hub;
pub mod cases;
pub mod events;
pub mod harness;
pub mod interrupt;
pub mod labgrid_hold;
pub mod model;
pub mod preflight;
pub mod report;
pub mod run_dir;
pub mod runner;
pub mod standards;
pub mod timeline_record;
