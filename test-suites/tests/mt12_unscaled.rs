//! MT-12 on a device whose clock cannot be time-scaled is judged by the
//! idle time between its refused reconnects (`mt_revocation::by_growth`):
//! the path the foreign devices and the MCU image take. The reference
//! device takes it too when its DUT file does not declare `clock_scale`
//! (a copy of its file, in a temporary folder, with the key's path made
//! absolute): it passes, and with `tight-reconnect` (a fixed 100 ms) it
//! fails — the path proven able to fail, not only the time-scaled one the
//! fault matrix runs.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod dut_run;

use std::path::PathBuf;

use sacbench_suites::model::Outcome;

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");

/// The reference device's DUT file without `clock_scale`, in `dir`.
fn unscaled_dut(dir: &std::path::Path) -> PathBuf {
    let native = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/device-native");
    let text = std::fs::read_to_string(native.join("dut.toml")).unwrap();
    let key = std::fs::canonicalize(native.join("../keys/dev-image-signing-ed25519.pem")).unwrap();
    let text = text
        .replace("clock_scale = true", "clock_scale = false")
        .replace(
            "signing_key = \"../keys/dev-image-signing-ed25519.pem\"",
            &format!("signing_key = {:?}", key.display().to_string()),
        );
    assert!(text.contains("clock_scale = false") && text.contains(&key.display().to_string()));
    let file = dir.join("dut.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn mt12_judges_the_idle_time_between_attempts_and_catches_a_tight_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let dut = unscaled_dut(dir.path());
    let (good, bad) = std::thread::scope(|s| {
        let good =
            s.spawn(|| dut_run::run(SUITE, &dut, &dir.path().join("good"), None, &["MT-12"]));
        let bad = s.spawn(|| {
            dut_run::run(
                SUITE,
                &dut,
                &dir.path().join("bad"),
                Some("tight-reconnect"),
                &["MT-12"],
            )
        });
        (good.join().unwrap(), bad.join().unwrap())
    });
    let case = |(report, text): &(sacbench_suites::model::RunReport, String)| {
        let c = report.cases.iter().find(|c| c.id == "MT-12").unwrap();
        (c.outcome, c.seen.clone(), text.clone())
    };
    let (o, seen, text) = case(&good);
    assert!(
        o == Outcome::Passed && seen.contains("growing intervals"),
        "{o:?}: {seen}\n{text}"
    );
    let (o, seen, text) = case(&bad);
    assert!(
        o == Outcome::Failed && seen.contains("did not grow"),
        "{o:?}: {seen}\n{text}"
    );
}
