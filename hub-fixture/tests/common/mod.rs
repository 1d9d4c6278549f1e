//! Shared test support: a hub on loopback in a temp dir, credentials on disk
//! for third-party clients, and third-party commands with a hang guard.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use hub_fixture::hub::{DeviceCredentials, HubConfig, HubFixture};
use hub_fixture::journal::{Event, JournalEntry};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Guards against a hung test; never a synchronisation point.
pub const GUARD: Duration = Duration::from_secs(20);

pub async fn start_hub(dir: &Path) -> HubFixture {
    start_hub_with(HubConfig::for_tests(dir)).await
}

pub async fn start_hub_with(config: HubConfig) -> HubFixture {
    HubFixture::start(config).await.expect("hub starts")
}

/// Paths of a device's PEM files.
pub struct CredFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

pub fn write_creds(dir: &Path, creds: &DeviceCredentials, tag: &str) -> CredFiles {
    let files = CredFiles {
        cert: dir.join(format!("{tag}.pem")),
        key: dir.join(format!("{tag}.key")),
        ca: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert, &creds.cert_pem).unwrap();
    std::fs::write(&files.key, &creds.key_pem).unwrap();
    std::fs::write(&files.ca, &creds.ca_pem).unwrap();
    files
}

/// Runs a command to completion, killing it if it outlives the guard.
pub async fn run(cmd: &mut tokio::process::Command) -> Output {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    tokio::time::timeout(GUARD, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish"))
        .unwrap_or_else(|e| {
            panic!("{cmd:?} could not start: {e} (is it installed? .ci/run installs it)")
        })
}

/// `mosquitto_pub`/`mosquitto_sub` arguments to reach `hub` as `client_id`.
pub fn mosquitto_args(hub: &HubFixture, files: &CredFiles, client_id: &str) -> Vec<String> {
    let mut args = vec![
        "-h".into(),
        "localhost".into(),
        "-p".into(),
        hub.mqtt_addr().port().to_string(),
        "-V".into(),
        "mqttv311".into(),
        "--cafile".into(),
        files.ca.display().to_string(),
        "-i".into(),
        client_id.into(),
        "-u".into(),
        format!("{}/{client_id}/?api-version=2021-04-12", hub.host_name()),
    ];
    if files.cert.exists() {
        args.extend([
            "--cert".into(),
            files.cert.display().to_string(),
            "--key".into(),
            files.key.display().to_string(),
        ]);
    }
    args
}

/// Waits for a journal entry after `after` matching `pred`; panics with the journal if none comes.
pub async fn expect_entry(
    hub: &HubFixture,
    after: u64,
    what: &str,
    pred: impl FnMut(&JournalEntry) -> bool,
) -> JournalEntry {
    match hub.journal().wait_for(after, GUARD, pred).await {
        Some(e) => e,
        None => panic!(
            "no journal entry for {what}; journal:\n{}",
            hub.journal()
                .since(after)
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

pub fn is_kind(e: &JournalEntry, f: impl Fn(&Event) -> bool) -> bool {
    f(&e.event)
}

/// Starts `hub-fixture serve` on ephemeral loopback ports; returns the child
/// and the addresses it announced on its first stdout line.
pub async fn spawn_hub(data: &Path) -> (Child, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-fixture"))
        .args(["serve", "--data"])
        .arg(data)
        .args([
            "--host-name",
            "localhost",
            "--mqtt",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--listen-admin",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hub-fixture binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(GUARD, lines.next_line())
        .await
        .expect("hub announces itself")
        .unwrap()
        .expect("a line");
    (
        child,
        serde_json::from_str(&line).expect("ready line is JSON"),
    )
}

pub fn addr(ready: &Value, key: &str) -> std::net::SocketAddr {
    ready[key].as_str().unwrap().parse().unwrap()
}
