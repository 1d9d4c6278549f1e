//! The workspace's dependency graph as Cargo.lock resolves it (no cargo
//! run: fast), for tests that keep a crate boundary: the lock lists each
//! package's dependencies without their kind, so the dev-only dependencies
//! of the workspace's own packages (read from their manifests) are left out
//! by name and everything else is followed, which can only over-report.
#![allow(clippy::unwrap_used)] // test support: a malformed lock fails the test

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The workspace's resolved dependency graph, from its Cargo.lock.
pub struct Lock {
    /// "name version" → its dependencies, as "name version".
    deps: BTreeMap<String, Vec<String>>,
    /// A workspace package's name → its dev-only dependencies' names.
    dev_only: BTreeMap<String, BTreeSet<String>>,
}

impl Lock {
    /// Reads the workspace's Cargo.lock.
    pub fn read() -> Lock {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
        let text = std::fs::read_to_string(&root).expect("the workspace's Cargo.lock");
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
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root: toml::Table =
            toml::from_str(&std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap())
                .unwrap();
        let mut dev = BTreeMap::new();
        for member in root["workspace"]["members"].as_array().unwrap() {
            let manifest = workspace.join(member.as_str().unwrap()).join("Cargo.toml");
            let m: toml::Table =
                toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
            let name = m["package"]["name"].as_str().unwrap().to_owned();
            dev.insert(name, dev_only(&manifest));
        }
        Lock {
            deps,
            dev_only: dev,
        }
    }

    /// The lock's "name version" key of package `name` (its first version).
    pub fn find(&self, name: &str) -> String {
        self.deps
            .keys()
            .find(|k| k.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not in Cargo.lock"))
            .clone()
    }

    /// Package names reachable from `root` through normal and build
    /// dependencies (a workspace package's dev-only ones are not followed).
    pub fn reachable(&self, root: &str) -> BTreeSet<String> {
        let name = |k: &str| k.split(' ').next().unwrap().to_owned();
        let start = self.find(root);
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(p) = todo.pop() {
            if !seen.insert(p.clone()) {
                continue;
            }
            let skip = self.dev_only.get(&name(&p));
            todo.extend(
                self.deps[&p]
                    .iter()
                    .filter(|d| skip.is_none_or(|s| !s.contains(&name(d))))
                    .cloned(),
            );
        }
        seen.iter().map(|k| name(k)).collect()
    }
}

/// A package's dev-only dependencies (in `[dev-dependencies]`, not in
/// `[dependencies]`), from its manifest `manifest`.
pub fn dev_only(manifest: &Path) -> BTreeSet<String> {
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
