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
//! Made with iproute2's `ip` inside the rig sandbox; `N` keeps topologies
//! apart so many cases run at once.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

use crate::RigError;

/// Which namespace of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Dut,
    Gw,
    Hub,
}

/// A topology's hub (and gateway node), by address and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddresses {
    pub hub_ipv4: Ipv4Addr,
    pub hub_host: String,
    /// The gateway node's DUT-side address and name.
    pub gw_ipv4: Ipv4Addr,
    pub gw_host: String,
}

/// A live topology; dropped → its namespaces are deleted.
#[derive(Debug)]
pub struct Topology {
    pub id: u8,
    prefix: String,
}

fn ip(args: &[&str]) -> Result<(), RigError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| RigError::Setup(format!("running `ip` (install iproute2): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RigError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Topology {
    /// Interface names, by node.
    pub const DUT_IF: &'static str = "d0";
    /// The gateway's DUT-facing interface: where the capture runs.
    pub const GW_DUT_IF: &'static str = "g0";
    pub const GW_HUB_IF: &'static str = "g1";
    pub const HUB_IF: &'static str = "h0";

    /// Creates topology `id` (0..=255) inside the rig sandbox.
    pub fn create(id: u8) -> Result<Topology, RigError> {
        let t = Topology {
            id,
            prefix: format!("sb{id}"),
        };
        let (dut, gw, hub) = (t.name(Node::Dut), t.name(Node::Gw), t.name(Node::Hub));
        for ns in [&dut, &gw, &hub] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "link", "add", "d0", "netns", &dut, "type", "veth", "peer", "name", "g0", "netns", &gw,
        ])?;
        ip(&[
            "link", "add", "g1", "netns", &gw, "type", "veth", "peer", "name", "h0", "netns", &hub,
        ])?;
        for (ns, dev) in [(&dut, "d0"), (&gw, "g0"), (&gw, "g1"), (&hub, "h0")] {
            // Fixed addresses only: no SLAAC, no DAD wait.
            ip(&["-n", ns, "link", "set", dev, "addrgenmode", "none"])?;
        }
        let v4 = |host: u8| format!("{}/30", t.ipv4(host));
        ip(&["-n", &dut, "addr", "add", &v4(2), "dev", "d0"])?;
        ip(&["-n", &gw, "addr", "add", &v4(1), "dev", "g0"])?;
        ip(&["-n", &gw, "addr", "add", &v4(5), "dev", "g1"])?;
        ip(&["-n", &hub, "addr", "add", &v4(6), "dev", "h0"])?;
        ip(&[
            "-n",
            &dut,
            "-6",
            "addr",
            "add",
            "fe80::2/64",
            "dev",
            "d0",
            "nodad",
        ])?;
        ip(&[
            "-n",
            &gw,
            "-6",
            "addr",
            "add",
            "fe80::1/64",
            "dev",
            "g0",
            "nodad",
        ])?;
        for (ns, dev) in [(&dut, "d0"), (&gw, "g0"), (&gw, "g1"), (&hub, "h0")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&[
            "-n",
            &dut,
            "route",
            "add",
            "default",
            "via",
            &t.ipv4(1).to_string(),
        ])?;
        ip(&[
            "-n",
            &hub,
            "route",
            "add",
            "default",
            "via",
            &t.ipv4(5).to_string(),
        ])?;
        t.set_forwarding(true)?;
        // The DUT's kernel answers every closed UDP port with its ICMP
        // error (no rate limit), so NI-02's scan of all 65 535 UDP ports
        // tells closed from silent in seconds, as `nmap -sU` would on an
        // unlimited host. Nothing else the DUT does sends ICMP errors.
        in_netns(Some(t.netns_path(Node::Dut)), || {
            for (key, value) in [
                ("/proc/sys/net/ipv4/icmp_ratelimit", "0"),
                ("/proc/sys/net/ipv4/icmp_msgs_per_sec", "1000000"),
                ("/proc/sys/net/ipv4/icmp_msgs_burst", "1000000"),
            ] {
                std::fs::write(key, value)
                    .map_err(|e| RigError::Setup(format!("DUT namespace {key}: {e}")))?;
            }
            Ok::<(), RigError>(())
        })??;
        Ok(t)
    }

    /// The `ip netns` name of a node.
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

    pub fn dut_ipv4(&self) -> Ipv4Addr {
        self.ipv4(2)
    }

    pub fn hub_ipv4(&self) -> Ipv4Addr {
        Topology::addresses(self.id).hub_ipv4
    }

    pub fn dut_ipv6_link_local(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)
    }

    /// A command run inside `node`'s namespace (`ip netns exec`).
    pub fn command(&self, node: Node, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name(node)]).arg(program);
        c
    }

    /// Routing in `gw` on or off (a sysctl of gw's own namespace). A router
    /// for the reference device; off when `gw` is a field gateway, which
    /// translates and must never route its local side to the hub's.
    pub fn set_forwarding(&self, on: bool) -> Result<(), RigError> {
        let gw = self.name(Node::Gw);
        let setting = format!("net.ipv4.ip_forward={}", u8::from(on));
        let status = Command::new("ip")
            .args(["netns", "exec", &gw, "sysctl", "-qw", &setting])
            .status()
            .map_err(|e| RigError::Setup(format!("sysctl in {gw}: {e}")))?;
        if !status.success() {
            return Err(RigError::Setup(format!(
                "setting {setting} in {gw} failed ({status})"
            )));
        }
        Ok(())
    }

    /// The gateway's uplink (its hub-facing side) down or up.
    pub fn set_uplink(&self, up: bool) -> Result<(), RigError> {
        ip(&[
            "-n",
            &self.name(Node::Gw),
            "link",
            "set",
            Self::GW_HUB_IF,
            if up { "up" } else { "down" },
        ])
    }

    /// The DUT's link (the gateway's DUT-facing side) down or up.
    pub fn set_link(&self, up: bool) -> Result<(), RigError> {
        ip(&[
            "-n",
            &self.name(Node::Gw),
            "link",
            "set",
            Self::GW_DUT_IF,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for node in [Node::Dut, Node::Gw, Node::Hub] {
            let _ = ip(&["netns", "del", &self.name(node)]);
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
    std::thread::spawn(move || {
        if let Some(netns) = netns {
            let file = std::fs::File::open(&netns)
                .map_err(|e| RigError::Setup(format!("opening {}: {e}", netns.display())))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| RigError::Setup(format!("entering {}: {e}", netns.display())))?;
        }
        Ok(f())
    })
    .join()
    .map_err(|_| RigError::Setup("a thread in a rig namespace panicked".into()))?
}
