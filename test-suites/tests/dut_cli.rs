//! The suite's checks of the device under test before any case: a bad DUT
//! file, or a `--fault` the device does not offer, is one line and exit 2,
//! and no run directory is made.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::process::Command;

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");

/// The suite with a clean run environment, writing to `out`.
fn suite_cmd(out: &std::path::Path) -> Command {
    let mut c = Command::new(SUITE);
    c.env("SACBENCH_OUT", out)
        .env_remove("SACBENCH_DUT")
        .env_remove("SACBENCH_RIG")
        .env_remove("SACBENCH_FAULT")
        .env_remove("SACBENCH_ONLY");
    c
}

fn suite(
    dut: &std::path::Path,
    fault: Option<&str>,
    out: &std::path::Path,
) -> (Option<i32>, String) {
    let mut c = Command::new(SUITE);
    c.env("SACBENCH_DUT", dut)
        .env("SACBENCH_OUT", out)
        .env_remove("SACBENCH_RIG")
        .env_remove("SACBENCH_FAULT");
    if let Some(f) = fault {
        c.env("SACBENCH_FAULT", f);
    }
    let o = c.output().expect("the suite runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_bad_dut_file_is_one_line_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let dut = dir.path().join("dut.toml");
    std::fs::write(
        &dut,
        "name = \"x\"\nimplements = [\"c2d\"]\n[emulated]\ncommand = [\"x\"]\n[events]\ncommand_applied = '^applied (\\S+)'\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, err) = suite(&dut, None, &out);
    assert_eq!(code, Some(2), "{err}");
    let want = format!(
        "{}:6: `events.command_applied`: no named group `mid`",
        dut.display()
    );
    assert!(
        err.contains(&want) && err.lines().count() == 1,
        "{err:?}, wanted {want:?}"
    );
    assert!(!out.exists(), "no run directory for a bad DUT file");
}

#[test]
fn a_fault_the_device_does_not_offer_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let reference = sacbench_suites::case::reference_dut_file();
    let (code, err) = suite(&reference, Some("no-such-fault"), &out);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--fault no-such-fault")
            && err.contains("listen-debug")
            && err.lines().count() == 1,
        "{err}"
    );
    let foreign = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/azure-node-device/dut.toml");
    let (code, err) = suite(&foreign, Some("listen-debug"), &out);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("offers no fault switches"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_filter_that_matches_no_case_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = suite_cmd(&out).arg("no-such-case").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no case matches the filter \"no-such-case\""),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_missing_program_stops_the_run_naming_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let empty = dir.path().join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    // The emulated rig and its cases run no program; the reference device's
    // legacy-TLS fault runs openssl.
    let o = suite_cmd(&out)
        .env("PATH", &empty)
        .env("SACBENCH_ONLY", "NI-01")
        .env("SACBENCH_FAULT", "allow-tls10")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`openssl` (apt-get install openssl) for NI-01"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists(), "nothing ran, nothing written");
}

/// A lab rig whose hardware is missing, or that can run none of the
/// selected cases, stops before any case (not a run of FAILED or ignored).
#[test]
fn a_lab_rig_is_checked_before_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let rig = dir.path().join("rig.toml");
    let run = |text: &str| {
        std::fs::write(&rig, text).unwrap();
        let o = Command::new(SUITE)
            .env("SACBENCH_RIG", &rig)
            .env("SACBENCH_OUT", &out)
            .env_remove("SACBENCH_DUT")
            .env_remove("SACBENCH_FAULT")
            .env_remove("SACBENCH_ONLY")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let base = "[dut]\nipv4 = \"192.0.2.20\"\n\n[hub]\nipv4 = \"127.0.0.1\"\n\n[provisioning]\ncommand = [\"true\", \"{provisioning}\"]\n";
    let (code, err) = run(base);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "the rig can run none of the selected device cases (this rig has no power control)"
        ),
        "{err}"
    );
    let (code, err) = run(&format!(
        "{base}\n[console]\nport = \"/nonexistent/ttyUSB7\"\nbaud = 115200\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`console.port` /nonexistent/ttyUSB7"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());
}
