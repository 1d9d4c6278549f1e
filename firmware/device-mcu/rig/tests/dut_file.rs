//! `firmware/device-mcu/dut.toml` against what it describes: its events
//! match the console lines the image prints (and no others), its command is
//! an argv `devmcu-board run` takes and runs the launcher and images where
//! `devmcu-board build` puts them, and it offers exactly the faults the
//! image applies. Host only: `cargo test --test dut_file`.
#![allow(clippy::unwrap_used)]

use device_mcu_rig::board::{self, RunArgs};
use device_mcu_rig::firmware_dir;
use regex::Regex;

fn dut() -> toml::Table {
    let text = std::fs::read_to_string(firmware_dir().join("dut.toml")).unwrap();
    text.parse().unwrap()
}

fn event(name: &str) -> Regex {
    Regex::new(dut()["events"][name].as_str().unwrap()).unwrap()
}

/// The sources the lines come from: the image's shell and device-core's
/// machine, whose log lines the shell prints as `app: …`.
fn sources() -> String {
    [
        "src/app.rs",
        "src/transport.rs",
        "../device-core/src/device.rs",
        "../device-core/src/device/route.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(firmware_dir().join(f)).unwrap())
    .collect()
}

/// Lines the image prints when an attempt fails (the machine's, told the
/// transport's reason), with the literal text of each in the sources (so a
/// reworded line fails this test).
const FAILED: &[(&str, &str)] = &[
    (
        "app: connection failed: tls: tcp connection to 10.200.7.1:8883 failed",
        "\"connection failed: {reason}\"",
    ),
    (
        "app: connection failed: tls: refused the hub's certificate: path: UnknownIssuer",
        "\"tls: refused the hub's certificate: {why}\"",
    ),
    (
        "app: connection failed: tls: handshake failed: InvalidRecord",
        "\"tls: handshake failed: {e:?}\"",
    ),
    (
        "app: connection failed: tls: refused: handshake ended without the hub's certificate and signature verified",
        "\"tls: refused: handshake ended without the hub's certificate and signature verified\"",
    ),
    (
        "app: connection failed: no credential in the keystore",
        "\"connection failed: no credential in the keystore\"",
    ),
    (
        "app: connection failed: the hub's name did not resolve",
        "\"the hub's name did not resolve\"",
    ),
];

/// Lines of attempts that succeed, of sessions, and of what comes between
/// — among them the transport's own line of a failed attempt, which the
/// machine's line follows: one event per attempt, not two.
const NOT_FAILED: &[&str] = &[
    "dns: hub7.sacbench.test = 10.200.7.6",
    "dns: hub7.sacbench.test not resolved: dns server 10.200.7.1 answered with no IPv4 address (NXDOMAIN or no A record)",
    "net: up ip=10.200.7.2/30 gw=10.200.7.1 (provisioned) hub=hub7.sacbench.test (port 8883, resolved by dns 10.200.7.1) sntp=10.200.7.1:123",
    "tls: dialling 10.200.7.1:8883 (attempt 3, uptime_ms=1200)",
    "tls: tcp connected to 10.200.7.1:8883",
    "tls: tcp connection to 10.200.7.1:8883 failed",
    "tls: refused the hub's certificate: path: UnknownIssuer",
    "tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub hub7.sacbench.test verified at unix=1796081911",
    "app: hub session up",
    "app: subscribed (commands: true)",
    "app: command applied mid=m-1 seq=0 payload=x",
    "app: session closed: connection closed by the hub",
    "tls: close_notify sent; session took 20000 ms",
    "app: reconnecting in 812 ms",
    "time: no answer from sntp 10.200.7.1:123 (attempt 2): no time, so no TLS connection",
];

#[test]
fn connection_failed_matches_each_failed_attempt_and_nothing_else() {
    let failed = event("connection_failed");
    let src = sources();
    for (line, literal) in FAILED {
        assert!(failed.is_match(line), "{line:?} must match");
        assert!(src.contains(literal), "the firmware prints {literal}");
    }
    for line in NOT_FAILED {
        assert!(!failed.is_match(line), "{line:?} must not match");
    }
}

#[test]
fn command_applied_matches_a_new_mid_only() {
    let applied = event("command_applied");
    let caps = applied
        .captures("app: command applied mid=m-42 seq=3 payload=set x")
        .unwrap();
    assert_eq!(&caps["mid"], "m-42");
    for line in [
        "app: session closed: a command without a usable $.mid",
        "app: command mid=m-42",
    ] {
        assert!(!applied.is_match(line), "{line:?} must not match");
    }
    let src = sources();
    assert!(src.contains("\"command applied mid={} seq={seq} payload={payload}\""));
    assert!(src.contains("\"app: {line}\""));
}

#[test]
fn the_command_is_a_run_of_the_built_launcher_and_images() {
    let dut = dut();
    let emulated = dut["emulated"].as_table().unwrap();
    assert_eq!(emulated["network"].as_str(), Some("tap"));
    let dut_dir = firmware_dir();
    let argv: Vec<String> = emulated["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("{dut_dir}", dut_dir.to_str().unwrap())
                .replace("{provisioning}", "/run/case/provisioning")
                .replace("{state}", "/run/case/state")
                .replace("{ipv4_cidr}", "10.200.7.2/30")
                .replace("{ipv4_gateway}", "10.200.7.1")
                .replace("{ntp_server}", "10.200.7.1:123")
                .replace("{dns_server}", "10.200.7.1")
                .replace("{bridge}", "br0")
                .replace("{mac}", "02:00:0a:c8:07:02")
        })
        .collect();
    assert_eq!(
        argv[0],
        board::board_dir().join("devmcu-board").to_str().unwrap()
    );
    assert_eq!(argv[1], "run");
    let mut with_faults = argv[2..].to_vec();
    let fault_args: Vec<String> = dut["faults"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let mut offered: Vec<&str> = dut["faults"]["offered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for fault in &offered {
        with_faults.extend(fault_args.iter().map(|a| a.replace("{fault}", fault)));
    }
    let run = RunArgs::parse(with_faults).unwrap();
    assert_eq!(run.images, board::board_dir());
    assert_eq!(run.ip.to_string(), "10.200.7.2");
    assert_eq!(run.prefix, 30);
    assert_eq!(run.bridge, "br0");
    assert_eq!(run.sntp, "10.200.7.1:123");
    assert_eq!(
        run.dns.to_string(),
        "10.200.7.1",
        "the rig's {{dns_server}}"
    );
    assert_eq!(
        run.mac, "02:00:0a:c8:07:02",
        "the rig's {{mac}}: the image's EUI-64 link-local address is the rig's to scan"
    );
    // The gdbstub the launcher gives QEMU is the one the rig reads RTT through.
    let rtt = emulated["rtt"].as_table().unwrap();
    assert_eq!(
        run.gdb.as_deref(),
        Some(std::path::Path::new(
            &rtt["gdb"]
                .as_str()
                .unwrap()
                .replace("{state}", "/run/case/state")
        ))
    );
    assert_eq!(run.faults.len(), offered.len());
    // Exactly the faults the image applies (and `build` makes images of).
    offered.sort_unstable();
    let mut applies = board::FAULTS.to_vec();
    applies.sort_unstable();
    assert_eq!(offered, applies);
    let implements: Vec<&str> = dut["implements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        implements,
        ["telemetry", "c2d", "methods", "twin", "est-rotation"]
    );
    // The machine gives a CONNECT up after 5 reconnect bases
    // (device_core::device::CONNACK_TIMEOUT_BASES): the DUT file's bound is
    // that, in whole seconds, rounded up.
    let connack_ms = 5 * board::BENCH_BACKOFF_BASE_MS;
    assert_eq!(
        dut["connack_timeout_s"].as_integer(),
        Some(i64::try_from(connack_ms.div_ceil(1000)).unwrap())
    );
}

#[test]
fn the_boot_events_match_the_boot_stages_lines() {
    let src = std::fs::read_to_string(firmware_dir().join("boot/src/main.rs")).unwrap();
    assert!(
        src.contains("\"boot: #{count} action={} version={version} test_boot={} resumed_swap={}\"")
    );
    assert!(src.contains("\"boot: no bootable image: {why}; halting\""));
    let boot = event("boot");
    let caps = boot
        .captures("boot: #1 action=none version=1.0.0 test_boot=false resumed_swap=false")
        .unwrap();
    assert_eq!(&caps["version"], "1.0.0");
    assert!(caps.name("action").is_none());
    let caps = boot
        .captures("boot: #3 action=revert version=1.0.0 test_boot=false resumed_swap=true")
        .unwrap();
    assert_eq!(&caps["action"], "revert");
    let resumed = event("swap_resumed");
    assert!(
        resumed.is_match("boot: #3 action=revert version=1.0.0 test_boot=false resumed_swap=true")
    );
    assert!(
        !resumed.is_match("boot: #1 action=none version=1.0.0 test_boot=false resumed_swap=false")
    );
    let bricked = event("no_bootable_image");
    assert!(bricked.is_match("boot: no bootable image: primary slot: hash mismatch; halting"));
    for line in [
        "boot: device-mcu boot stage, flash at 0x21000000 (16384 KiB), primary slot at 0x21000000",
        "boot: starting the image at 0x21000400",
        "device-mcu: boot (mps2-an385, cortex-m3)",
    ] {
        assert!(!boot.is_match(line) && !bricked.is_match(line), "{line:?}");
    }
}
