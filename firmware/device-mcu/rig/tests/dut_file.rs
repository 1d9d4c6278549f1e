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

/// The firmware's sources the lines come from.
fn sources() -> String {
    ["src/dns.rs", "src/secure.rs", "src/online.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(firmware_dir().join(f)).unwrap())
        .collect()
}

/// Lines the image prints when an attempt fails, with the literal text of
/// each in the firmware's source (so a reworded line fails this test).
const FAILED: &[(&str, &str)] = &[
    (
        "dns: hub7.sacbench.test not resolved: dns server 10.200.7.1 answered with no IPv4 address (NXDOMAIN or no A record)",
        "\"dns: {name} not resolved: {why}\"",
    ),
    (
        "tls: tcp connect error Unaddressable",
        "\"tls: tcp connect error {e:?}\"",
    ),
    (
        "tls: tcp connection to 10.200.7.1:8883 failed",
        "\"tls: tcp connection to {hub} failed\"",
    ),
    (
        "tls: refused the hub's certificate: path: UnknownIssuer",
        "\"tls: refused the hub's certificate: {why}\"",
    ),
    (
        "tls: handshake failed: InvalidRecord",
        "\"tls: handshake failed: {e:?}\"",
    ),
    (
        "tls: refused: handshake ended without the hub's certificate and signature verified",
        "\"tls: refused: handshake ended without the hub's certificate and signature verified\"",
    ),
    (
        "mqtt: connection refused by the hub: NotAuthorized",
        "\"mqtt: connection refused by the hub: {:?}\"",
    ),
    (
        "mqtt: no answer from the hub within the keep-alive",
        "\"mqtt: no answer from the hub within the keep-alive\"",
    ),
];

/// Lines of attempts that succeed, of sessions, and of what comes between.
const NOT_FAILED: &[&str] = &[
    "dns: hub7.sacbench.test = 10.200.7.6",
    "net: up ip=10.200.7.2/30 gw=10.200.7.1 (provisioned) hub=hub7.sacbench.test (port 8883, resolved by dns 10.200.7.1) sntp=10.200.7.1:123",
    "tls: dialling 10.200.7.1:8883 (attempt 3, uptime_ms=1200)",
    "tls: tcp connected to 10.200.7.1:8883",
    "tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub hub7.sacbench.test verified at unix=1796081911",
    "mqtt: connect sent client_id=d user=h/d/?api-version=2021-04-12 keep_alive=20s",
    "mqtt: connack accepted (session_present=false)",
    "mqtt: subscribed devices/d/messages/devicebound/# (granted qos 1)",
    "mqtt: command mid=m-1 applied",
    "mqtt: connection closed by the hub",
    "tls: close_notify sent; session took 20000 ms",
    "reconnect: next attempt in 812 ms (consecutive 2, uptime_ms=3000)",
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
    let caps = applied.captures("mqtt: command mid=m-42 applied").unwrap();
    assert_eq!(&caps["mid"], "m-42");
    for line in [
        "mqtt: command mid=m-42 already applied: acknowledged, not applied again",
        "mqtt: command topic=devices/d/messages/devicebound/%24.mid=m-42 qos=1 payload=\"x\" (1 B)",
        "mqtt: command without a usable $.mid (at most 128 B): closing",
    ] {
        assert!(!applied.is_match(line), "{line:?} must not match");
    }
    let src = sources();
    assert!(src.contains("\"mqtt: command mid={mid} applied\""));
    assert!(src
        .contains("\"mqtt: command mid={mid} already applied: acknowledged, not applied again\""));
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
    assert_eq!(run.faults.len(), offered.len());
    // Exactly the faults the image applies (and `build` makes images of).
    offered.sort_unstable();
    let mut applies = board::FAULTS.to_vec();
    applies.sort_unstable();
    assert_eq!(offered, applies);
    assert_eq!(dut["implements"].as_array().unwrap().len(), 1);
    assert_eq!(dut["connack_timeout_s"].as_integer(), Some(20));
}
