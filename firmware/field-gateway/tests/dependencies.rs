//! The gateway is a device: the fixture hub's server-side machinery
//! (SQLite, axum, rcgen — and the hub itself) stays out of its normal
//! dependencies (read from Cargo.lock, see `sacbench_test_support::deps`).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::Path;

use sacbench_test_support::deps::{dev_only, Lock};

/// What must never be linked into the gateway.
const FORBIDDEN: &[&str] = &["hub-fixture", "rusqlite", "libsqlite3-sys", "axum", "rcgen"];

#[test]
fn nothing_of_the_fixture_hub_is_linked_into_the_gateway() {
    let lock = Lock::read();
    let skip = dev_only(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    assert!(skip.contains("hub-fixture"), "the tests' hub: {skip:?}");
    let gateway = lock.reachable("field-gateway");
    // The walk sees the gateway's real dependencies...
    for needed in ["rumqttc", "rustls", "ring", "tokio-modbus", "device-core"] {
        assert!(
            gateway.contains(needed),
            "{needed} not reached: {gateway:?}"
        );
    }
    // ...and would see the hub's (a walk that cannot find them proves nothing).
    let hub = lock.reachable("hub-fixture");
    for f in FORBIDDEN.iter().filter(|f| **f != "hub-fixture") {
        assert!(hub.contains(*f), "the walk misses {f} under hub-fixture");
    }
    let linked: Vec<&&str> = FORBIDDEN.iter().filter(|f| gateway.contains(**f)).collect();
    assert!(
        linked.is_empty(),
        "the gateway links {linked:?}; `cargo tree -p field-gateway -e normal -i <name>` shows why"
    );
}
