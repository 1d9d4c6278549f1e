//! The gateway is a device: the fixture hub's server-side machinery
//! (SQLite, axum, rcgen — and the hub itself) stays out of its normal
//! dependencies. Read from the workspace's Cargo.lock (no cargo run: fast),
//! which lists each package's dependencies without their kind — so the
//! gateway's own dev-dependencies are left out by name, and everything else
//! is followed, which can only over-report.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What must never be linked into the gateway.
const FORBIDDEN: &[&str] = &["hub-fixture", "rusqlite", "libsqlite3-sys", "axum", "rcgen"];

struct Lock {
    /// "name version" → its dependencies, as "name version".
    deps: BTreeMap<String, Vec<String>>,
}

impl Lock {
    fn read() -> Lock {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
        let text = std::fs::read_to_string(&root).unwrap();
        let lock: toml::Table = toml::from_str(&text).unwrap();
        let packages = lock["package"].as_array().unwrap();
        let key = |p: &toml::Table| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        };
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in packages {
            let p = p.as_table().unwrap();
            versions
                .entry(p["name"].as_str().unwrap().to_owned())
                .or_default()
                .push(key(p));
        }
        let mut deps = BTreeMap::new();
        for p in packages {
            let p = p.as_table().unwrap();
            let list = p.get("dependencies").and_then(|d| d.as_array());
            let resolved = list
                .into_iter()
                .flatten()
                .map(|d| {
                    // "name", "name version" or "name version (source)".
                    let mut parts = d.as_str().unwrap().split(' ');
                    let name = parts.next().unwrap();
                    match parts.next() {
                        Some(v) => format!("{name} {v}"),
                        None => versions[name][0].clone(),
                    }
                })
                .collect();
            deps.insert(key(p), resolved);
        }
        Lock { deps }
    }

    fn find(&self, name: &str) -> String {
        self.deps
            .keys()
            .find(|k| k.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not in Cargo.lock"))
            .clone()
    }

    /// Package names reachable from `root`, leaving out `skip` among the
    /// root's own dependencies.
    fn reachable(&self, root: &str, skip: &BTreeSet<String>) -> BTreeSet<String> {
        let start = self.find(root);
        let mut seen = BTreeSet::from([start.clone()]);
        let mut todo: Vec<String> = self.deps[&start]
            .iter()
            .filter(|d| !skip.contains(d.split(' ').next().unwrap()))
            .cloned()
            .collect();
        while let Some(p) = todo.pop() {
            if seen.insert(p.clone()) {
                todo.extend(self.deps[&p].iter().cloned());
            }
        }
        seen.iter()
            .map(|k| k.split(' ').next().unwrap().to_owned())
            .collect()
    }
}

/// The gateway's dev-only dependencies: in `[dev-dependencies]` and not in
/// `[dependencies]`.
fn dev_only() -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let m: toml::Table = toml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let names = |section: &str| -> BTreeSet<String> {
        m.get(section)
            .and_then(|s| s.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    };
    names("dev-dependencies")
        .difference(&names("dependencies"))
        .cloned()
        .collect()
}

#[test]
fn nothing_of_the_fixture_hub_is_linked_into_the_gateway() {
    let lock = Lock::read();
    let skip = dev_only();
    assert!(skip.contains("hub-fixture"), "the tests' hub: {skip:?}");
    let gateway = lock.reachable("field-gateway", &skip);
    // The walk sees the gateway's real dependencies...
    for needed in ["rumqttc", "rustls", "ring", "tokio-modbus", "device-core"] {
        assert!(
            gateway.contains(needed),
            "{needed} not reached: {gateway:?}"
        );
    }
    // ...and would see the hub's (a walk that cannot find them proves nothing).
    let hub = lock.reachable("hub-fixture", &BTreeSet::new());
    for f in FORBIDDEN.iter().filter(|f| **f != "hub-fixture") {
        assert!(hub.contains(*f), "the walk misses {f} under hub-fixture");
    }
    let linked: Vec<&&str> = FORBIDDEN.iter().filter(|f| gateway.contains(**f)).collect();
    assert!(
        linked.is_empty(),
        "the gateway links {linked:?}; `cargo tree -p field-gateway -e normal -i <name>` shows why"
    );
}
