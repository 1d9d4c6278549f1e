//! One case's network: three namespaces joined by veth pairs,
//!
//! ```text
//!   dut [d0] ──── [g0] gw [g1] ──── [h0] hub
//!   10.200.N.2/30   .1       .5/30      .6
//!   fe80::2        fe80::1
//! ```
//!
//! `gw` routes between the two links; the DUT's default route and the hub's
//! route back go through it. IPv6 link-local addresses are fixed (no
//! autoconfiguration, no DAD) so the scanner knows them without waiting.
//! Made over rtnetlink inside the rig sandbox (`netlink.rs`, no `ip`); `N`
//! keeps topologies apart so many cases run at once. A case that runs a
//! second board of the DUT gets it on a link of its own to `gw`
//! ([`Topology::add_second_board`]): `dut2 [d0] ──── [g2] gw`, 10.200.N.10/30
//! via .9 — routed to the hub like the first, captured on `g2`.
//!
//! A board with its own IP stack (`[emulated] network = "tap"`, QEMU) gets
//! its DUT namespace as a plain switch instead: a bridge [`Topology::BRIDGE`]
//! joining `d0`, no address and no IPv6 of the namespace's own, so the
//! board's TAP device, put on the bridge when the board starts, is on the
//! link to `gw` and .2 (.10) is the board's own — what the scans reach, what
//! the capture on `g0` sees, is the board.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use super::netlink::{
    self, add_address, add_bridge, add_default_route, add_veth, set_link, write_sysctls,
};
use super::sandbox::netns_command;
use crate::dut::BoardNetwork;
use crate::RigError;

/// Which namespace of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The device under test's namespace (`d0`, 10.200.N.2).
    Dut,
    /// The router between the DUT's link and the hub's (`g0` .1, `g1` .5):
    /// the DUT's first hop, where the capture runs.
    Gw,
    /// The fixture hub's namespace (`h0`, 10.200.N.6).
    Hub,
}

/// A topology's hub (and gateway node), by address and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddresses {
    /// The hub's address, 10.200.N.6.
    pub hub_ipv4: Ipv4Addr,
    /// The hub's DNS name, `hubN.sacbench.test` (in the sandbox's hosts file).
    pub hub_host: String,
    /// The gateway node's DUT-side address and name.
    pub gw_ipv4: Ipv4Addr,
    /// The gateway node's DNS name, `gwN.sacbench.test`.
    pub gw_host: String,
}

/// A live topology; dropped → its namespaces are deleted.
#[derive(Debug)]
pub struct Topology {
    /// The topology number N: the third octet of its 10.200.N.0 addresses
    /// and the `sbN-` prefix of its namespaces' names.
    pub id: u8,
    prefix: String,
    /// Whether the second board's namespace and link were made.
    second: bool,
    /// How the boards are on their links.
    network: BoardNetwork,
}

impl Topology {
    /// Interface names, by node.
    pub const DUT_IF: &'static str = "d0";
    /// The gateway's DUT-facing interface: where the capture runs.
    pub const GW_DUT_IF: &'static str = "g0";
    /// The gateway's hub-facing interface (its uplink, 10.200.N.5).
    pub const GW_HUB_IF: &'static str = "g1";
    /// The hub's interface, peer of [`Topology::GW_HUB_IF`].
    pub const HUB_IF: &'static str = "h0";
    /// The gateway's interface facing the second board (10.200.N.9): where
    /// its capture runs.
    pub const GW_SECOND_IF: &'static str = "g2";
    /// The bridge a board on a TAP device joins (`network = "tap"`), in its
    /// DUT namespace.
    pub const BRIDGE: &'static str = "br0";

    /// Creates topology `id` (0..=255) inside the rig sandbox, its boards
    /// on their links as `network` says.
    pub fn create(id: u8, network: BoardNetwork) -> Result<Topology, RigError> {
        let t = Topology {
            id,
            prefix: format!("sb{id}"),
            second: false,
            network,
        };
        for node in [Node::Dut, Node::Gw, Node::Hub] {
            netlink::create_netns(&t.netns_path(node))?;
        }
        let v4 = |host: u8| IpAddr::V4(t.ipv4(host));
        let (dut_ns, hub_ns) = (t.netns_path(Node::Dut), t.netns_path(Node::Hub));
        let (gw_v4, gw_uplink_v4) = (t.ipv4(1), t.ipv4(5));
        let (g0_v4, g1_v4, d0_v4, h0_v4) = (v4(1), v4(5), v4(2), v4(6));
        netlink::with_netlink(Some(t.netns_path(Node::Gw)), move |h| async move {
            add_veth(&h, Self::GW_DUT_IF, Self::DUT_IF, &dut_ns).await?;
            add_veth(&h, Self::GW_HUB_IF, Self::HUB_IF, &hub_ns).await?;
            fixed_addresses_only(&[Self::GW_DUT_IF, Self::GW_HUB_IF])?;
            add_address(&h, Self::GW_DUT_IF, g0_v4, 30).await?;
            add_address(&h, Self::GW_HUB_IF, g1_v4, 30).await?;
            add_address(&h, Self::GW_DUT_IF, IpAddr::V6(LINK_LOCAL_GW), 64).await?;
            for link in ["lo", Self::GW_DUT_IF, Self::GW_HUB_IF] {
                set_link(&h, link, true).await?;
            }
            // A router between its two links (the field gateway turns it off).
            write_sysctls(&[("net/ipv4/ip_forward".into(), "1")])
        })?;
        if network == BoardNetwork::Tap {
            bridged_link(t.netns_path(Node::Dut))?;
        } else {
            t.namespace_link(d0_v4, gw_v4)?;
        }
        netlink::with_netlink(Some(t.netns_path(Node::Hub)), move |h| async move {
            fixed_addresses_only(&[Self::HUB_IF])?;
            add_address(&h, Self::HUB_IF, h0_v4, 30).await?;
            for link in ["lo", Self::HUB_IF] {
                set_link(&h, link, true).await?;
            }
            add_default_route(&h, gw_uplink_v4).await
        })?;
        Ok(t)
    }

    /// The DUT namespace's own interface for a board that runs as a host
    /// process: .2 and fe80::2 on `d0`, the default route via `gw`.
    fn namespace_link(&self, d0_v4: IpAddr, gw_v4: Ipv4Addr) -> Result<(), RigError> {
        netlink::with_netlink(Some(self.netns_path(Node::Dut)), move |h| async move {
            fixed_addresses_only(&[Self::DUT_IF])?;
            add_address(&h, Self::DUT_IF, d0_v4, 30).await?;
            add_address(&h, Self::DUT_IF, IpAddr::V6(LINK_LOCAL_DUT), 64).await?;
            for link in ["lo", Self::DUT_IF] {
                set_link(&h, link, true).await?;
            }
            add_default_route(&h, gw_v4).await?;
            // The DUT's kernel answers every closed UDP port with its ICMP
            // error (no rate limit), so NI-02's scan of all 65 535 UDP ports
            // tells closed from silent in seconds, as `nmap -sU` would on an
            // unlimited host. Nothing else the DUT does sends ICMP errors.
            write_sysctls(&[
                ("net/ipv4/icmp_ratelimit".into(), "0"),
                ("net/ipv4/icmp_msgs_per_sec".into(), "1000000"),
                ("net/ipv4/icmp_msgs_burst".into(), "1000000"),
            ])
        })
    }

    /// Makes the second board's namespace and its link to `gw` (see the
    /// module doc); once per topology.
    pub fn add_second_board(&mut self) -> Result<(), RigError> {
        if self.second {
            return Err(RigError::Setup(format!(
                "topology {} already has its second board",
                self.id
            )));
        }
        let ns = self.second_board_netns();
        netlink::create_netns(&ns)?;
        self.second = true;
        let (gw_v4, board_v4) = (self.ipv4(SECOND_GW_HOST), self.second_board_ipv4());
        let peer_ns = ns.clone();
        netlink::with_netlink(Some(self.netns_path(Node::Gw)), move |h| async move {
            add_veth(&h, Self::GW_SECOND_IF, Self::DUT_IF, &peer_ns).await?;
            fixed_addresses_only(&[Self::GW_SECOND_IF])?;
            add_address(&h, Self::GW_SECOND_IF, IpAddr::V4(gw_v4), 30).await?;
            set_link(&h, Self::GW_SECOND_IF, true).await
        })?;
        if self.network == BoardNetwork::Tap {
            return bridged_link(ns);
        }
        netlink::with_netlink(Some(ns), move |h| async move {
            fixed_addresses_only(&[Self::DUT_IF])?;
            add_address(&h, Self::DUT_IF, IpAddr::V4(board_v4), 30).await?;
            add_address(&h, Self::DUT_IF, IpAddr::V6(LINK_LOCAL_DUT), 64).await?;
            for link in ["lo", Self::DUT_IF] {
                set_link(&h, link, true).await?;
            }
            add_default_route(&h, gw_v4).await
        })
    }

    /// The second board's address, 10.200.N.10.
    pub fn second_board_ipv4(&self) -> Ipv4Addr {
        self.ipv4(SECOND_BOARD_HOST)
    }

    /// The gateway's address on the second board's link, 10.200.N.9.
    pub fn second_board_gateway_ipv4(&self) -> Ipv4Addr {
        self.ipv4(SECOND_GW_HOST)
    }

    /// The second board's namespace handle, `/run/netns/sbN-dut2`.
    pub fn second_board_netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(format!("{}-dut2", self.prefix))
    }

    /// The name of a node's namespace (its handle is `/run/netns/NAME`).
    pub fn name(&self, node: Node) -> String {
        let n = match node {
            Node::Dut => "dut",
            Node::Gw => "gw",
            Node::Hub => "hub",
        };
        format!("{}-{n}", self.prefix)
    }

    /// The namespace handle (for `setns` and the capture).
    pub fn netns_path(&self, node: Node) -> PathBuf {
        PathBuf::from("/run/netns").join(self.name(node))
    }

    /// Where topology `id`'s hub is, by address and by name (the sandbox's
    /// hosts file lists every topology's).
    pub fn addresses(id: u8) -> HubAddresses {
        HubAddresses {
            hub_ipv4: Ipv4Addr::new(10, 200, id, 6),
            hub_host: format!("hub{id}.sacbench.test"),
            gw_ipv4: Ipv4Addr::new(10, 200, id, 1),
            gw_host: format!("gw{id}.sacbench.test"),
        }
    }

    /// Every name a device on the rig may look up, with its address: each
    /// topology's hub and gateway node (1..=255). The sandbox's hosts file
    /// and the rig's DNS server (`dns.rs`) both hold exactly these.
    pub fn host_names() -> Vec<(String, Ipv4Addr)> {
        (1..=255u8)
            .map(Topology::addresses)
            .flat_map(|t| [(t.hub_host, t.hub_ipv4), (t.gw_host, t.gw_ipv4)])
            .collect()
    }

    /// The hub's host name in this topology: what the DUT dials (it
    /// resolves through the sandbox's hosts file), its SNI, the name in the
    /// hub's certificate.
    pub fn hub_host(&self) -> String {
        Topology::addresses(self.id).hub_host
    }

    /// 10.200.id.host
    pub fn ipv4(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.id, host)
    }

    /// The DUT's address, 10.200.N.2.
    pub fn dut_ipv4(&self) -> Ipv4Addr {
        self.ipv4(2)
    }

    /// The hub's address, 10.200.N.6.
    pub fn hub_ipv4(&self) -> Ipv4Addr {
        Topology::addresses(self.id).hub_ipv4
    }

    /// The topology's addresses as the suites use them (the rig's
    /// [`RigNetwork`](crate::RigNetwork)): dut .2, gateway .1 and .5, hub .6;
    /// .77 is in range and routed nowhere.
    pub fn network(&self) -> crate::RigNetwork {
        crate::RigNetwork {
            hub_host: self.hub_host(),
            hub_ipv4: self.hub_ipv4(),
            dut_ipv4: self.dut_ipv4(),
            first_hop_ipv4: self.ipv4(1),
            uplink_ipv4: self.ipv4(5),
            unused_ipv4: Some(self.ipv4(77)),
        }
    }

    /// The DUT's fixed IPv6 link-local address on `d0` (the same in every
    /// topology; the scope tells them apart); `None` for a board with its
    /// own IP stack (`network = "tap"`), whose addresses are its own.
    pub fn dut_ipv6_link_local(&self) -> Option<Ipv6Addr> {
        (self.network == BoardNetwork::Namespace).then_some(LINK_LOCAL_DUT)
    }

    /// How the boards are on their links.
    pub fn board_network(&self) -> BoardNetwork {
        self.network
    }

    /// The Ethernet address the rig gives a board with its own IP stack
    /// (`{mac}`): locally administered, `02:00:0a:c8:N:H` for 10.200.N.H.
    pub fn board_mac(&self, second: bool) -> [u8; 6] {
        let host = if second { SECOND_BOARD_HOST } else { 2 };
        [0x02, 0x00, 10, 200, self.id, host]
    }

    /// A command run inside `node`'s namespace (as `ip netns exec` would,
    /// see [`netns_command`]).
    pub fn command(&self, node: Node, program: impl AsRef<std::ffi::OsStr>) -> Command {
        netns_command(&self.netns_path(node), program)
    }

    /// Routing in `gw` on or off (a sysctl of gw's own namespace). A router
    /// for the reference device; off when `gw` is a field gateway, which
    /// translates and must never route its local side to the hub's.
    pub fn set_forwarding(&self, on: bool) -> Result<(), RigError> {
        let value = if on { "1" } else { "0" };
        in_netns(self.netns_path(Node::Gw), move || {
            write_sysctls(&[("net/ipv4/ip_forward".into(), value)])
        })?
    }

    /// The gateway's uplink (its hub-facing side) down or up.
    pub fn set_uplink(&self, up: bool) -> Result<(), RigError> {
        self.set_gw_link(Self::GW_HUB_IF, up)
    }

    /// The DUT's link (the gateway's DUT-facing side) down or up.
    pub fn set_link(&self, up: bool) -> Result<(), RigError> {
        self.set_gw_link(Self::GW_DUT_IF, up)
    }

    /// Destroys `node`'s established TCP sockets (to port `dport`, or all):
    /// what `ss -K` does, so their owners learn at once of a cut link.
    /// Returns how many there were.
    pub fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        in_netns(self.netns_path(node), move || {
            netlink::kill_established_tcp(dport)
        })?
    }

    fn set_gw_link(&self, link: &'static str, up: bool) -> Result<(), RigError> {
        netlink::with_netlink(Some(self.netns_path(Node::Gw)), move |h| async move {
            set_link(&h, link, up).await
        })
    }
}

/// The IPv6 link-local address a host derives from `mac` by modified
/// EUI-64 (RFC 4291 appendix A): `fe80::` and the MAC with `ff:fe` in its
/// middle and the universal/local bit flipped.
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// `mac` as `02:00:0a:…` (what `{mac}` is).
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// No SLAAC, no duplicate address detection on these links: their IPv6
/// addresses are the fixed link-local ones, usable at once (what `ip link
/// set DEV addrgenmode none` and `ip addr add … nodad` do).
fn fixed_addresses_only(links: &[&str]) -> Result<(), RigError> {
    let mut settings = Vec::new();
    for link in links {
        settings.push((format!("net/ipv6/conf/{link}/addr_gen_mode"), "1"));
        settings.push((format!("net/ipv6/conf/{link}/accept_dad"), "0"));
    }
    write_sysctls(&settings)
}

/// A DUT namespace for a board with its own IP stack: `d0` on the bridge
/// [`Topology::BRIDGE`], both up, and no address or IPv6 of the namespace's
/// own (`disable_ipv6` for the links to come too: the board's TAP device),
/// so only the board answers on the link. Bridging is layer 2: the board's
/// IPv6 passes.
fn bridged_link(netns: PathBuf) -> Result<(), RigError> {
    netlink::with_netlink(Some(netns), move |h| async move {
        write_sysctls(&[
            ("net/ipv6/conf/all/disable_ipv6".into(), "1"),
            ("net/ipv6/conf/default/disable_ipv6".into(), "1"),
        ])?;
        add_bridge(&h, Topology::BRIDGE, Topology::DUT_IF).await?;
        for link in ["lo", Topology::DUT_IF, Topology::BRIDGE] {
            set_link(&h, link, true).await?;
        }
        Ok(())
    })
}

/// The second board's /30: the gateway's side .9, the board .10 (clear of
/// the first board's .0/30, the uplink's .4/30 and the unused .77).
const SECOND_GW_HOST: u8 = 9;
const SECOND_BOARD_HOST: u8 = 10;

const LINK_LOCAL_GW: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const LINK_LOCAL_DUT: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

impl Drop for Topology {
    fn drop(&mut self) {
        for node in [Node::Dut, Node::Gw, Node::Hub] {
            netlink::delete_netns(&self.netns_path(node));
        }
        if self.second {
            netlink::delete_netns(&self.second_board_netns());
        }
    }
}

/// Runs `f` on a thread that has entered `netns` (or in the bench's own
/// namespace for `None`, a lab rig's): sockets made there belong to that
/// namespace for their whole life (the namespace of a socket is fixed when
/// it is created).
pub fn in_netns<T: Send + 'static>(
    netns: impl Into<Option<PathBuf>>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RigError> {
    let netns = netns.into();
    let thread = std::thread::spawn(move || {
        if let Some(netns) = netns {
            let file = std::fs::File::open(&netns)
                .map_err(|e| RigError::Setup(format!("opening {}: {e}", netns.display())))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| RigError::Setup(format!("entering {}: {e}", netns.display())))?;
        }
        Ok(f())
    });
    // The join waits on netlink, a hub start, a scan: not on a runtime worker.
    crate::blocking(|| thread.join())
        .map_err(|_| RigError::Setup("a thread in a rig namespace panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boards_link_local_address_is_its_macs_eui64() {
        // What Linux derives for QEMU's default NIC address.
        assert_eq!(
            eui64_link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(mac_text([0x02, 0, 10, 200, 7, 2]), "02:00:0a:c8:07:02");
    }

    #[test]
    fn the_second_boards_link_is_a_subnet_of_its_own() {
        // /30s by host number: dut .0/30 (gw .1, dut .2), uplink .4/30
        // (gw .5, hub .6), second board .8/30 (gw .9, board .10).
        let net = |h: u8| h / 4;
        assert_eq!(net(SECOND_GW_HOST), net(SECOND_BOARD_HOST));
        for other in [1, 2, 5, 6, 77] {
            assert_ne!(net(SECOND_BOARD_HOST), net(other), "{other}");
        }
        assert!(![0, 3].contains(&(SECOND_BOARD_HOST % 4)));
        assert!(![0, 3].contains(&(SECOND_GW_HOST % 4)));
    }
}
