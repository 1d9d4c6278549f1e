//! The emulated rig's name server: DNS on UDP 53 of the gateway's
//! namespace, for boards that bring their own IP stack (`network = "tap"`)
//! and look their hub up by name, as a lab's or a site's resolver would
//! serve them (`{dns_server}`). It knows the names the sandbox's hosts file
//! holds ([`Topology::host_names`]) and nothing else: `NXDOMAIN` for any
//! other name, never a forward. What it did with each datagram is a line
//! of the rig's own in the device log (`rig: dns: …`).
//!
//! [`answer::answer`] is the protocol (pure, unit-tested, shared with
//! device-mcu's host rig); [`DnsServer`] the socket and its thread.

pub mod answer;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::topology::{in_netns, Topology};
use crate::RigError;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// DNS served on UDP 53 of a namespace until dropped.
pub struct DnsServer {
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP 53 on every address of `netns` and answers there for the
    /// rig's names; `note` gets a line per datagram.
    pub fn start(
        netns: PathBuf,
        note: impl Fn(String) + Send + 'static,
    ) -> Result<DnsServer, RigError> {
        let what = format!(
            "the rig's DNS server on UDP {DNS_PORT} in {}",
            netns.display()
        );
        let socket = in_netns(netns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, DNS_PORT)))?
            .map_err(|e| RigError::Setup(format!("{what}: {e}")))?;
        let serving = socket
            .try_clone()
            .map_err(|e| RigError::Setup(format!("{what}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let hosts = Topology::host_names();
        let thread = std::thread::spawn(move || serve(serving, &hosts, &stopped, &note));
        Ok(DnsServer {
            socket,
            stop,
            thread: Some(thread),
        })
    }
}

/// Answers datagrams until `stop` is set (and a datagram wakes it).
fn serve(
    socket: UdpSocket,
    hosts: &[(String, Ipv4Addr)],
    stop: &AtomicBool,
    note: &dyn Fn(String),
) {
    let mut buf = [0u8; 1500];
    loop {
        let got = socket.recv_from(&mut buf);
        if stop.load(Ordering::Acquire) {
            return;
        }
        let (n, from) = match got {
            Ok(got) => got,
            Err(e) => {
                note(format!("rig: dns: receive error: {e}"));
                continue;
            }
        };
        let outcome = answer::answer(&buf[..n], hosts);
        let mut line = format!("rig: {} (from {from})", outcome.note());
        if let answer::Outcome::Reply { bytes, .. } = &outcome {
            if let Err(e) = socket.send_to(bytes, from) {
                line += &format!("; the reply could not be sent: {e}");
            }
        }
        note(line);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocked receive: a datagram to itself, over the
        // namespace's loopback (the socket lives in that namespace).
        let me = SocketAddr::from((Ipv4Addr::LOCALHOST, DNS_PORT));
        if self.socket.send_to(&[0], me).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
