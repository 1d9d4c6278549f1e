//! `devmcu-board run` end to end, in the topology sacbench gives a DUT with
//! `[emulated] network = "tap"`: a DUT namespace holding a bridge `br0`
//! that enslaves the DUT's veth link and has no address, the veth's peer in
//! a second (gateway) namespace at 10.200.7.1/30 where the hub (mosquitto:
//! TLS 1.3, client certificates required), an SNTP responder and a DNS
//! responder (the bench's answers: the hub's name, nothing else) listen, as
//! the rig's servers do. The launcher runs inside the DUT namespace with a
//! provisioning directory as the bench writes it and `--dns` the gateway;
//! it must pack the record (v2), make the ifup script that puts QEMU's TAP
//! on the bridge, pick the image and become QEMU — and the board then takes
//! 10.200.7.2 itself, gets SNTP time across the bridge, looks the hub's
//! name up at the DNS responder (which saw the query), completes mutual TLS
//! with the hub (which logs the device's certificate identity) and
//! subscribes. Then a power cycle (SIGKILL of the process, as the rig does)
//! and a second power-on: the same unit (seed, time floor), back on the
//! hub, with no debug listener; a third with the DUT file's `--fault
//! listen-debug`: the image built with it (the launcher flashes its signed
//! image into the primary slot of the unit's flash file, whose other
//! contents — the boot stage's power-on count — stay), whose TCP 2323
//! answers from the gateway side.
//!
//! Needs root, `qemu-system-arm`, `mosquitto` and the thumbv7m-none-eabi
//! target; `cargo test --test board_boot` in rig/ (on the debug image it
//! builds), or `DEVMCU_BOARD_IMAGES=$PWD/../target/board cargo test --test
//! board_boot` (on the images `devmcu-board build` made).
#![allow(clippy::unwrap_used)]

mod common;

use common::broker::{dial_debug_port, mosquitto_conf, Broker};
use common::{ca, leaf, one_at_a_time};
use device_mcu_rig::dns::Dns;
use device_mcu_rig::sntp::Sntp;
use device_mcu_rig::{build, ImageBuild, NetNs, Profile, Qemu, BACKOFF_BASE_MS, BACKOFF_STABLE_MS};
use rcgen::ExtendedKeyUsagePurpose;
use std::path::PathBuf;
use std::time::Duration;

const GATEWAY: &str = "10.200.7.1";
const DEVICE: &str = "10.200.7.2";
const HUB_NAME: &str = "hub7.sacbench.test";
const HUB_PORT: u16 = 8883;
const DEVICE_ID: &str = "device-mcu-board-0001";
/// Waits on the device through boot, SNTP and a TLS handshake (P-256 in
/// emulation).
const HANDSHAKE: Duration = Duration::from_secs(120);

/// Waits, on the board's console, for each of `needles` in turn.
fn wait_lines(board: &mut Qemu, needles: &[&str]) {
    for needle in needles {
        board.wait_line(needle, HANDSHAKE).unwrap();
    }
}

#[test]
fn runs_the_image_on_the_dut_bridge_and_reaches_the_hub_across_power_cycles() {
    let _one = one_at_a_time();
    let pid = std::process::id();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("devmcu-board-boot-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let prov = dir.join("provisioning");
    let state = dir.join("state");
    std::fs::create_dir_all(&prov).unwrap();

    // The hub's PKI and the device's identity, as the bench would make them.
    let ca = ca("board boot test CA");
    let (server, server_key) = leaf(
        &ca,
        vec![HUB_NAME.into()],
        HUB_NAME,
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (device, device_key) = leaf(
        &ca,
        vec![DEVICE_ID.into()],
        DEVICE_ID,
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |path: PathBuf, text: String| std::fs::write(path, text).unwrap();
    write(dir.join("ca.pem"), ca.pem());
    write(dir.join("server.pem"), server.pem());
    write(dir.join("server.key"), server_key.serialize_pem());
    write(
        dir.join("mosquitto.conf"),
        mosquitto_conf(HUB_PORT, GATEWAY, &dir),
    );
    write(
        prov.join("device.json"),
        serde_json::json!({
            "device_id": DEVICE_ID,
            "hub_host": HUB_NAME,
            "mqtt_port": HUB_PORT,
            "https_port": 443,
            "api_version": "2021-04-12",
            "faults": [],
        })
        .to_string(),
    );
    write(prov.join("device.pem"), device.pem());
    write(prov.join("device.key"), device_key.serialize_pem());
    write(prov.join("hub-ca.pem"), ca.pem());

    // The image, under the name `devmcu-board run` looks for; or, with
    // DEVMCU_BOARD_IMAGES set, the images `devmcu-board build` made there
    // (e.g. ../target/board: the release images the DUT file boots).
    let images = match std::env::var_os("DEVMCU_BOARD_IMAGES") {
        Some(built) => PathBuf::from(built),
        None => {
            let images = dir.join("images");
            for faults in [&[][..], &["listen-debug"]] {
                build(&ImageBuild {
                    profile: Profile::from_env().unwrap(),
                    faults,
                    diag_ip: "10.0.17.2/24",
                    diag_peer: "10.0.17.1:7700",
                    backoff_ms: Some((BACKOFF_BASE_MS, BACKOFF_STABLE_MS)),
                    out_dir: Some(&images),
                })
                .unwrap();
            }
            images
        }
    };

    // The DUT namespace: a bridge holding the DUT's veth, no address.
    let gw_name = format!("devmcu-bg-{pid}");
    let dut_name = format!("devmcu-bd-{pid}");
    let gw = NetNs::bare(&gw_name).unwrap();
    let dut = NetNs::bare(&dut_name).unwrap();
    dut.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    dut.ip(&[
        "link", "add", "d0", "type", "veth", "peer", "name", "g0", "netns", &gw_name,
    ])
    .unwrap();
    dut.ip(&["link", "set", "d0", "master", "br0"]).unwrap();
    dut.ip(&["link", "set", "d0", "up"]).unwrap();
    dut.ip(&["link", "set", "br0", "up"]).unwrap();
    gw.ip(&["addr", "add", &format!("{GATEWAY}/30"), "dev", "g0"])
        .unwrap();
    gw.ip(&["link", "set", "g0", "up"]).unwrap();
    let mut broker = Broker::start(&gw, &dir.join("mosquitto.conf"), HUB_PORT);
    let _sntp = Sntp::start(&gw, GATEWAY, 123, 0).unwrap();
    // The hub's name resolves only at the gateway's DNS responder.
    let mut dns = Dns::start(
        &gw,
        GATEWAY,
        vec![(HUB_NAME.into(), GATEWAY.parse().unwrap())],
    )
    .unwrap();

    let power_on = |faults: &[&str]| {
        let mut cmd = dut.command(env!("CARGO_BIN_EXE_devmcu-board"));
        cmd.arg("run")
            .arg("--provisioning")
            .arg(&prov)
            .arg("--state")
            .arg(&state)
            .arg("--images")
            .arg(&images)
            .args(["--ip", &format!("{DEVICE}/30"), "--gateway", GATEWAY])
            .args(["--sntp", &format!("{GATEWAY}:123"), "--bridge", "br0"])
            .args(["--dns", GATEWAY]);
        for fault in faults {
            cmd.args(["--fault", fault]);
        }
        Qemu::spawn(cmd).unwrap()
    };
    let connected = format!("New client connected from {DEVICE}:");
    let subscribed = "app: subscribed (commands: true)";
    let stored = "app: factory provisioning stored the credential";

    let mut board = power_on(&[]);
    wait_lines(
        &mut board,
        &[
            // The boot stage, from the unit's new flash file.
            "boot: #1 action=none version=1.0.0 ",
            &format!(
                "net: up ip={DEVICE}/30 gw={GATEWAY} (provisioned) hub={HUB_NAME} (port {HUB_PORT}, resolved by dns {GATEWAY})"
            ),
            "time: unix=",
            stored,
            &format!("dns: {HUB_NAME} = {GATEWAY}"),
            &format!("tls: dialling {GATEWAY}:{HUB_PORT}"),
            &format!("tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub {HUB_NAME} verified"),
            "app: hub session up",
            subscribed,
        ],
    );
    // Seen from outside: the name was asked of the DNS responder, and the
    // hub took the device's certificate identity.
    dns.wait_note(
        &format!("TYPE(A) {HUB_NAME}: {GATEWAY} (from {DEVICE}:"),
        HANDSHAKE,
    )
    .unwrap();
    broker.wait_line(&format!("{connected}|u'{DEVICE_ID}'"), HANDSHAKE);
    // The launcher became QEMU (exec): the rig's power-off kills QEMU.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", board.pid())).unwrap();
    assert_eq!(comm.trim(), "qemu-system-arm");
    // QEMU's TAP is on the bridge, through the launcher's ifup script.
    let link = dut
        .command("ip")
        .args(["-o", "link", "show", "mcu0"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("master br0") && link.contains(",UP"),
        "{link}"
    );
    let seed = std::fs::read(state.join("seed")).unwrap();
    let floor = std::fs::read(state.join("time-floor")).unwrap();
    let record = std::fs::read(state.join("provisioning.bin")).unwrap();

    // Power off (SIGKILL of QEMU, reaped), power on: the same unit again,
    // its flash as it left it — the credential stored at the first power-on
    // is in the keystore, so nothing is stored from the factory's record.
    drop(board);
    let mut board = power_on(&[]);
    wait_lines(
        &mut board,
        &[
            // Its power-on count, kept in the flash file.
            "boot: #2 action=none version=1.0.0 ",
            "storage: ",
            "tls: handshake done",
            subscribed,
        ],
    );
    assert!(
        !board.seen.iter().any(|l| l.contains(stored)),
        "the keystore did not survive the power cycle: {:?}",
        board.seen
    );
    broker.wait_line(&format!("{connected}|u'{DEVICE_ID}'"), HANDSHAKE);
    assert_eq!(std::fs::read(state.join("seed")).unwrap(), seed);
    assert_eq!(std::fs::read(state.join("time-floor")).unwrap(), floor);
    assert_eq!(
        std::fs::read(state.join("provisioning.bin")).unwrap(),
        record
    );
    // The correct image has no debug listener: the SYN is answered by a reset.
    let err = dial_debug_port(&gw, DEVICE).expect_err("the correct image accepted on 2323");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    drop(board);

    // Powered on with the DUT file's fault arguments: the image built with
    // that fault, seen from the gateway side as the NI cases see it.
    let mut board = power_on(&["listen-debug"]);
    wait_lines(
        &mut board,
        &[
            // The primary slot flashed anew; the boot stage's data kept.
            "boot: #3 action=none version=1.0.0 ",
            "device-mcu: faults=[listen-debug]",
            "fault listen-debug: listening on TCP 2323",
            subscribed,
        ],
    );
    assert_eq!(dial_debug_port(&gw, DEVICE).unwrap(), b"debug shell\r\n> ");
    drop(board);
}
