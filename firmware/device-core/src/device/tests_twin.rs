//! The device's twin after reconnects: desired `$version`s (a stale GET
//! response or patch is ignored; fault `apply-stale-twin`), the applied
//! interval reported back, and the CONNACK timeout's scale.

use alloc::format;
use alloc::string::ToString;

use serde_json::{json, Value};

use super::tests::{publish, Bench};
use super::*;
use crate::faults::{Fault, FaultSet};

fn patch(b: &mut Bench, version: i64, body: Value) {
    let topic = format!("$iothub/twin/PATCH/properties/desired/?$version={version}");
    b.hub(&publish(&topic, None, false, body.to_string().as_bytes()));
}

fn reported_intervals(b: &Bench) -> Vec<u64> {
    b.reported()
        .iter()
        .filter_map(|r| r["telemetryIntervalSeconds"].as_u64())
        .collect()
}

/// Online, the twin at `$version` 2 (interval 5 s), then a patch at 4 (7 s)
/// and a GET response still at 3 (9 s), in that order.
fn stale_get_after_patch(faults: FaultSet) -> Bench {
    let mut b = Bench::new(faults);
    b.online();
    b.twin(json!({ "telemetryIntervalSeconds": 5, "$version": 2 }));
    // A reconnect, whose GET is answered late.
    b.event(Event::TransportDown { reason: "reset" });
    b.at(b.dev.poll_timeout().unwrap());
    b.online();
    patch(
        &mut b,
        4,
        json!({ "telemetryIntervalSeconds": 7, "$version": 4 }),
    );
    b.twin(json!({ "telemetryIntervalSeconds": 9, "$version": 3 }));
    b
}

#[test]
fn a_get_response_older_than_the_applied_patch_is_ignored() {
    let b = stale_get_after_patch(FaultSet::NONE);
    assert_eq!(b.dev.telemetry_interval_ms(), 7000);
    assert_eq!(reported_intervals(&b), [5, 7]);
    assert!(b.has_log("twin GET: desired $version 3 is older than the applied 4: ignored"));
}

#[test]
fn fault_apply_stale_twin_applies_it() {
    let b = stale_get_after_patch(FaultSet::NONE.with(Fault::ApplyStaleTwin));
    assert_eq!(b.dev.telemetry_interval_ms(), 9000);
    assert_eq!(reported_intervals(&b), [5, 7, 9]);
}

#[test]
fn stale_patches_are_ignored_and_newer_or_equal_versions_applied() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.twin(json!({ "telemetryIntervalSeconds": 5, "$version": 6 }));
    patch(&mut b, 5, json!({ "telemetryIntervalSeconds": 8 }));
    assert_eq!(b.dev.telemetry_interval_ms(), 5000);
    // The same version again (its notification after the GET) changes nothing.
    patch(&mut b, 6, json!({ "telemetryIntervalSeconds": 5 }));
    patch(&mut b, 7, json!({ "telemetryIntervalSeconds": 11 }));
    assert_eq!(b.dev.telemetry_interval_ms(), 11_000);
    assert_eq!(reported_intervals(&b), [5, 5, 11]);
}

#[test]
fn a_desired_change_made_offline_is_read_by_the_get_after_the_reconnect() {
    let mut b = Bench::new(FaultSet::NONE);
    b.online();
    b.twin(json!({ "telemetryIntervalSeconds": 5, "$version": 2 }));
    b.event(Event::TransportDown {
        reason: "link down",
    });
    b.at(b.dev.poll_timeout().unwrap());
    b.online();
    b.twin(json!({ "telemetryIntervalSeconds": 30, "$version": 3 }));
    assert_eq!(reported_intervals(&b), [5, 30]);
}

#[test]
fn the_connack_timeout_scales_with_the_reconnect_base() {
    let mut config = super::tests::config(FaultSet::NONE);
    assert_eq!(connack_timeout_ms(&config.backoff), 5_000);
    config.backoff.base_ms = 250;
    assert_eq!(connack_timeout_ms(&config.backoff), 1_250);
    let mut b = Bench::with(
        config,
        super::tests::boot_state(),
        super::tests::provisioned_region(),
        None,
        CommandLog::default(),
    );
    b.timeout();
    b.event(Event::TransportUp);
    // No CONNACK: the attempt is given up 1.25 s after CONNECT, then backs off.
    let connected_at = b.now;
    assert_eq!(b.dev.poll_timeout(), Some(connected_at + 1_250));
    b.at(connected_at + 1_250);
    b.timeout();
    assert!(b.has_log("session closed"), "{:?}", b.logs);
    assert_eq!(b.connects, 1);
}
