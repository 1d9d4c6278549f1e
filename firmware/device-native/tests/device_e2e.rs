//! The emulated board end to end against the fixture hub on loopback: it
//! boots from a signed image, connects with mTLS, sends telemetry, gets the
//! command queued while it was down, rotates its credential on
//! `credentials/rotate`, takes an OTA update and confirms it, and a crashing
//! update is reverted by the bootloader.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use device_native::flash::{FlashFile, Layout, Region};
use hub_fixture::hub::{HubConfig, HubFixture};
use hub_fixture::journal::{Event, JournalEntry};
use hub_fixture::store::NewMessage;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};

/// Guards against a hung test; never a synchronisation point.
const GUARD: Duration = Duration::from_secs(90);
const ID: &str = "dev-e2e";

fn signed(payload: &[u8], major: u8, minor: u8, counter: u32) -> Vec<u8> {
    sacbench_test_support::sign_dev(payload, major, minor, counter)
}

fn device_executable() -> Vec<u8> {
    std::fs::read(env!("CARGO_BIN_EXE_device-native")).unwrap()
}

/// The board's process group is killed when the test ends (power off).
struct Board(Child);

impl Drop for Board {
    fn drop(&mut self) {
        // killpg(2) directly: procps `kill -KILL -<pgid>` parses the group as
        // a signal option and signals group 9 instead (seen killing the host's
        // processes), so no `kill` binary here.
        if let Some(pid) = self.0.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn wait(
    hub: &HubFixture,
    after: u64,
    what: &str,
    pred: impl FnMut(&JournalEntry) -> bool,
) -> JournalEntry {
    match hub.journal().wait_for(after, GUARD, pred).await {
        Some(e) => e,
        None => panic!(
            "no journal entry for {what}; journal since {after}:\n{}",
            hub.journal()
                .since(after)
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Waits until the device's reported twin satisfies `pred`.
async fn wait_reported(
    hub: &HubFixture,
    mut after: u64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let reported = hub.twin(ID).unwrap().reported;
        if pred(&reported) {
            return reported;
        }
        after = wait(hub, after, what, |e| {
            matches!(e.event, Event::TwinReported { .. })
        })
        .await
        .seq;
    }
}

fn firmware_state(r: &Value) -> (String, String) {
    let fw = &r["firmware"];
    (
        fw["version"].as_str().unwrap_or("").into(),
        fw["state"].as_str().unwrap_or("").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_connect_commands_rotation_ota_and_revert() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubFixture::start(HubConfig::for_tests(dir.path().join("hub")))
        .await
        .unwrap();
    let creds = hub.register_device(ID).unwrap();
    // Queued while the device is still off.
    let queued = hub
        .send_c2d(
            ID,
            NewMessage {
                message_id: None,
                payload: b"open-valve".to_vec(),
                properties: vec![],
                ttl_ms: None,
            },
        )
        .unwrap();

    let prov = dir.path().join("provisioning");
    let mut device = sacbench_provisioning::DeviceJson::new(
        ID,
        hub.host_name(),
        hub.mqtt_addr().port(),
        hub.https_addr().port(),
    );
    device.telemetry_interval_seconds = Some(1);
    sacbench_provisioning::write(
        &prov,
        &sacbench_provisioning::Provisioning {
            device,
            certificate_pem: creds.cert_pem.clone(),
            private_key_pem: creds.key_pem.clone(),
            hub_ca_pem: creds.ca_pem.clone(),
            image_signing_key_pem: None,
        },
    )
    .unwrap();
    let flash_path: PathBuf = dir.path().join("flash.bin");
    let layout = Layout {
        slot_size: 32 * 1024 * 1024,
        ..Layout::default()
    };
    let flash = FlashFile::create(&flash_path, layout).unwrap();
    let v1 = signed(&device_executable(), 1, 0, 1);
    flash.write(Region::Primary, 0, &v1).unwrap();
    drop(flash);

    let mark = hub.journal().len();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_device-native"));
    cmd.arg("boot")
        .arg("--flash")
        .arg(&flash_path)
        .arg("--provisioning")
        .arg(&prov)
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .process_group(0)
        .stdin(Stdio::null())
        // The board's console; payloads inherit it, so a file, not a pipe.
        .stderr(std::fs::File::create(dir.path().join("console.log")).unwrap())
        .kill_on_drop(true);
    let _board = Board(cmd.spawn().unwrap());

    // mTLS session with the provisioned certificate, telemetry, the queued command.
    let e = wait(&hub, mark, "connect", |e| {
        matches!(e.event, Event::Connected { .. })
    })
    .await;
    let Event::Connected {
        client_id, serial, ..
    } = e.event
    else {
        unreachable!()
    };
    assert_eq!(
        (client_id.as_str(), serial.as_str()),
        (ID, creds.serial.as_str())
    );
    let applied = wait(&hub, mark, "command applied", |e| {
        matches!(&e.event, Event::Telemetry { payload, properties, .. }
            if properties.iter().any(|(k, v)| k == "kind" && v == "command-applied") && payload.contains("open-valve"))
    })
    .await;
    let Event::Telemetry { payload, .. } = applied.event else {
        unreachable!()
    };
    assert!(payload.contains(&queued.message_id), "{payload}");
    wait(&hub, mark, "PUBACK of the command", |e| {
        matches!(e.event, Event::C2dAcked { .. })
    })
    .await;
    wait(&hub, mark, "heartbeat", |e| {
        matches!(&e.event, Event::Telemetry { properties, .. } if properties.iter().any(|(_, v)| v == "heartbeat"))
    })
    .await;
    wait_reported(&hub, mark, "firmware report", |r| {
        firmware_state(r).0 == "1.0.0"
    })
    .await;

    // Rotation on the method: new key, new cert, reconnect, old one revoked.
    let mark = hub.journal().len();
    let r = hub
        .invoke_method(
            ID,
            "credentials/rotate",
            &json!({}),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let e = wait(&hub, mark, "enrolment", |e| {
        matches!(e.event, Event::Enrolled { .. })
    })
    .await;
    let Event::Enrolled {
        new_serial,
        thumbprint,
        ..
    } = e.event
    else {
        unreachable!()
    };
    wait(
        &hub,
        mark,
        "reconnect with the new cert",
        |e| matches!(&e.event, Event::Connected { serial, .. } if *serial == new_serial),
    )
    .await;
    wait(
        &hub,
        mark,
        "old cert revoked",
        |e| matches!(&e.event, Event::Revoked { serial } if *serial == creds.serial),
    )
    .await;
    wait_reported(&hub, mark, "new thumbprint reported", |r| {
        r["credentials"]["thumbprint"] == json!(thumbprint)
            && r["credentials"]["state"] == json!("rotated")
    })
    .await;

    // OTA to 1.1.0 (the same executable, a new signed image): confirmed.
    let v2 = signed(&device_executable(), 1, 1, 2);
    hub.put_firmware("1.1.0.img", &v2).unwrap();
    let mark = hub.journal().len();
    let desired = |v: &str, img: &[u8]| {
        json!({ "firmware": { "version": v, "url": format!("https://{}/firmware/{v}.img", hub.host_name()),
                "sha256": hex::encode(Sha256::digest(img)), "size": img.len() } })
    };
    hub.patch_desired(ID, &desired("1.1.0", &v2)).unwrap();
    let r = wait_reported(&hub, mark, "1.1.0 confirmed", |r| {
        firmware_state(r) == ("1.1.0".into(), "confirmed".into())
    })
    .await;
    assert_eq!(
        r["credentials"]["thumbprint"],
        json!(thumbprint),
        "the rotated credential survives the update"
    );

    // A crashing image (a real executable that dies at once) is reverted.
    let crash = signed(b"#!/bin/sh\necho crashing >&2\nkill -SEGV $$\n", 1, 2, 3);
    hub.put_firmware("1.2.0.img", &crash).unwrap();
    let mark = hub.journal().len();
    hub.patch_desired(ID, &desired("1.2.0", &crash)).unwrap();
    let r = wait_reported(&hub, mark, "1.2.0 reverted", |r| {
        firmware_state(r).1 == "reverted"
    })
    .await;
    assert_eq!(
        firmware_state(&r).0,
        "1.1.0",
        "the previous image runs again: {r}"
    );
}
