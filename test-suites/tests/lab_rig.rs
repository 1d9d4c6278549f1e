//! The suites on a lab rig, end to end, with no hardware: `sacbench-suite`
//! runs with `SACBENCH_RIG=rig.toml` (what `cargo xtask bench --rig` does)
//! against a fake lab board that is wired like a real one:
//!
//! - power and link are coils of a Modbus TCP relay (tokio-modbus server);
//!   switching the power coil starts or kills the emulated board;
//! - the console is a serial port: a pty pair made by `socat`;
//! - the DUT sits alone behind the bench NIC (a veth in a namespace), and
//!   the bench — the suite process, its hub and its capture — runs on the
//!   other side, in the bench's namespace, as on a lab host;
//! - flashing and provisioning are the rig file's commands.
//!
//! Own main (libtest-mimic): the process first enters the rig sandbox
//! (private user, net, mount and PID namespaces), where the fake lab's
//! namespaces are made; nothing is created in the host's.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod fake_lab;

use std::path::PathBuf;
use std::process::Command;

use fake_lab::{outcome, FakeLab, Firmware, LINK_COIL, POWER_COIL, SUITE};
use libtest_mimic::{Arguments, Failed, Trial};
use sacbench_rig::emulated::sandbox;
use sacbench_suites::model::Outcome;

/// The good reference firmware on the lab rig: cases across the groups pass
/// (power and link by relay, flashing and provisioning by command, the hub on
/// the bench NIC, captures from the bench side); a case that needs the
/// emulated board is ignored with the reason.
fn reference_board_passes_on_the_lab_rig() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 1, Firmware::Reference)?;
    let out = dir.path().join("run");
    let run = lab.run_suite(
        &out,
        "NI-03,NI-04,MT-01,MT-13,MT-14,KR-01,OTA-01,CD-01,CD-20",
        None,
        None,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = sacbench_suites::report::read_run(&out)
        .map_err(|e| format!("no report ({e}); suite said: {stdout}"))?;
    for id in ["NI-04", "MT-01", "MT-14", "KR-01", "OTA-01", "CD-01"] {
        let (o, seen) = outcome(&report, id);
        if o != Outcome::Passed {
            return Err(format!("{id}: {o:?}: {seen}\n{stdout}").into());
        }
    }
    // The report names the lab rig it ran on.
    if report.rig.kind != "lab" || !report.rig.name.ends_with("rig.toml") {
        return Err(format!("rig in the report: {:?}", report.rig).into());
    }
    let (o, seen) = outcome(&report, "NI-03");
    if o != Outcome::Ignored || !seen.contains("board running as a bench process") {
        return Err(format!("NI-03 must be ignored on a lab rig: {o:?}: {seen}").into());
    }
    // One board on the rig: CD-20 is not run, MT-13 runs its single-board form.
    let (o, seen) = outcome(&report, "CD-20");
    if o != Outcome::Ignored || !seen.contains("second board") {
        return Err(format!("CD-20 must be ignored on a one-board rig: {o:?}: {seen}").into());
    }
    let (o, seen) = outcome(&report, "MT-13");
    if o != Outcome::Passed || !seen.contains("no second board") {
        return Err(format!("MT-13 on a one-board rig: {o:?}: {seen}").into());
    }
    if run.status.code() != Some(0) {
        return Err(format!("exit {:?}: {stdout}", run.status.code()).into());
    }
    // The relay really carried power and link.
    let writes = lab.board.writes.lock().unwrap().clone();
    for (coil, value) in [(POWER_COIL, true), (POWER_COIL, false), (LINK_COIL, false)] {
        if !writes.contains(&(coil, value)) {
            return Err(format!("no relay write {coil}={value}: {writes:?}").into());
        }
    }
    Ok(())
}

/// A fault in the firmware on the lab rig fails its case, as on the emulated rig.
fn faulty_board_fails_on_the_lab_rig() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 2, Firmware::Reference)?;
    let out = dir.path().join("run");
    let run = lab.run_suite(&out, "MT-01", Some("plaintext-hello"), None);
    let report = sacbench_suites::report::read_run(&out)?;
    let (o, seen) = outcome(&report, "MT-01");
    // Failed for the fault, not for the rig: the verdict is the case's own.
    if o != Outcome::Failed || seen.contains("setup error") || run.status.code() != Some(101) {
        return Err(format!(
            "MT-01 must fail against plaintext-hello: {o:?} ({seen}), exit {:?}",
            run.status.code()
        )
        .into());
    }
    Ok(())
}

/// A bad rig file stops the run before any case: one error naming the file,
/// the line and the field; exit 2.
fn bad_rig_file_is_one_clear_error() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let rig = dir.path().join("rig.toml");
    std::fs::write(
        &rig,
        "[dut]\nipv4 = \"192.0.2.20\"\n\n[hub]\nipv4 = \"192.0.2.1\"\n\n[provisioning]\ncommand = [\"./provision.sh\"]\n",
    )?;
    let out = Command::new(SUITE)
        .env("SACBENCH_RIG", &rig)
        .env("SACBENCH_OUT", dir.path().join("run"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:8: `provisioning.command`: no argument contains {{provisioning}}",
        rig.display()
    );
    if out.status.code() != Some(2) || !stderr.contains(&want) || stderr.lines().count() != 1 {
        return Err(format!(
            "exit {:?}, stderr {stderr:?}; wanted {want:?}",
            out.status.code()
        )
        .into());
    }
    if dir.path().join("run").exists() {
        return Err("a run directory was made for a bad rig file".into());
    }
    Ok(())
}

/// A device nobody here wrote on the lab rig: the deliberately insecure
/// paho-mqtt device, provisioned by the rig file's command, powered by the
/// relay. Its open port fails NI-01 and its unverified hub certificate
/// MT-05; what it correctly does passes; what it does not implement is
/// `not_applicable`, never failed.
fn foreign_board_is_judged_on_the_lab_rig() -> Result<(), Failed> {
    let dut_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/insecure-python-device");
    let dut_file = dut_dir.join("dut.toml");
    let dut = sacbench_rig::dut::DutFile::load(&dut_file).map_err(|e| e.to_string())?;
    let argv = dut
        .emulated
        .ok_or("the example has an [emulated] command")?
        .command;
    let dir = tempfile::tempdir()?;
    let lab = FakeLab::build(dir.path(), 3, Firmware::Foreign { dut_dir, argv })?;
    let out = dir.path().join("run");
    let run = lab.run_suite(&out, "NI-01,MT-04,MT-05,KR-01", None, Some(&dut_file));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = sacbench_suites::report::read_run(&out)
        .map_err(|e| format!("no report ({e}); suite said: {stdout}"))?;
    let want = [
        ("NI-01", Outcome::Failed, "2323"),
        ("MT-04", Outcome::Passed, ""),
        ("MT-05", Outcome::Failed, ""),
        ("KR-01", Outcome::NotApplicable, "est-rotation"),
    ];
    for (id, outcome_wanted, mention) in want {
        let (o, seen) = outcome(&report, id);
        if o != outcome_wanted || !seen.contains(mention) {
            return Err(format!(
                "{id}: {o:?} ({seen}), wanted {outcome_wanted:?} mentioning {mention:?}\n{stdout}"
            )
            .into());
        }
    }
    Ok(())
}

fn main() {
    sandbox::enter_or_exit("");
    let tests = vec![
        Trial::test(
            "reference_board_passes_on_the_lab_rig",
            reference_board_passes_on_the_lab_rig,
        ),
        Trial::test(
            "faulty_board_fails_on_the_lab_rig",
            faulty_board_fails_on_the_lab_rig,
        ),
        Trial::test(
            "bad_rig_file_is_one_clear_error",
            bad_rig_file_is_one_clear_error,
        ),
        Trial::test(
            "foreign_board_is_judged_on_the_lab_rig",
            foreign_board_is_judged_on_the_lab_rig,
        ),
    ];
    libtest_mimic::run(&Arguments::from_args(), tests).exit();
}
