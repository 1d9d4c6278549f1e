//! Seed inputs made by the real code, for `fuzz/corpus/` (written by
//! `cargo run -p sacbench-fuzz-bodies --example seeds`) and for the smoke
//! test: the two MQTT byte streams of a whole conversation between the
//! reference device's session and the hub's session (each side's bytes are
//! the other side's seed), and signed MCUboot images.

use device_core::faults::FaultSet;
use device_core::session::{self as device, Action, AppliedIds, SessionEvent};
use hub_fixture::serial::Serial;
use hub_fixture::session::{self as hub, ClientIdentity};
use mcuboot_image::{sign, ImageVersion, PadTrailer, SignOptions, SigningKey};

use crate::device_session as d;
use crate::hub_session as h;

/// One seed: the target it is for, a file name, the bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// The device and the hub talking until neither has anything to say: the
/// device connects, subscribes, gets the twin, receives the queued C2D
/// commands (applying each), a method call (answered) and a desired patch,
/// sends telemetry and a reported patch, pings, and disconnects. Returns
/// (device → hub bytes, hub → device bytes).
pub fn conversation() -> (Vec<u8>, Vec<u8>) {
    let mut port = h::FakeHub::new(h::HUB_EVENTS);
    let mut hub = hub::Session::new(
        hub::SessionConfig {
            hub_host: h::HUB.into(),
            max_packet_size: h::MAX_PACKET,
            c2d_window: 2,
        },
        ClientIdentity {
            device_id: h::DEVICE.into(),
            serial: Serial::parse(h::SERIAL).expect("a serial"),
        },
    );
    let mut config = device::SessionConfig::new(h::DEVICE, h::HUB);
    config.keep_alive_secs = 5;
    let mut dev = device::Session::new(config, FaultSet::NONE, true, AppliedIds::new())
        .expect("a valid configuration");
    let (mut up, mut down) = (Vec::new(), Vec::new());
    dev.connect(0).expect("connect");
    let mut now = 0;
    let mut extras = 0;
    loop {
        // The device's actions: sends go up, the app answers events.
        let mut sent = Vec::new();
        let mut actions = dev.take_actions();
        while !actions.is_empty() {
            for action in actions {
                match action {
                    Action::Send(bytes) => sent.extend(bytes),
                    Action::Event(SessionEvent::Command(c)) => {
                        dev.command_applied(&c.mid).expect("apply");
                    }
                    Action::Event(SessionEvent::Method { rid, .. }) => {
                        dev.respond_method(&rid, 200, br#"{"ok":true}"#)
                            .expect("answer");
                    }
                    _ => {}
                }
            }
            actions = dev.take_actions();
        }
        if sent.is_empty() {
            // Quiet: the two sides take turns at something new.
            extras += 1;
            match extras {
                1 => {
                    hub.send_method("reboot", "7", br#"{"delay":1}"#.to_vec());
                    hub.send_desired(4, &serde_json::json!({"telemetryIntervalSeconds": 10}));
                }
                2 => {
                    dev.send_telemetry(br#"{"t":21.5}"#, &[("unit", "C")])
                        .expect("telemetry");
                    dev.report(&serde_json::json!({"firmware": "1.0.0"}))
                        .expect("report");
                }
                3 => {
                    now += 5000;
                    dev.poll(now);
                }
                4 => dev.disconnect().expect("disconnect"),
                _ => break,
            }
            for action in dev.take_actions() {
                if let Action::Send(bytes) = action {
                    sent.extend(bytes);
                }
            }
        }
        up.extend_from_slice(&sent);
        if !sent.is_empty() && hub.receive(&mut port, &sent).is_err() {
            break;
        }
        let reply = hub.take_output().map(|b| b.to_vec()).unwrap_or_default();
        down.extend_from_slice(&reply);
        dev.receive(now, &reply);
    }
    (up, down)
}

/// Every generated seed.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let (up, down) = conversation();

    // The hub's session: the device's whole stream (CONNECT included, so
    // raw), whole and cut; and the part after the CONNECT behind the body's
    // own CONNECT, with the hub's events on and with a stored session.
    let connect_len = h::good_connect(true).len();
    for (name, flags, cut, stream) in [
        ("conversation", h::RAW, 0, &up[..]),
        ("conversation-cut-7", h::RAW, 7, &up[..]),
        (
            "after-connect-hub-events",
            h::HUB_EVENTS,
            0,
            &up[connect_len..],
        ),
        (
            "stored-session",
            h::STORED | h::HUB_EVENTS,
            3,
            &up[connect_len..],
        ),
    ] {
        let mut seed = vec![flags, cut];
        seed.extend_from_slice(stream);
        seeds.push(("hub_session", name.into(), seed));
    }

    // The device's session: the hub's whole stream (raw), whole and cut.
    for (name, flags, cut) in [
        ("conversation", d::RAW, 0),
        ("conversation-cut-5", d::RAW, 5),
        (
            "conversation-no-dedupe-telemetry",
            d::RAW | d::NO_DEDUPE | d::TELEMETRY,
            2,
        ),
    ] {
        let mut seed = vec![flags, cut];
        seed.extend_from_slice(&down);
        seeds.push(("device_session", name.into(), seed));
    }

    // MCUboot: images signed with the development keys the body trusts.
    let ed25519 = SigningKey::from_pkcs8_pem(crate::mcuboot::ED25519_KEY_PEM).expect("key");
    let p256 = SigningKey::from_pkcs8_pem(crate::mcuboot::P256_KEY_PEM).expect("key");
    let payload: Vec<u8> = (0..64u8).collect();
    for (name, key, opts) in [
        (
            "ed25519-counter",
            &ed25519,
            SignOptions {
                version: ImageVersion::new(1, 2, 3, 4),
                security_counter: Some(3),
                ..SignOptions::default()
            },
        ),
        (
            "p256-no-counter",
            &p256,
            SignOptions {
                version: ImageVersion::new(0, 9, 0, 0),
                ..SignOptions::default()
            },
        ),
        (
            "ed25519-padded-slot",
            &ed25519,
            SignOptions {
                version: ImageVersion::new(2, 0, 0, 1),
                security_counter: Some(5),
                header_size: 0x40,
                slot_size: Some(1024),
                pad: Some(PadTrailer::Test),
                custom_tlvs: Vec::new(),
            },
        ),
    ] {
        let image = sign(&payload, key, &opts).expect("signing a seed image");
        seeds.push(("mcuboot_image", name.into(), image));
    }
    seeds
}
