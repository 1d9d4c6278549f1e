//! Devices nobody here wrote, on the emulated rig, through their DUT files
//! alone: the Azure IoT device SDK for Node.js example and the deliberately
//! insecure paho-mqtt device (`examples/`). Every case's outcome is checked
//! against the table below — which is also what `docs/FOREIGN-DEVICES.md`
//! shows (generated from it: `SACBENCH_BLESS=1 cargo test -p
//! sacbench-suites --test foreign_devices docs`) — and no case may end in
//! `error`: every verdict is the device's, every failure explained.
//!
//! Needs `npm ci --prefix examples/azure-node-device` and paho-mqtt
//! (`.ci/run` installs both).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use sacbench_suites::model::{Outcome, RunReport};

mod dut_run;

const SUITE: &str = env!("CARGO_BIN_EXE_sacbench-suite");

/// (case, outcome, a text its `seen` must hold, why) — for every case not
/// covered by the group defaults of [`expected`].
type Row = (&'static str, Outcome, &'static str, &'static str);

const NODE: &[Row] = &[
    ("MT-03", Outcome::Failed, "CBC", "Node's TLS defaults (OpenSSL's cipher list) offer CBC suites in TLS 1.2 next to the AEAD ones; the SDK sets no cipher list and the example keeps the defaults"),
    ("MT-12", Outcome::Passed, "growing intervals", "revocation: refused reconnects, backing off; its clock cannot be time-scaled (no `clock_scale`), so its backoff is judged by growing reconnect intervals, not attempts per device-minute"),
    ("CD-19", Outcome::Failed, "reported telemetryIntervalSeconds 41", "the SDK merges every desired patch into its twin whatever its $version (twin.js `_onDesiredPropertiesUpdate`) and the example applies what it is handed: a notification older than the twin it got after reconnecting is applied"),
];

const INSECURE: &[Row] = &[
    ("NI-01", Outcome::Failed, "2323", "its debug console listens on TCP 2323 (deliberate flaw 1)"),
    ("NI-03", Outcome::Failed, "2323", "the same listener, in the DUT's socket table"),
    ("NI-05", Outcome::Failed, "2323", "the listener is open from the first seconds after power-on"),
    ("MT-03", Outcome::Failed, "CBC", "Python's ssl defaults offer CBC suites in TLS 1.2 next to the AEAD ones"),
    ("MT-05", Outcome::Failed, "application data", "it does not verify the hub's certificate (deliberate flaw 2): its MQTT CONNECT reached a hub with an untrusted CA"),
    ("MT-06", Outcome::Failed, "application data", "the same flaw: a certificate for another host name is accepted"),
    ("MT-07", Outcome::Failed, "application data", "the same flaw: an expired certificate is accepted"),
    ("MT-08", Outcome::Failed, "application data", "the same flaw: a not-yet-valid certificate is accepted"),
    ("MT-09", Outcome::Failed, "application data", "the same flaw: a self-signed certificate is accepted"),
    ("MT-12", Outcome::Passed, "growing intervals", "revocation: refused reconnects, backing off (equal jitter); no `clock_scale`, so judged by growing reconnect intervals, not attempts per device-minute"),
    ("MT-15", Outcome::Failed, "application data", "the same flaw: a chain through an intermediate with CA:FALSE is accepted"),
    ("MT-16", Outcome::Failed, "application data", "the same flaw: a chain through an intermediate without basicConstraints is accepted"),
    ("MT-17", Outcome::Failed, "application data", "the same flaw: a chain beyond a pathLenConstraint is accepted"),
    ("MT-18", Outcome::Failed, "application data", "the same flaw: a certificate issued by an end-entity certificate is accepted"),
    ("MT-19", Outcome::Failed, "application data", "the same flaw: a certificate for clientAuth only is accepted"),
    ("MT-20", Outcome::Failed, "application data", "the same flaw: a chain violating its name constraints is accepted"),
    ("MT-21", Outcome::Failed, "application data", "the same flaw: a wildcard that does not match the hub's name is accepted"),
    ("MT-22", Outcome::Failed, "application data", "the same flaw: a chain to an untrusted root is accepted"),
    ("MT-24", Outcome::Failed, "application data", "the same flaw: a chain with an unknown critical extension is accepted"),
    ("MT-25", Outcome::Failed, "application data", "the same flaw: a chain through an expired intermediate is accepted"),
    ("CD-18", Outcome::NotApplicable, "twin", "it does not implement `twin`"),
    ("CD-19", Outcome::NotApplicable, "twin", "it does not implement `twin`"),
    ("CD-20", Outcome::Failed, "do not grow", "it resets its backoff after every session that reached CONNACK (`failures = 0`), so a board that lost its session to the other takes the identity back ½–1 s later every time: two units sharing an identity flap"),
];

/// The outcome of `id` for a device, with its reason: the table's row, else
/// the group's default (what the device does not implement is not applicable).
fn expected(
    rows: &'static [Row],
    id: &str,
    implements_methods: bool,
) -> (Outcome, &'static str, &'static str) {
    if let Some(r) = rows.iter().find(|r| r.0 == id) {
        return (r.1, r.2, r.3);
    }
    let group = id.split('-').next().unwrap_or("");
    match (group, id) {
        ("KR", _) => (
            Outcome::NotApplicable,
            "est-rotation",
            "it does not implement `est-rotation`",
        ),
        ("OTA", _) => (Outcome::NotApplicable, "ota", "it does not implement `ota`"),
        ("GW", _) => (
            Outcome::NotApplicable,
            "modbus-gateway",
            "it has no field gateway",
        ),
        (_, "CD-06" | "CD-10") => (
            Outcome::NotApplicable,
            "native",
            "the case holds the firmware's flash writes: sacbench's native board only",
        ),
        (_, "CD-12") if implements_methods => (
            Outcome::NotApplicable,
            "native",
            "the case holds the firmware's flash writes: sacbench's native board only",
        ),
        (_, "CD-12") => (
            Outcome::NotApplicable,
            "methods",
            "it does not implement `methods` (nor run on the native board)",
        ),
        _ => (Outcome::Passed, "", ""),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(dut: &str, rows: &'static [Row], methods: bool) -> (tempfile::TempDir, RunReport) {
    let dut_file = root().join(dut);
    let dir = tempfile::tempdir().unwrap();
    let (report, text) = dut_run::run(SUITE, &dut_file, &dir.path().join("run"), None, &[]);
    let mut wrong = Vec::new();
    for c in &report.cases {
        let (outcome, mention, _) = expected(rows, &c.id, methods);
        // Verdicts read as words (journal JSON, text or hex), not Rust's
        // Debug forms of options, tuples and structs.
        for debug in ["Some(", "None", " { "] {
            if c.seen.contains(debug) {
                wrong.push(format!(
                    "{}: Debug formatting {debug:?} in {:?}",
                    c.id, c.seen
                ));
            }
        }
        if c.outcome != outcome || !c.seen.contains(mention) {
            wrong.push(format!(
                "{}: {:?} ({}), expected {outcome:?} mentioning {mention:?}",
                c.id, c.outcome, c.seen
            ));
        }
    }
    assert_eq!(report.summary.error, 0, "no bench errors");
    assert_eq!(report.cases.len(), sacbench_suites::cases::all().len());
    assert!(wrong.is_empty(), "{}\n{text}", wrong.join("\n"));
    (dir, report)
}

#[test]
fn the_azure_node_sdk_device_is_judged_on_its_own() {
    check("examples/azure-node-device/dut.toml", NODE, true);
}

#[test]
fn the_insecure_device_is_blamed_for_its_flaws() {
    let (dir, report) = check("examples/insecure-python-device/dut.toml", INSECURE, false);
    // NI-01 cites the frames that show the open port: tshark finds there
    // the DUT's SYN/ACK from port 2323.
    let ni01 = report.cases.iter().find(|c| c.id == "NI-01").unwrap();
    let frames: Vec<u64> = ni01
        .evidence
        .iter()
        .filter(|e| e.kind == sacbench_suites::model::EvidenceKind::Frames)
        .flat_map(|e| e.refs.clone())
        .collect();
    assert!(!frames.is_empty(), "{:?}", ni01.evidence);
    let capture = dir
        .path()
        .join("run")
        .join(ni01.artifacts.capture.as_ref().unwrap());
    for f in frames {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&capture)
            .args(["-Y", &format!("frame.number=={f}"), "-T", "fields"])
            .args([
                "-e",
                "tcp.srcport",
                "-e",
                "tcp.flags.syn",
                "-e",
                "tcp.flags.ack",
            ])
            .output()
            .unwrap();
        let fields = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = fields.split_whitespace().collect();
        assert_eq!(fields[0], "2323", "frame {f}: {fields:?}");
        assert!(
            fields[1..].iter().all(|v| *v == "1" || *v == "True"),
            "frame {f}: {fields:?}"
        );
    }
}

fn table(out: &mut String, title: &str, dut: &str, rows: &'static [Row], methods: bool) {
    let _ = write!(
        out,
        "\n## {title}\n\n`cargo xtask emulated --dut {dut}`\n\n| case | outcome | why |\n|---|---|---|\n"
    );
    dut_run::rows(out, |id| {
        let (outcome, _, why) = expected(rows, id, methods);
        (outcome, why)
    });
}

/// `docs/FOREIGN-DEVICES.md` is the table the tests above check.
#[test]
fn docs_foreign_devices_md_is_the_tested_table() {
    let mut out = String::from(
        "# Results with devices nobody here wrote\n\n\
         Generated from `test-suites/tests/foreign_devices.rs`, whose tests run both devices\n\
         through the whole catalogue on the emulated rig and check every outcome below; do not edit.\n\
         No case ends in `error`: every verdict is the device's. How to write your own DUT file:\n\
         [DUT.md](DUT.md).\n",
    );
    table(
        &mut out,
        "Azure IoT device SDK for Node.js (example app)",
        "examples/azure-node-device/dut.toml",
        NODE,
        true,
    );
    table(
        &mut out,
        "Insecure paho-mqtt device (deliberately broken example)",
        "examples/insecure-python-device/dut.toml",
        INSECURE,
        false,
    );
    let path = root().join("docs/FOREIGN-DEVICES.md");
    if std::env::var_os("SACBENCH_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == out,
        "docs/FOREIGN-DEVICES.md is out of date: SACBENCH_BLESS=1 cargo test -p sacbench-suites --test foreign_devices docs"
    );
}
