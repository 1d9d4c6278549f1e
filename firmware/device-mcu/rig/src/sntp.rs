//! A minimal SNTP responder in a namespace (test thread), answering from
//! the host's clock moved by an offset, for the device's time.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, NetNs};

/// An SNTP server answering until dropped.
pub struct Sntp {
    stop: Arc<AtomicBool>,
}

impl Drop for Sntp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// NTP timestamp of the host's clock moved by `offset` seconds.
fn ntp_now(offset: i64) -> [u8; 8] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs().saturating_add_signed(offset) + 2_208_988_800;
    let frac = (u64::from(now.subsec_nanos()) << 32) / 1_000_000_000;
    let mut ts = [0u8; 8];
    ts[..4].copy_from_slice(&(secs as u32).to_be_bytes());
    ts[4..].copy_from_slice(&(frac as u32).to_be_bytes());
    ts
}

impl Sntp {
    /// Starts answering on `host:port` inside `ns`, from the host's clock
    /// moved by `offset` seconds; returns once the socket is bound.
    pub fn start(ns: &NetNs, host: &str, port: u16, offset: i64) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let host = host.to_owned();
        ns.spawn_inside(move || {
            let socket = match UdpSocket::bind((host.as_str(), port)) {
                Ok(socket) => socket,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("sntp bind {host}:{port}: {e}")));
                    return;
                }
            };
            // Wakes to look at `stop`; requests are answered as they come.
            if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(200))) {
                let _ = ready_tx.send(Err(format!("sntp: {e}")));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 48 || buf[0] & 7 != 3 {
                    continue;
                }
                let received = ntp_now(offset);
                let mut answer = [0u8; 48];
                answer[0] = (4 << 3) | 4; // LI 0, VN 4, mode 4 (server)
                answer[1] = 1; // stratum 1
                answer[2] = buf[2];
                answer[3] = 0xec; // precision 2^-20
                answer[12..16].copy_from_slice(b"TEST");
                answer[16..24].copy_from_slice(&received);
                answer[24..32].copy_from_slice(&buf[40..48]); // originate = their transmit
                answer[32..40].copy_from_slice(&received);
                answer[40..48].copy_from_slice(&ntp_now(offset));
                let _ = socket.send_to(&answer, from);
            }
        })?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("sntp responder: {e}"))??;
        Ok(Sntp { stop })
    }
}
