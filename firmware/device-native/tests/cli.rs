//! The `device-native` command line: the fault list, bad images refused with
//! a clear reason, a bricked board halting with its reason, and network
//! faults opening exactly what they name.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use device_native::flash::{FlashFile, Layout, Region};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const GUARD: Duration = Duration::from_secs(30);

async fn run(args: &[&str]) -> Output {
    tokio::time::timeout(
        GUARD,
        Command::new(env!("CARGO_BIN_EXE_device-native"))
            .args(args)
            .output(),
    )
    .await
    .unwrap()
    .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn list_faults_prints_the_whole_catalogue() {
    let out = run(&["--list-faults"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for f in device_core::faults::CATALOGUE {
        let line = text
            .lines()
            .find(|l| l.starts_with(f.name))
            .unwrap_or_else(|| panic!("{} missing", f.name));
        assert!(f.cases.iter().all(|c| line.contains(c)), "{line}");
    }
    assert_eq!(text.lines().count(), device_core::faults::CATALOGUE.len());
}

#[tokio::test]
async fn bad_images_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let layout = Layout {
        slot_size: 1024 * 1024,
        ..Layout::default()
    };
    FlashFile::create(&flash, layout).unwrap();
    let f = flash.to_str().unwrap();
    let good = {
        let key = mcuboot_image::SigningKey::generate(mcuboot_image::KeyType::Ed25519);
        mcuboot_image::sign(&[7u8; 5000], &key, &mcuboot_image::SignOptions::default()).unwrap()
    };
    let mut huge = good.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes()); // img_size
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated.img", good[..100].to_vec(), "truncated.img"),
        ("magic.img", magic, "magic"),
        ("huge.img", huge, "huge.img"),
        ("empty.img", Vec::new(), "empty.img"),
    ];
    for (name, bytes, mention) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(&[
            "write-image",
            "--flash",
            f,
            "--slot",
            "secondary",
            path.to_str().unwrap(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(
            err.contains(mention) && err.lines().count() == 1,
            "{name}: {err}"
        );
    }
    let out = run(&["make-flash", f]).await;
    assert!(
        !out.status.success() && stderr(&out).contains("flash.bin"),
        "never overwrites: {}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_board_without_a_valid_image_halts_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let f = FlashFile::create(
        &flash,
        Layout {
            slot_size: 1024 * 1024,
            ..Layout::default()
        },
    )
    .unwrap();
    f.write(Region::Primary, 0, b"garbage, not an image")
        .unwrap();
    drop(f);
    let prov = common::placeholder_provisioning(&dir.path().join("prov"), "d", 1, &[]);
    let out = run(&[
        "boot",
        "--flash",
        flash.to_str().unwrap(),
        "--provisioning",
        prov.to_str().unwrap(),
        "--run-dir",
        dir.path().join("run").to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no bootable image") && stderr(&out).contains("magic"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn listen_debug_and_udp_discovery_open_exactly_their_ports() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_fixture::hub::HubFixture::start(hub_fixture::hub::HubConfig::for_tests(
        dir.path().join("hub"),
    ))
    .await
    .unwrap();
    let creds = hub.register_device("d").unwrap();
    common::provisioning_dir(
        &dir.path().join("prov"),
        "d",
        "localhost",
        hub.mqtt_addr().port(),
        hub.https_addr().port(),
        (&creds.ca_pem, &creds.cert_pem, &creds.key_pem),
        &["listen-debug", "udp-discovery"],
    );
    FlashFile::create(
        &dir.path().join("flash.bin"),
        Layout {
            slot_size: 1024 * 1024,
            ..Layout::default()
        },
    )
    .unwrap();
    let mut device = Command::new(env!("CARGO_BIN_EXE_device-native"))
        .arg("app")
        .arg("--flash")
        .arg(dir.path().join("flash.bin"))
        .arg("--provisioning")
        .arg(dir.path().join("prov"))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(device.stderr.take().unwrap()).lines();
    let (mut tcp_up, mut udp_up) = (false, 0);
    while !(tcp_up && udp_up == 2) {
        let line = tokio::time::timeout(GUARD, log.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("device runs");
        tcp_up |= line.contains("listening on TCP 2323");
        udp_up += usize::from(line.contains("answering on UDP"));
    }
    let mut s = tokio::net::TcpStream::connect("127.0.0.1:2323")
        .await
        .expect("the debug port is open");
    let mut banner = [0u8; 11];
    s.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"debug shell");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"probe", "127.0.0.1:5683").await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(GUARD, udp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    // Nothing else: the boot-time port stays closed without its fault.
    assert!(tokio::net::TcpStream::connect("127.0.0.1:8080")
        .await
        .is_err());
    let _ = s.shutdown().await;
}
