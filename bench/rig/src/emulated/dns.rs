//! The emulated rig's name server: DNS on UDP 53 of the gateway's
//! namespace, for boards that bring their own IP stack (`network = "tap"`)
//! and look their hub up by name, as a lab's or a site's resolver would
//! serve them (`{dns_server}`). It knows the names the sandbox's hosts file
//! holds ([`Topology::host_names`]) and nothing else: `NXDOMAIN` for any
//! other name, never a forward. What it did with each datagram is a line
//! of the rig's own in the device log (`rig: dns: …`).
//!
//! [`answer::answer`] is the protocol (pure, unit-tested, shared with
//! device-mcu's host rig); [`DnsServer`] serves it ([`UdpService`]: the
//! socket and its thread).

pub mod answer;

use std::path::PathBuf;

use super::topology::Topology;
use super::udp_service::UdpService;
use crate::RigError;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// DNS served on UDP 53 of a namespace until dropped.
pub struct DnsServer {
    _service: UdpService,
}

impl DnsServer {
    /// Binds UDP 53 on every address of `netns` and answers there for the
    /// rig's names; `note` gets a line per datagram.
    pub fn start(
        netns: PathBuf,
        note: impl Fn(String) + Send + 'static,
    ) -> Result<DnsServer, RigError> {
        let hosts = Topology::host_names();
        let service = UdpService::start(
            netns,
            DNS_PORT,
            "the rig's DNS server",
            move |socket, got| {
                let (query, from) = match got {
                    Ok(got) => got,
                    Err(e) => return note(format!("rig: dns: receive error: {e}")),
                };
                let outcome = answer::answer(query, &hosts);
                let mut line = format!("rig: {} (from {from})", outcome.note());
                if let answer::Outcome::Reply { bytes, .. } = &outcome {
                    if let Err(e) = socket.send_to(bytes, from) {
                        line += &format!("; the reply could not be sent: {e}");
                    }
                }
                note(line);
            },
        )?;
        Ok(DnsServer { _service: service })
    }
}
