//! Commands (C2D) through the device machine: applied once, persisted
//! before the PUBACK, reported; redeliveries, payloads that are not text,
//! re-subscription after reconnects — and the faults that break each.

use alloc::vec::Vec;
use alloc::{format, vec};

use mqttrs::Packet;
use serde_json::{json, Value};

use super::tests::{
    boot_state, command, config, enc, faults, pid_of, provisioned_region, publish, Bench, Sent, ID,
    T0,
};
use super::*;
use crate::faults::{Fault, FaultSet};

#[test]
fn a_command_is_applied_once_persisted_before_its_puback_and_reported() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.trace.clear();
    b.hub(&command("m-1", 7, false));
    assert!(b.has_log("command applied mid=m-1 seq=0 payload=open-valve"));
    let persisted = b.position("persist commands").expect("ids persisted");
    let puback = b.position("Puback(7)").expect("PUBACK");
    assert!(persisted < puback, "{:?}", b.trace);
    let c = b.commands.clone().unwrap();
    assert!(AppliedIds::decode(&c.applied).unwrap().contains("m-1"));
    assert_eq!(c.unreported.len(), 1);
    // The report: telemetry kind=command-applied.
    let report = b.sent.iter().find_map(|s| match s {
        Sent::Publish {
            topic,
            payload,
            pid,
        } if topic.contains("kind=command-applied") => {
            Some((serde_json::from_slice::<Value>(payload).unwrap(), *pid))
        }
        _ => None,
    });
    let (body, pid) = report.expect("a report");
    assert_eq!(
        body,
        json!({ "mid": "m-1", "seq": 0, "payload": "open-valve" })
    );
    // Redelivered: acked, not applied again.
    b.hub(&command("m-1", 8, true));
    assert_eq!(b.sent.last(), Some(&Sent::Puback(8)));
    assert_eq!(
        b.logs
            .iter()
            .filter(|l| l.starts_with("command applied"))
            .count(),
        1
    );
    // The report's PUBACK clears it from the unreported list (at the next persist).
    b.hub(&enc(Packet::Puback(pid_of(pid.unwrap()))));
    assert!(b.dev.commands().unreported.is_empty());
}

#[test]
fn fault_no_dedupe_applies_a_redelivery_again() {
    let mut b = Bench::new(faults(Fault::NoDedupe));
    b.online();
    b.hub(&command("m-1", 7, false));
    b.hub(&command("m-1", 8, true));
    assert!(b.has_log("command applied mid=m-1 seq=1 "));
}

fn not_text() -> Vec<u8> {
    let topic = format!("devices/{ID}/messages/devicebound/%24.mid=m-bad");
    publish(&topic, Some(9), false, b"{\"set\": \xff\xfe")
}

#[test]
fn a_payload_that_is_not_text_is_applied_as_bytes_and_completed() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.hub(&not_text());
    assert!(b.has_log("command applied mid=m-bad seq=0 "));
    assert!(b.sent.contains(&Sent::Puback(9)));
    // One at IoT Hub's 64 KB limit: logged and reported as an excerpt.
    let topic = format!("devices/{ID}/messages/devicebound/%24.mid=m-big");
    b.hub(&publish(&topic, Some(10), false, &[b'x'; 65530]));
    let tail = format!("payload={}… (65530 bytes)", "x".repeat(64));
    assert!(
        b.logs.iter().any(|l| l.ends_with(&tail)),
        "{:?}",
        b.logs.last()
    );
    assert!(b.sent.contains(&Sent::Puback(10)));
    assert_eq!(
        b.commands.as_ref().map(|c| c.unreported[1].payload.len()),
        Some(tail.len() - 8)
    );
}

#[test]
#[should_panic(expected = "payload is not UTF-8")]
fn fault_panic_on_bad_command_aborts_on_a_payload_that_is_not_text() {
    let mut b = Bench::new(faults(Fault::PanicOnBadCommand));
    b.online();
    b.hub(&not_text());
}

#[test]
fn unreported_applications_are_sent_again_at_the_next_session() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.hub(&command("m-1", 7, false));
    b.event(Event::TransportDown { reason: "cut" });
    let before = b.sent.len();
    b.at(T0 + 750);
    b.online();
    let again = b.sent[before..].iter().any(|s| {
        matches!(s, Sent::Publish { topic, payload, .. }
            if topic.contains("kind=command-applied") && payload.windows(3).any(|w| w == b"m-1"))
    });
    assert!(again, "{:?}", &b.sent[before..]);
}

#[test]
fn fault_no_resubscribe_subscribes_to_commands_in_the_first_session_only() {
    for (fault, second_has_commands) in [
        (FaultSet::NONE, true),
        (faults(Fault::NoResubscribe), false),
    ] {
        let mut b = Bench::new(fault);
        b.online();
        b.event(Event::TransportDown { reason: "cut" });
        b.at(T0 + 750);
        b.online();
        let subs: Vec<_> = b
            .sent
            .iter()
            .filter_map(|s| match s {
                Sent::Subscribe { filters, .. } => {
                    Some(filters.iter().any(|f| f.contains("devicebound")))
                }
                _ => None,
            })
            .collect();
        assert_eq!(subs, vec![true, second_has_commands], "{fault:?}");
    }
    // Remembered in flash: after a reboot too.
    let log = CommandLog {
        subscribed_once: true,
        ..CommandLog::default()
    };
    let mut b = Bench::with(
        config(faults(Fault::NoResubscribe)),
        boot_state(),
        provisioned_region(),
        None,
        log,
    );
    b.online();
    assert!(b.has_log("subscribed (commands: false)"));
}
