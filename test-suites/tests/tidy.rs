//! Tidy checks on the suites' source (as rust-analyzer's `tidy` tests do):
//! a verdict is the device's, so no case may depend on the emulated rig's
//! internals or read the reference firmware's own console text. What a case
//! may read of a console is a named event of the DUT file (`events.rs`).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("source dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("source");
            out.push((p, text));
        }
    }
    out.sort();
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The GW cases run sacbench's own reference gateway on its own emulated
/// rig (`GatewayRig`), whose journal they read: they apply only to DUTs that
/// declare `modbus-gateway` (see `cases/gw.rs`).
const EXEMPT: &[&str] = &["gw.rs"];

fn case_files() -> Vec<(PathBuf, String)> {
    sources(&root().join("src/cases"))
        .into_iter()
        .filter(|(p, _)| !EXEMPT.iter().any(|e| p.ends_with(e)))
        .collect()
}

#[test]
fn no_case_imports_the_emulated_rig() {
    for (path, text) in case_files() {
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("emulated::"),
                "{}:{}: a case reaches into the emulated rig: {line}",
                path.display(),
                n + 1
            );
        }
    }
}

#[test]
fn no_case_reads_the_console_but_through_events() {
    for (path, text) in case_files() {
        for (n, line) in text.lines().enumerate() {
            for forbidden in ["wait_console", "console_lines", "LogSource::Console"] {
                assert!(
                    !line.contains(forbidden),
                    "{}:{}: a case reads console text ({forbidden}); use the DUT file's events: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

/// The literal text of the reference firmware's event patterns (its DUT
/// file) and its log prefixes: none of it may appear in a case.
fn reference_texts() -> Vec<String> {
    let dut = std::fs::read_to_string(root().join("../firmware/device-native/dut.toml"))
        .expect("reference DUT file");
    let mut texts: Vec<String> = ["\"app: ", "\"boot: ", "\"flash: ", "signal: 1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut in_events = false;
    for line in dut.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_events = line == "[events]";
        } else if in_events {
            if let Some((_, pattern)) = line.split_once('=') {
                // The longest run of plain characters of the pattern.
                let pattern = pattern.trim().trim_matches('\'');
                let literal: String = pattern
                    .trim_start_matches('^')
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || " :-_".contains(*c))
                    .collect();
                if literal.trim().len() >= 8 {
                    texts.push(literal.trim().to_string());
                }
            }
        }
    }
    texts
}

#[test]
fn no_case_matches_the_reference_firmwares_text() {
    let texts = reference_texts();
    assert!(
        texts.iter().any(|t| t.starts_with("app: command applied")),
        "the reference DUT file's patterns were read: {texts:?}"
    );
    let mut files = case_files();
    files.extend(
        sources(&root().join("src"))
            .into_iter()
            .filter(|(p, _)| p.ends_with("case.rs") || p.ends_with("events.rs")),
    );
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for t in &texts {
                assert!(
                    !line.contains(t.as_str()),
                    "{}:{}: a case matches the reference firmware's text {t:?}: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn the_tidy_checks_can_fail() {
    // The checks above look for these very strings: prove they would see them.
    let line = "case.wait_console(GUARD, |l| l.starts_with(\"app: connection failed\"))";
    assert!(line.contains("wait_console"));
    assert!(reference_texts().iter().any(|t| line.contains(t.as_str())));
}

/// The suite owns the hub; the rigs only say where it listens: nothing of
/// the fixture hub (nor its SQLite or HTTP server) is linked into
/// `sacbench-rig`.
#[test]
fn the_rig_crate_knows_no_hub() {
    let lock = sacbench_test_support::deps::Lock::read();
    let rig = lock.reachable("sacbench-rig");
    // The walk sees the rig's own dependencies (else it proves nothing)...
    for needed in ["rtnetlink", "tokio-modbus", "sacbench-provisioning"] {
        assert!(rig.contains(needed), "{needed} not reached: {rig:?}");
    }
    let linked: Vec<&str> = ["hub-fixture", "rusqlite", "axum"]
        .into_iter()
        .filter(|f| rig.contains(*f))
        .collect();
    assert!(
        linked.is_empty(),
        "sacbench-rig links {linked:?}; `cargo tree -p sacbench-rig -e normal -i <name>` shows why"
    );
}
