//! An interrupted run (SIGTERM, as Ctrl-C or a CI timeout sends) stops
//! starting cases, aborts the running one (an `error`: nothing is said of
//! the device), writes the report of what ran marked interrupted, exits
//! 130, and `cargo xtask report` (SACBENCH_SUMMARISE) reads it.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sacbench_suites::model::Outcome;

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");

#[test]
fn sigterm_leaves_a_readable_report_of_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // One case at a time, the long ones first (NI-05, NI-06: scans of
    // seconds), then NI-04: NI-05 finishes, NI-06 is running when the
    // signal comes, and NI-04 never starts.
    let mut suite = Command::new(SUITE)
        .args(["--test-threads", "1"])
        .env("SACBENCH_OUT", &out)
        .env("SACBENCH_ONLY", "NI-04,NI-05,NI-06")
        .env_remove("SACBENCH_FAULT")
        .env_remove("SACBENCH_DUT")
        .env_remove("SACBENCH_RIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(suite.stdout.take().unwrap());
    let mut lines = stdout.lines().map_while(Result::ok);
    // libtest prints a case's line when it finished: wait for NI-05's.
    let first = lines
        .by_ref()
        .find(|l| l.starts_with("test ") && (l.ends_with(" ok") || l.contains("FAILED")))
        .expect("a case finished");
    assert!(first.contains("NI-05"), "{first}");
    // NI-06 is starting now: interrupt.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(suite.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let rest: Vec<String> = lines.collect();
    let status = suite.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut suite.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}\n{rest:?}");
    assert!(err.contains("interrupted (SIGTERM)"), "{err}");
    let report = sacbench_suites::report::read_run(&out).expect("a report of what ran");
    assert_eq!(report.interrupted.as_deref(), Some("SIGTERM"));
    let outcome = |id: &str| {
        report
            .cases
            .iter()
            .find(|c| c.id == id)
            .map(|c| (c.outcome, c.seen.clone()))
    };
    assert_eq!(outcome("NI-05").map(|o| o.0), Some(Outcome::Passed));
    assert!(
        outcome("NI-04").is_none(),
        "a case started after the signal"
    );
    // Interrupted while running: the bench's, not the device's.
    let (o, seen) = outcome("NI-06").expect("the running case is reported");
    assert!(
        o == Outcome::Error && seen.contains("interrupted"),
        "{o:?} {seen}"
    );
    // `cargo xtask report DIR` reads it: an error outcome is exit 2.
    let s = Command::new(SUITE)
        .env("SACBENCH_SUMMARISE", &out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("interrupted"), "{text}");
    assert_eq!(s.status.code(), Some(2), "{text}");
}
