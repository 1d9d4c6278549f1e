//! A DNS responder in a namespace (test thread) for the device's hub name
//! look-up (record v2): the bench's own answers (`bench/rig/src/emulated/
//! dns/answer.rs`, compiled here too, so the tests talk to the protocol the
//! rig serves), for the names given, NXDOMAIN for any other. Every datagram
//! it handled is a note the test can wait on.

#[path = "../../../../bench/rig/src/emulated/dns/answer.rs"]
pub mod answer;

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Error, NetNs};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// A DNS server answering until dropped.
pub struct Dns {
    stop: Arc<AtomicBool>,
    notes: Receiver<String>,
    /// Every note read so far (for failure messages).
    pub seen: Vec<String>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Dns {
    /// Starts answering on `host:53` inside `ns` for `names`; returns once
    /// the socket is bound.
    pub fn start(ns: &NetNs, host: &str, names: Vec<(String, Ipv4Addr)>) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (note_tx, notes) = mpsc::channel();
        let host = host.to_owned();
        ns.spawn_inside(move || {
            let socket = match UdpSocket::bind((host.as_str(), DNS_PORT)) {
                Ok(socket) => socket,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("dns bind {host}:{DNS_PORT}: {e}")));
                    return;
                }
            };
            // Wakes to look at `stop`; queries are answered as they come.
            if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
                let _ = ready_tx.send(Err(format!("dns: {e}")));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let outcome = answer::answer(&buf[..n], &names);
                if let answer::Outcome::Reply { bytes, .. } = &outcome {
                    let _ = socket.send_to(bytes, from);
                }
                let note = format!("{} (from {from})", outcome.note());
                eprintln!("[dns responder] {note}");
                let _ = note_tx.send(note);
            }
        })?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("dns responder: {e}"))??;
        Ok(Dns {
            stop,
            notes,
            seen: Vec::new(),
        })
    }

    /// Waits for a note containing `needle` (what the responder did with a
    /// datagram); returns it.
    pub fn wait_note(&mut self, needle: &str, within: Duration) -> Result<String, Error> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notes.recv_timeout(left) {
                Ok(note) => {
                    self.seen.push(note.clone());
                    if note.contains(needle) {
                        return Ok(note);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no dns note with {needle:?} within {within:?}; saw {:?}",
                        self.seen
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("the dns responder stopped; saw {:?}", self.seen))
                }
            }
        }
    }
}
