//! A UDP service the emulated rig runs in one of its namespaces (SNTP,
//! DNS on the gateway): the socket bound there, a thread answering each
//! datagram through the service's own handler, and a stop that wakes the
//! blocked receive with a datagram of its own over the namespace's
//! loopback. The protocols are their modules'; this is only the socket's
//! life.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::topology::in_netns;
use crate::RigError;

/// A datagram received, or why the receive failed.
pub type Received<'a> = std::io::Result<(&'a [u8], SocketAddr)>;

/// A service answering on a UDP port of a namespace until dropped.
pub struct UdpService {
    socket: UdpSocket,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpService {
    /// Binds UDP `port` on every address of `netns` and hands every datagram
    /// to `handle` (with the socket, to answer on) until dropped; `what`
    /// names the service in a setup error.
    pub fn start(
        netns: PathBuf,
        port: u16,
        what: &str,
        mut handle: impl FnMut(&UdpSocket, Received<'_>) + Send + 'static,
    ) -> Result<UdpService, RigError> {
        let what = format!("{what} on UDP {port} in {}", netns.display());
        let socket = in_netns(netns, move || {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        })?
        .map_err(|e| RigError::Setup(format!("{what}: {e}")))?;
        let serving = socket
            .try_clone()
            .map_err(|e| RigError::Setup(format!("{what}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            loop {
                let got = serving.recv_from(&mut buf);
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                handle(&serving, got.map(|(n, from)| (&buf[..n], from)));
            }
        });
        Ok(UdpService {
            socket,
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocked receive: a datagram to itself, over the
        // namespace's loopback (the socket lives in that namespace).
        let me = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if self.socket.send_to(&[0], me).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
