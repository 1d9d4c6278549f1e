//! The gdbstub client and [`GdbRtt`] against a fake stub on a Unix socket
//! that behaves as QEMU's does: the target stops when a client connects and
//! on any byte while it runs (the byte is dropped), a stop reply follows,
//! packets are acknowledged, `m`/`M`/`?`/`c` answered.

use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use super::*;
use crate::rtt::tests::{print, target, FakeMemory};

const BASE: u64 = 0x2000_0000;

#[derive(Default)]
struct Seen {
    halts: usize,
    resumes: usize,
    running: bool,
}

/// Serves one client on `listener`, the target's memory `mem`; each time it
/// resumes, the target prints the next of `lines`. Ends when the client goes.
fn serve(
    listener: &UnixListener,
    mem: &mut FakeMemory,
    lines: &mut Vec<&[u8]>,
    seen: &Mutex<Seen>,
) {
    let (mut s, _) = listener.accept().expect("accept");
    // QEMU stops the VM on the connection and may say so unasked.
    seen.lock().unwrap().running = false;
    s.write_all(&rsp::encode(b"T05thread:01;")).unwrap();
    let mut d = rsp::Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut bytes = &buf[..n];
        if seen.lock().unwrap().running {
            // Any byte stops a running target and is dropped.
            let mut g = seen.lock().unwrap();
            g.running = false;
            g.halts += 1;
            drop(g);
            s.write_all(&rsp::encode(b"T02thread:01;")).unwrap();
            bytes = &bytes[1..];
        }
        for f in d.push(bytes) {
            let Frame::Packet(p) = f else { continue };
            let answer: Option<Vec<u8>> = match p[0] {
                b'?' => Some(b"S05".to_vec()),
                b'c' => {
                    let mut g = seen.lock().unwrap();
                    g.running = true;
                    g.resumes += 1;
                    if !lines.is_empty() {
                        print(mem, 4, lines.remove(0));
                    }
                    None
                }
                b'm' => {
                    let text = String::from_utf8(p[1..].to_vec()).unwrap();
                    let (a, l) = text.split_once(',').unwrap();
                    let (a, l) = (
                        u64::from_str_radix(a, 16).unwrap(),
                        usize::from_str_radix(l, 16).unwrap(),
                    );
                    assert!(l <= rsp::MAX_READ);
                    let mut out = vec![0u8; l];
                    Some(match mem.read(a, &mut out) {
                        Ok(()) => out
                            .iter()
                            .flat_map(|b| format!("{b:02x}").into_bytes())
                            .collect(),
                        Err(_) => b"E14".to_vec(),
                    })
                }
                b'M' => {
                    let text = String::from_utf8(p[1..].to_vec()).unwrap();
                    let (head, hex) = text.split_once(':').unwrap();
                    let a = u64::from_str_radix(head.split_once(',').unwrap().0, 16).unwrap();
                    let data = rsp::memory(hex.as_bytes(), hex.len() / 2).unwrap();
                    mem.write(a, &data).unwrap();
                    Some(b"OK".to_vec())
                }
                _ => Some(Vec::new()),
            };
            // Acknowledged once handled, so the client sees its effect.
            s.write_all(b"+").unwrap();
            if let Some(a) = answer {
                s.write_all(&rsp::encode(&a)).unwrap();
            }
        }
    }
}

fn text(data: &[RttData]) -> String {
    data.iter()
        .map(|d| String::from_utf8_lossy(&d.bytes).into_owned())
        .collect()
}

#[test]
fn reads_rtt_halting_and_resuming_and_reattaches() {
    let dir = std::env::temp_dir().join(format!("sacbench-gdbrtt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("gdb.sock");
    let ram = Ram {
        start: BASE,
        size: 0x440,
    };
    let mut rtt = GdbRtt::new(sock.clone(), ram);
    // No QEMU yet: nothing, no error.
    assert!(rtt.read_rtt().unwrap().is_empty());

    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = UnixListener::bind(&sock).unwrap();
    let (again_tx, again) = std::sync::mpsc::channel();
    let server = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut mem = target(BASE, 4, 64);
            print(&mut mem, 4, b"device-mcu: boot (mps2-an385, cortex-m3)\n");
            let mut lines: Vec<&[u8]> = vec![b"net: up\n", b"tls: hub "];
            serve(&listener, &mut mem, &mut lines, &seen);
            // Power cycle: a new QEMU, a new socket, a new block.
            drop(listener);
            let _ = std::fs::remove_file(&sock);
            let listener = UnixListener::bind(&sock).unwrap();
            again_tx.send(()).unwrap();
            let mut mem = target(BASE, 4, 64);
            print(&mut mem, 4, b"device-mcu: boot again\n");
            serve(&listener, &mut mem, &mut Vec::new(), &seen);
        })
    };
    let first = rtt.read_rtt().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].channel, first[0].name.as_str()), (0, "Terminal"));
    assert_eq!(text(&first), "device-mcu: boot (mps2-an385, cortex-m3)\n");
    assert_eq!(text(&rtt.read_rtt().unwrap()), "net: up\n");
    assert_eq!(text(&rtt.read_rtt().unwrap()), "tls: hub ");
    assert!(rtt.read_rtt().unwrap().is_empty());
    {
        let g = seen.lock().unwrap();
        assert!(g.running, "every read lets the target run on");
        assert_eq!(
            (g.halts, g.resumes),
            (3, 4),
            "interrupted once per read after the first"
        );
    }
    // Power off: the rig resets the reader, QEMU goes (its socket with it).
    rtt.reset();
    again.recv().unwrap();
    // The fake's second life: the reader reconnects and finds the new block.
    assert_eq!(text(&rtt.read_rtt().unwrap()), "device-mcu: boot again\n");
    drop(rtt);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dead_stub_is_an_error() {
    let dir = std::env::temp_dir().join(format!("sacbench-gdbrtt-dead-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("gdb.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // Accepts and closes at once: the client's wait for the stop reply fails.
    let t = std::thread::spawn(move || drop(listener.accept()));
    let mut rtt = GdbRtt::new(
        sock,
        Ram {
            start: BASE,
            size: 0x800,
        },
    );
    let e = rtt.read_rtt().unwrap_err().to_string();
    assert!(e.contains("gdbstub") && e.contains("closed"), "{e}");
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
