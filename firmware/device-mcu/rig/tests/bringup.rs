//! The bring-up proof: the thumbv7m image boots under QEMU, takes its static
//! address, answers ping from the namespace, and connects to a TCP listener
//! there, saying hello. Needs root, `qemu-system-arm`, `ping` and the
//! thumbv7m-none-eabi target; run with `cargo test` in this folder.
#![allow(clippy::unwrap_used)]

use device_mcu_rig::{build_image, NetNs, Qemu};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

const HOST: &str = "10.0.17.1";
const DEVICE: &str = "10.0.17.2";
const PORT: u16 = 7700;
const ANSWER: &str = "ack from the bench\n";

#[test]
fn boots_gets_its_address_answers_ping_and_connects_over_tcp() {
    let elf = build_image(&format!("{DEVICE}/24"), &format!("{HOST}:{PORT}")).unwrap();
    let ns = NetNs::create(
        &format!("devmcu-{}", std::process::id()),
        "tap0",
        &format!("{HOST}/24"),
    )
    .unwrap();

    // The peer: a listener inside the namespace, up before the device boots.
    let (ready_tx, ready_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let _peer = ns
        .spawn_inside(move || {
            let listener = TcpListener::bind((HOST, PORT)).unwrap();
            ready_tx.send(()).unwrap();
            let (stream, from) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut hello = String::new();
            reader.read_line(&mut hello).unwrap();
            reader.get_mut().write_all(ANSWER.as_bytes()).unwrap();
            // The device closes after reading the answer: EOF here.
            let mut rest = String::new();
            reader.read_to_string(&mut rest).unwrap();
            got_tx.send((from, hello, rest)).unwrap();
        })
        .unwrap();
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener in the namespace");

    let mut qemu = Qemu::boot(&ns, &elf, "52:54:00:17:00:02").unwrap();
    qemu.wait_line("device-mcu: boot", Duration::from_secs(30))
        .unwrap();
    let lan = qemu
        .wait_line("lan9118: id_rev=", Duration::from_secs(10))
        .unwrap();
    assert!(lan.contains("id_rev=0x01180001"), "{lan}");
    assert!(
        lan.contains("mac=52-54-00-17-00-02"),
        "the -nic mac reaches the driver: {lan}"
    );
    let up = qemu.wait_line("net: up", Duration::from_secs(10)).unwrap();
    assert!(up.contains(&format!("ip={DEVICE}/24")), "{up}");

    // ICMP echo from the namespace: ping waits for each reply (ARP included).
    // Payload sizes cover the smallest frame (1 byte: 43-byte frame, shorter
    // than Ethernet's 60, which QEMU does not pad), a frame whose length is
    // not a multiple of 4, and the largest (1472: a 1514-byte frame).
    for size in ["56", "1", "1001", "1472"] {
        // -c 3 -w 30: ping fails unless all three replies come within 30 s.
        let ping = ns
            .command("ping")
            .args(["-c", "3", "-i", "0.2", "-w", "30", "-s", size, DEVICE])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "echo replies of {size} bytes from {DEVICE} missing: {}{}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
    }

    // And the device's own TCP connection to the listener.
    let (from, hello, rest) = got_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the device connects");
    assert_eq!(from.ip().to_string(), DEVICE);
    assert_eq!(hello, "hello from device-mcu\n");
    assert_eq!(rest, "", "nothing after the hello, then the device's FIN");
    qemu.wait_line("tcp: sent hello", Duration::from_secs(10))
        .unwrap();
    let answer = qemu
        .wait_line("tcp: received", Duration::from_secs(10))
        .unwrap();
    assert!(answer.contains("\"ack from the bench\""), "{answer}");
    qemu.wait_line("tcp: closed", Duration::from_secs(30))
        .unwrap();
    // All the firmware's RAM is its stack; it must fit the 256 KB board class.
    let stack = qemu
        .wait_line("stack: peak", Duration::from_secs(5))
        .unwrap();
    let peak: usize = stack
        .split("peak=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stack use not measured: {stack}"));
    assert!(peak < 256 * 1024, "{stack}");
}
