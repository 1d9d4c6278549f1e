//! What the tests that run a DUT file's whole suite share
//! (`foreign_devices.rs`, `mcu_qemu.rs`): the run, and the generated docs'
//! outcome tables (`docs/FOREIGN-DEVICES.md`, `docs/MCU-DEVICE.md`).
#![allow(dead_code)] // each test binary uses its own part of it

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use sacbench_suites::model::{Outcome, RunReport};

/// The suite (`sacbench-suite`) on the DUT file `dut` into `out`: the
/// `only` cases (all when empty), with `fault` switched on; its report and
/// everything it printed.
pub fn run(
    suite: &str,
    dut: &Path,
    out: &Path,
    fault: Option<&str>,
    only: &[&str],
) -> (RunReport, String) {
    let mut cmd = Command::new(suite);
    cmd.env("SACBENCH_DUT", dut)
        .env("SACBENCH_OUT", out)
        .env_remove("SACBENCH_FAULT")
        .env_remove("SACBENCH_RIG")
        .env_remove("SACBENCH_ONLY");
    if let Some(f) = fault {
        cmd.env("SACBENCH_FAULT", f);
    }
    if !only.is_empty() {
        cmd.env("SACBENCH_ONLY", only.join(","));
    }
    let output = cmd.output().expect("the suite runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = sacbench_suites::report::read_run(out)
        .unwrap_or_else(|e| panic!("no report ({e:#}); the suite said:\n{text}"));
    (report, text)
}

/// Appends one row per case: id and title, the outcome `expected` gives it
/// and why (self-tests say so; no reason: "—").
pub fn rows(out: &mut String, expected: impl Fn(&str) -> (Outcome, &'static str)) {
    for c in sacbench_suites::cases::all() {
        let (outcome, why) = expected(c.id);
        let outcome = serde_json::to_value(outcome).expect("an outcome serialises");
        let _ = writeln!(
            out,
            "| {} {} | {} | {} |",
            c.id,
            c.title,
            outcome.as_str().unwrap_or("?"),
            match (c.self_test, why) {
                (true, _) => "a self-test of the hub",
                (false, "") => "—",
                (false, why) => why,
            }
        );
    }
}
