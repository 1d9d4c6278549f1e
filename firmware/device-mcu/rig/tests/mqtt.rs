//! MQTT from the thumbv7m image to a real broker: mosquitto in the test's
//! namespace, TLS 1.3 only, `require_certificate true`,
//! `use_identity_as_username true`, with a CA and server certificate this
//! test generates per run; the device's provisioning record (a fresh
//! identity, packed by `prov::pack`) laid into the board's provisioning
//! region by QEMU at power-on.
//!
//! The session is device-core's `Device` machine's (src/app.rs); its
//! timers (keep-alive, PINGRESP timeout, backoff reset after a stable
//! session) are unit-tested in device-core and judged end to end by the
//! bench's cases on this image (test-suites/tests/mcu_qemu.rs).
//!
//! - `connects_subscribes_prints_a_command_and_acknowledges_it`: the device
//!   connects (the broker logs it under the identity of its certificate),
//!   subscribes; the test publishes a command with `mosquitto_pub` (its own
//!   client certificate, QoS 1); the device applies it and the broker logs
//!   the device's PUBACK for it.
//! - `reconnects_with_growing_delays_after_the_broker_restarts`: once
//!   subscribed, mosquitto is killed; the device's attempts while it is
//!   down come at growing intervals (its own chosen delays never shrink;
//!   seen from outside, none much shorter than the one before and the last
//!   at least twice the first, over four intervals); mosquitto restarted on
//!   the same port, the device reconnects and resubscribes, and a QoS 1
//!   command published after the restart is applied and PUBACKed.
//! - `refuses_a_record_whose_digest_does_not_match`: the same record with
//!   one byte of its body changed: the device says the record is refused,
//!   halts, and the broker never sees it.
//! - `without_a_record_it_does_not_connect_to_the_hub`: no record at all:
//!   the device says so and the broker never sees it.
//! - `without_fault_no_dedupe_it_applies_a_command_once_per_message_id` and
//!   `with_fault_no_dedupe_it_applies_a_repeated_message_id_again`: two
//!   commands with the same `$.mid` in the topic's property bag, then a
//!   third with another id (published after them, so delivered after them:
//!   once it is applied, both were handled); the correct image applies the
//!   first once and acknowledges the second without applying it, the image
//!   built with `no-dedupe` applies it twice. Every copy is PUBACKed.
//!
//! Needs root, `qemu-system-arm`, `mosquitto`, `mosquitto_pub` and the
//! thumbv7m-none-eabi target; run with `cargo test --test mqtt` in rig/.
#![allow(clippy::unwrap_used)]

mod common;

use common::broker::{mosquitto_conf, Broker};
use common::{ca, leaf, number_after, one_at_a_time, unix_now};
use device_mcu_rig::prov::{pack, HubAt, Provision};
use device_mcu_rig::sntp::Sntp;
use device_mcu_rig::{NetNs, Qemu};
use rcgen::ExtendedKeyUsagePurpose;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

const HOST: &str = "10.0.17.1";
const DEVICE: &str = "10.0.17.2";
const HUB_NAME: &str = "hub.sacbench.test";
const HUB_PORT: u16 = 8883;
const SNTP_PORT: u16 = 123;
const DEVICE_ID: &str = "device-mcu-mqtt-0001";
const PUBLISHER: &str = "bench-publisher";
/// Waits on the device through a TLS handshake: P-256 in emulation.
const HANDSHAKE: Duration = Duration::from_secs(120);

/// Files of one run: the broker's PKI and configuration, the device's
/// records, the publisher's identity; and the image.
struct Fixture {
    dir: PathBuf,
    elf: PathBuf,
    /// A good record.
    prov: PathBuf,
    /// The good record with one body byte changed (digest left as it was).
    corrupt: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("devmcu-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = ca("sacbench mqtt test CA");
        // The broker: the hub's name for the device, its address for
        // mosquitto_pub (which then verifies the name, no --insecure).
        let (server, server_key) = leaf(
            &ca,
            vec![HUB_NAME.into(), HOST.into()],
            HUB_NAME,
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (device, device_key) = leaf(
            &ca,
            vec![DEVICE_ID.into()],
            DEVICE_ID,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (publisher, publisher_key) = leaf(
            &ca,
            vec![PUBLISHER.into()],
            PUBLISHER,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write("ca.pem", ca.pem());
        write("server.pem", server.pem());
        write("server.key", server_key.serialize_pem());
        write("publisher.pem", publisher.pem());
        write("publisher.key", publisher_key.serialize_pem());
        write("mosquitto.conf", mosquitto_conf(HUB_PORT, HOST, &dir));

        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut seed)
            .unwrap();
        let host: Ipv4Addr = HOST.parse().unwrap();
        let record = pack(&Provision {
            ca: ca.der().to_vec(),
            cert: device.der().to_vec(),
            key: device_key.serialize_der(),
            seed,
            device_id: DEVICE_ID.into(),
            hub_name: HUB_NAME.into(),
            // Record v1: the hub's address (tests/dns.rs boots v2).
            hub: HubAt::Address(SocketAddrV4::new(host, HUB_PORT)),
            sntp: SocketAddrV4::new(host, SNTP_PORT),
            time_floor: unix_now() - 3600,
            ip: DEVICE.parse().unwrap(),
            prefix: 24,
            gateway: host,
        })
        .unwrap();
        let prov = dir.join("prov.bin");
        std::fs::write(&prov, &record).unwrap();
        // One body byte changed (the first copy of the device id: inside its
        // certificate); the digest is the good one's.
        let mut bad = record.clone();
        let at = bad
            .windows(DEVICE_ID.len())
            .position(|w| w == DEVICE_ID.as_bytes())
            .unwrap();
        bad[at] ^= 0x20;
        let corrupt = dir.join("prov-corrupt.bin");
        std::fs::write(&corrupt, &bad).unwrap();

        let elf = common::own_image(&dir, &[]);
        Fixture {
            dir,
            elf,
            prov,
            corrupt,
        }
    })
}

/// One scenario at a time: each QEMU spins a host core.
fn setup(scenario: &str, fx: &Fixture, record: Option<&Path>) -> (NetNs, Broker, Sntp, Qemu) {
    setup_image(scenario, fx, &fx.elf, record)
}

fn setup_image(
    scenario: &str,
    fx: &Fixture,
    elf: &Path,
    record: Option<&Path>,
) -> (NetNs, Broker, Sntp, Qemu) {
    let ns = NetNs::create(
        &format!("devmcu-mqtt-{}-{scenario}", std::process::id()),
        "tap0",
        &format!("{HOST}/24"),
    )
    .unwrap();
    let broker = Broker::start(&ns, &fx.dir.join("mosquitto.conf"), HUB_PORT);
    let sntp = Sntp::start(&ns, HOST, SNTP_PORT, 0).unwrap();
    let qemu = Qemu::boot_provisioned(&ns, elf, "52:54:00:17:00:02", record).unwrap();
    (ns, broker, sntp, qemu)
}

#[test]
fn connects_subscribes_prints_a_command_and_acknowledges_it() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, mut broker, _sntp, mut qemu) = setup("good", fx, Some(&fx.prov));

    qemu.wait_line("tls: handshake done", HANDSHAKE).unwrap();
    // The broker knows the device by its certificate.
    broker.wait_line(
        &format!("New client connected from {DEVICE}:|as {DEVICE_ID}|u'{DEVICE_ID}'"),
        Duration::from_secs(60),
    );
    qemu.wait_line("app: hub session up", Duration::from_secs(60))
        .unwrap();
    broker.wait_line(
        &format!("Received SUBSCRIBE from {DEVICE_ID}"),
        Duration::from_secs(60),
    );
    qemu.wait_line("app: subscribed (commands: true)", Duration::from_secs(60))
        .unwrap();

    // A command, published by the bench with its own certificate at QoS 1.
    let topic = format!("devices/{DEVICE_ID}/messages/devicebound/%24.mid=m-1");
    let out = ns
        .command("mosquitto_pub")
        .args(["-h", HOST, "-p", &HUB_PORT.to_string()])
        .arg("--cafile")
        .arg(fx.dir.join("ca.pem"))
        .arg("--cert")
        .arg(fx.dir.join("publisher.pem"))
        .arg("--key")
        .arg(fx.dir.join("publisher.key"))
        .args(["--tls-version", "tlsv1.3", "-i", PUBLISHER, "-q", "1"])
        .args(["-t", &topic, "-m", "reboot in 5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let command = qemu
        .wait_line("app: command applied mid=m-1 ", Duration::from_secs(60))
        .unwrap();
    assert!(command.contains("payload=reboot in 5"), "{command}");
    // The broker got the device's PUBACK for the message it sent it.
    let sent = broker.wait_line(
        &format!("Sending PUBLISH to {DEVICE_ID}|q1|{topic}"),
        Duration::from_secs(10),
    );
    let mid: String = sent
        .split(", m")
        .nth(1)
        .map(|s| s.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    assert!(!mid.is_empty(), "no message id in {sent:?}");
    broker.wait_line(
        &format!("Received PUBACK from {DEVICE_ID} (Mid: {mid}"),
        Duration::from_secs(30),
    );
}

/// Publishes `payload` at QoS 1 to the device's command topic `…/$.mid=mid`
/// with the bench's own certificate; returns the topic.
fn publish_command(ns: &NetNs, fx: &Fixture, mid: &str, payload: &str) -> String {
    let topic = format!("devices/{DEVICE_ID}/messages/devicebound/%24.mid={mid}");
    let out = ns
        .command("mosquitto_pub")
        .args(["-h", HOST, "-p", &HUB_PORT.to_string()])
        .arg("--cafile")
        .arg(fx.dir.join("ca.pem"))
        .arg("--cert")
        .arg(fx.dir.join("publisher.pem"))
        .arg("--key")
        .arg(fx.dir.join("publisher.key"))
        .args(["--tls-version", "tlsv1.3", "-i", PUBLISHER, "-q", "1"])
        .args(["-t", &topic, "-m", payload])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    topic
}

#[test]
fn reconnects_with_growing_delays_after_the_broker_restarts() {
    let fx = fixture();
    let _one = one_at_a_time();
    let (ns, broker, _sntp, mut qemu) = setup("restart", fx, Some(&fx.prov));
    qemu.wait_line("app: subscribed", HANDSHAKE).unwrap();

    // The broker is killed: the device's session ends (the kernel closes
    // its TCP), and it backs off.
    drop(broker);
    let ended = qemu
        .wait_line("app: reconnecting in", Duration::from_secs(60))
        .unwrap();
    let mut delays = vec![number_after(&ended, "reconnecting in ")];

    // While the broker is down, each attempt is refused at once (RST from
    // the namespace's kernel); the attempts come at growing intervals, seen
    // from outside as the moments their console lines arrive.
    const ATTEMPTS: usize = 5;
    let mut dialled = Vec::new();
    for _ in 0..ATTEMPTS {
        let (_, at) = qemu
            .wait_line_at("tls: dialling", Duration::from_secs(60))
            .unwrap();
        dialled.push(at);
        qemu.wait_line("tls: tcp connection to", Duration::from_secs(60))
            .unwrap();
        let next = qemu
            .wait_line("app: reconnecting in", Duration::from_secs(60))
            .unwrap();
        delays.push(number_after(&next, "reconnecting in "));
    }
    let intervals: Vec<Duration> = dialled.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("delays the device chose (ms): {delays:?}; intervals seen: {intervals:?}");
    // The device's own delays: never shorter than the one before (equal
    // jitter: each floor is the previous ceiling), and growing.
    for w in delays.windows(2) {
        assert!(w[1] >= w[0], "delays {delays:?}");
    }
    assert!(
        delays[delays.len() - 1] >= 2 * delays[1],
        "delays {delays:?}"
    );
    // The outside view, judged loosely: none much shorter than the one
    // before it, the last at least twice the first.
    assert!(intervals.len() >= 3, "{intervals:?}");
    for w in intervals.windows(2) {
        assert!(w[1] * 2 >= w[0], "intervals {intervals:?}");
    }
    assert!(
        intervals[intervals.len() - 1] >= 2 * intervals[0],
        "intervals {intervals:?}"
    );

    // The broker back on the same port: the device reconnects, resubscribes…
    let mut broker = Broker::start(&ns, &fx.dir.join("mosquitto.conf"), HUB_PORT);
    broker.wait_line(
        &format!("New client connected from {DEVICE}:|as {DEVICE_ID}|u'{DEVICE_ID}'"),
        Duration::from_secs(60),
    );
    broker.wait_line(
        &format!("Received SUBSCRIBE from {DEVICE_ID}"),
        Duration::from_secs(60),
    );
    qemu.wait_line("app: subscribed", Duration::from_secs(60))
        .unwrap();

    // … and a QoS 1 command published after the restart is applied and
    // acknowledged.
    let topic = publish_command(&ns, fx, "m-2", "after the restart");
    let command = qemu
        .wait_line("app: command applied mid=m-2 ", Duration::from_secs(60))
        .unwrap();
    assert!(command.contains("payload=after the restart"), "{command}");
    let sent = broker.wait_line(
        &format!("Sending PUBLISH to {DEVICE_ID}|q1|{topic}"),
        Duration::from_secs(10),
    );
    let pid = number_after(&sent, ", m");
    broker.wait_line(
        &format!("Received PUBACK from {DEVICE_ID} (Mid: {pid}"),
        Duration::from_secs(30),
    );
}

/// Boots with `record`; the device must print `says`, connect to nothing,
/// and the broker must see no client.
fn does_not_connect(scenario: &str, record: Option<&Path>, says: &str, then: &str) {
    let fx = fixture();
    let _one = one_at_a_time();
    let (_ns, mut broker, _sntp, mut qemu) = setup(scenario, fx, record);
    let line = qemu.wait_line(says, Duration::from_secs(60)).unwrap();
    eprintln!("{scenario}: {line}");
    // What comes after it: the halt, or the bring-up diagnostic dialling
    // its (non-hub) peer — by then a provisioned device would have dialled.
    qemu.wait_line(then, Duration::from_secs(60)).unwrap();
    assert!(
        !qemu
            .seen
            .iter()
            .any(|l| l.starts_with("time:") || l.starts_with("tls:") || l.starts_with("app:")),
        "{:?}",
        qemu.seen
    );
    assert!(
        !broker
            .drain()
            .iter()
            .any(|l| l.contains("New connection") || l.contains(DEVICE)),
        "the broker saw a client: {:?}",
        broker.seen
    );
}

#[test]
fn refuses_a_record_whose_digest_does_not_match() {
    let fx = fixture();
    does_not_connect(
        "corrupt",
        Some(&fx.corrupt),
        "provisioning: refused the record at 0x003f0000: Digest",
        "device-mcu: halted",
    );
}

#[test]
fn without_a_record_it_does_not_connect_to_the_hub() {
    does_not_connect(
        "none",
        None,
        "provisioning: none in the region at 0x003f0000: not connecting to a hub",
        "tcp: dialling",
    );
}

/// Publishes the same `$.mid` twice, then a marker command; returns how
/// many times the device applied the repeated id (its console), after
/// checking that every copy was PUBACKed.
fn applied_count_of_a_repeated_mid(scenario: &str, faults: &[&str]) -> (usize, Vec<String>) {
    let fx = fixture();
    let elf = if faults.is_empty() {
        fx.elf.clone()
    } else {
        common::own_image(&fx.dir, faults)
    };
    let _one = one_at_a_time();
    let (ns, mut broker, _sntp, mut qemu) = setup_image(scenario, fx, &elf, Some(&fx.prov));
    qemu.wait_line(
        &format!("device-mcu: faults=[{}]", faults.join(",")),
        Duration::from_secs(30),
    )
    .unwrap();
    qemu.wait_line("app: subscribed", HANDSHAKE).unwrap();
    publish_command(&ns, fx, "m-dup", "set led on");
    publish_command(&ns, fx, "m-dup", "set led on");
    publish_command(&ns, fx, "m-next", "marker");
    qemu.wait_line("app: command applied mid=m-next ", Duration::from_secs(60))
        .unwrap();
    // Every copy acknowledged (the broker's log, in order).
    for _ in 0..3 {
        broker.wait_line(
            &format!("Received PUBACK from {DEVICE_ID}"),
            Duration::from_secs(30),
        );
    }
    let count = |needle: &str| qemu.seen.iter().filter(|l| l.contains(needle)).count();
    (count("app: command applied mid=m-dup "), qemu.seen.clone())
}

#[test]
fn without_fault_no_dedupe_it_applies_a_command_once_per_message_id() {
    let (applied, seen) = applied_count_of_a_repeated_mid("dedupe", &[]);
    assert_eq!(applied, 1, "{seen:?}");
}

#[test]
fn with_fault_no_dedupe_it_applies_a_repeated_message_id_again() {
    let (applied, seen) = applied_count_of_a_repeated_mid("nodedupe", &["no-dedupe"]);
    assert_eq!(applied, 2, "{seen:?}");
}
