//! The data directory: one live hub at a time (an advisory lock, refused
//! with one line and exit 2, nothing of the live hub touched), and
//! owner-only modes for the directory and every private key the hub writes.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use common::*;
use hub_fixture::hub::{HubConfig, HubError, HubFixture};
use tokio::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir` with its length, modification time and content
/// hash: what "nothing touched" is checked against.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.insert(e.path(), (meta.len(), meta.modified().unwrap(), bytes));
            }
        }
    }
    out
}

fn hub_started_count(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""kind":"hub_started""#))
        .count()
}

#[tokio::test]
async fn a_second_hub_on_a_live_hubs_directory_is_refused_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let first = start_hub(&dir).await;
    first.register_device("d").unwrap();
    let before = snapshot(&dir);

    let err = HubFixture::start(HubConfig::for_tests(&dir))
        .await
        .expect_err("a second hub on the same directory must be refused");
    assert!(matches!(err, HubError::DataDirInUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&dir.display().to_string()) && text.contains("another hub"),
        "the error names the directory and its holder: {text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert_eq!(
        snapshot(&dir),
        before,
        "the refused hub changed the live hub's files"
    );
    assert_eq!(hub_started_count(&dir), 1);
    // The live hub goes on working.
    first.register_device("e").unwrap();

    // Once it has stopped, the directory is free again at once.
    first.shutdown();
    let second = start_hub(&dir).await;
    assert!(
        second.device("d").is_ok(),
        "the restarted hub kept its store"
    );
    second.shutdown();
}

#[tokio::test]
async fn a_second_serve_on_a_live_hubs_directory_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let (mut first, _ready) = spawn_hub(&dir).await;
    let before = snapshot(&dir);

    let out = run(Command::new(env!("CARGO_BIN_EXE_hub-fixture"))
        .args(["serve", "--data"])
        .arg(&dir)
        .args([
            "--mqtt",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--listen-admin",
            "127.0.0.1:0",
        ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no ready line");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&dir.display().to_string())
            && stderr.contains("another hub")
            && stderr.contains(&format!("pid {}", first.id().unwrap())),
        "{stderr}"
    );
    assert_eq!(snapshot(&dir), before, "the live hub's files were touched");
    assert_eq!(hub_started_count(&dir), 1);

    // SIGKILL: the kernel drops the lock with the process, nothing else needed.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let (_again, ready) = spawn_hub(&dir).await;
    assert!(ready["mqtt"].is_string());
    assert_eq!(hub_started_count(&dir), 2);
}

#[tokio::test]
async fn a_new_data_directory_and_the_keys_in_it_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/hub");
    let key_log = tmp.path().join("tls-keys.log");
    let mut config = HubConfig::for_tests(&dir);
    config.key_log = Some(key_log.clone());
    let hub = start_hub_with(config).await;
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&dir.join("firmware")), 0o700, "firmware directory");
    assert_eq!(mode(&dir.join("ca.key")), 0o600, "CA key");
    assert_eq!(mode(&key_log), 0o600, "TLS key log");
    hub.shutdown();
}

#[tokio::test]
async fn an_existing_directory_and_ca_key_readable_by_others_are_made_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let hub = start_hub(&dir).await;
    hub.shutdown();
    // As left by an older hub, or copied by hand.
    let set =
        |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    set(&dir, 0o755);
    set(&dir.join("ca.key"), 0o644);
    let key_log = tmp.path().join("tls-keys.log");
    std::fs::write(&key_log, "").unwrap();
    set(&key_log, 0o644);

    let mut config = HubConfig::for_tests(&dir);
    config.key_log = Some(key_log.clone());
    let hub = start_hub_with(config).await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&key_log), 0o600);
    hub.shutdown();
}

/// Under umask 000 a file made with the default mode is world-writable: the
/// modes must come from the hub and the CLI, not from the caller's umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_do_not_depend_on_the_umask_and_the_cli_writes_device_keys_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    let exe = env!("CARGO_BIN_EXE_hub-fixture");
    let mut serve = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" serve --data "$1" --host-name localhost --mqtt 127.0.0.1:0 --https 127.0.0.1:0 --listen-admin 127.0.0.1:0"#)
        .arg(exe)
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let line = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(serve.stdout.take().unwrap()).lines();
        tokio::time::timeout(GUARD, lines.next_line())
            .await
            .expect("hub announces itself")
            .unwrap()
            .expect("a ready line")
    };
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);

    let creds = tmp.path().join("creds");
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" --admin "$1" register dev-1 --out "$2""#)
        .arg(exe)
        .arg(ready["admin"].as_str().unwrap())
        .arg(&creds))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&creds.join("dev-1.key")), 0o600, "device key");
    let key = std::fs::read_to_string(creds.join("dev-1.key")).unwrap();
    assert!(key.contains("PRIVATE KEY"), "{key}");
}
