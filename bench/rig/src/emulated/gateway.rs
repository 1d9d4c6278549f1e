//! `GatewayRig`: the field gateway as the device under test. The same
//! topology as [`EmulatedRig`](super::EmulatedRig), used differently:
//!
//! ```text
//!   dut: legacy device A ── gw: the gateway ── hub: the fixture hub
//!   (Modbus TCP :502)       (no forwarding)
//!   legacy device B on a pty pair (Modbus RTU), read by the gateway
//! ```
//!
//! Power is the gateway process; the link is the gateway's uplink (its hub
//! side); the capture is on the gateway's local side (`g0`), where the
//! Modbus traffic is. The leaves' and the gateway's stderr are the console.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::console::{ConsoleLog, ProcessGroup};
use super::topology::{Node, Topology};
use crate::pty::PtyPair;
use crate::{
    Capabilities, Capability, CaptureTarget, DutAddresses, LinePredicate, LogLine, Rig, RigError,
    RigNetwork,
};
use sacbench_provisioning::Provisioning;

/// Leaf A of every gateway case: a meter on Modbus TCP (unit 1) in `dut`.
pub const LEAF_TCP: &str = "meter-a";
/// Leaf B of every gateway case: a pump on Modbus RTU (unit 7) over a pty pair.
pub const LEAF_RTU: &str = "pump-b";
/// Readings the gateway holds per leaf while the hub is unreachable.
pub const BUFFER: usize = 20;

/// How to build one gateway rig.
#[derive(Debug, Clone)]
pub struct GatewayRigConfig {
    /// Topology number, unique among rigs alive at once.
    pub id: u8,
    /// Per-case directory: the gateway's keystore, mapping, configuration, state.
    pub dir: PathBuf,
    /// Where `gateway` and `modbus-leaf` are.
    pub bin_dir: PathBuf,
    /// The gateway's fault switches to turn on (its `gateway.toml` `faults`).
    pub faults: Vec<String>,
}

/// The field gateway as the device under test, its two legacy leaves
/// behind it (see the module doc).
pub struct GatewayRig {
    // Processes first: they go before their namespaces (fields drop in order).
    gateway: Option<ProcessGroup>,
    // The leaves and the pty pair live as long as the rig.
    _procs: Vec<ProcessGroup>,
    _line: PtyPair,
    name: String,
    config: GatewayRigConfig,
    topo: Topology,
    /// Leaf A's Modbus TCP address and the gateway's end of leaf B's line.
    leaf_a: String,
    gw_tty: PathBuf,
    console: ConsoleLog,
}

fn spawn(cmd: &mut Command, what: &str) -> Result<Child, RigError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| RigError::Setup(format!("starting {what}: {e}")))
}

fn write(path: &Path, text: &str) -> Result<(), RigError> {
    std::fs::write(path, text).map_err(|e| RigError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

impl GatewayRig {
    /// Builds the topology (no forwarding in `gw`) and the two leaves; the
    /// gateway's keystore and configuration come with [`Rig::provision`],
    /// the gateway itself at power-on.
    pub async fn start(config: GatewayRigConfig) -> Result<GatewayRig, RigError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir.join("keystore")).map_err(|e| RigError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
        let topo = Topology::create(config.id, crate::dut::BoardNetwork::Namespace)?;
        topo.set_forwarding(false)?;

        let console = ConsoleLog::default();
        let leaf_exe = config.bin_dir.join("modbus-leaf");
        let mut procs = Vec::new();
        // Leaf A: Modbus TCP in the DUT's namespace.
        let leaf_a = format!("{}:502", topo.dut_ipv4());
        let mut a = spawn(
            topo.command(Node::Dut, &leaf_exe)
                .args(["--tcp", &leaf_a, "--unit", "1"])
                .args(["--set", "h0=215", "--set", "i4=1", "--set", "i5=34464"]),
            "leaf A (modbus-leaf)",
        )?;
        console.follow(&mut a);
        procs.push(ProcessGroup(a));
        // Leaf B: Modbus RTU on a pty pair.
        let (leaf_tty, gw_tty) = (dir.join("leaf-tty"), dir.join("gw-tty"));
        let line = PtyPair::link(&leaf_tty, &gw_tty)?;
        let mut b = spawn(
            Command::new(&leaf_exe)
                .arg("--rtu")
                .arg(&leaf_tty)
                .args(["--baud", "9600", "--unit", "7", "--set", "h2=42"]),
            "leaf B (modbus-leaf)",
        )?;
        console.follow(&mut b);
        procs.push(ProcessGroup(b));

        Ok(GatewayRig {
            name: format!("emulated gateway #{}", config.id),
            config,
            topo,
            leaf_a,
            gw_tty,
            console,
            gateway: None,
            _procs: procs,
            _line: line,
        })
    }

    /// The case's network namespaces and links.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }
}

/// The mapping every gateway case uses (a fixed text; its one path is
/// rendered by `toml`).
fn mapping(leaf_a: &str, rtu: &Path) -> String {
    format!(
        "[[leaf]]\nid = \"{LEAF_TCP}\"\ntcp = \"{leaf_a}\"\nunit = 1\n\n\
         [[leaf.telemetry]]\nname = \"temperature\"\nregister = 0\ntype = \"i16\"\nscale = 0.1\npoll_ms = 100\n\n\
         [[leaf.telemetry]]\nname = \"energy\"\nregister = 4\ntable = \"input\"\ntype = \"u32\"\npoll_ms = 100\n\n\
         [[leaf.command]]\nname = \"setpoint\"\nregister = 10\ntype = \"u16\"\nscale = 0.1\nmin = 5.0\nmax = 30.0\n\n\
         [[leaf]]\nid = \"{LEAF_RTU}\"\nrtu = {}\nbaud = 9600\nunit = 7\n\n\
         [[leaf.telemetry]]\nname = \"level\"\nregister = 2\ntype = \"u16\"\npoll_ms = 100\n\n\
         [[leaf.command]]\nname = \"speed\"\nregister = 20\ntype = \"u16\"\nmin = 0.0\nmax = 100.0\n",
        // A TOML string, escaped as TOML escapes it (a temporary path may hold anything).
        toml::Value::String(rtu.display().to_string())
    )
}

#[async_trait::async_trait(?Send)]
impl Rig for GatewayRig {
    fn name(&self) -> &str {
        &self.name
    }

    fn network(&self) -> Result<RigNetwork, RigError> {
        Ok(self.topo.network())
    }

    fn device_ids(&self) -> Vec<String> {
        vec![LEAF_TCP.into(), LEAF_RTU.into()]
    }

    /// The gateway's keystore (one identity per leaf), its trust anchor,
    /// mapping and configuration, in the rig's directory (the gateway reads
    /// them there; `_dir` is the suite's).
    async fn provision(&mut self, _dir: &Path, records: &[Provisioning]) -> Result<(), RigError> {
        let dir = &self.config.dir;
        let ids = self.device_ids();
        if records.len() != ids.len() {
            return Err(RigError::Setup(format!(
                "the gateway takes {} identities ({}), not {}",
                ids.len(),
                ids.join(", "),
                records.len()
            )));
        }
        for (leaf, record) in ids.iter().zip(records) {
            write(
                &dir.join(format!("keystore/{leaf}.cert.pem")),
                &record.certificate_pem,
            )?;
            write(
                &dir.join(format!("keystore/{leaf}.key.pem")),
                &record.private_key_pem,
            )?;
        }
        let first = &records[0].device;
        write(&dir.join("ca.pem"), &records[0].hub_ca_pem)?;
        write(
            &dir.join("mapping.toml"),
            &mapping(&self.leaf_a, &self.gw_tty),
        )?;
        let gateway_toml = field_gateway::GatewayConfig {
            mapping: "mapping.toml".into(),
            keystore: "keystore".into(),
            trust_anchor: "ca.pem".into(),
            hub_host: first.hub_host.clone(),
            hub_mqtt: (self.topo.hub_ipv4(), first.mqtt_port).into(),
            buffer: BUFFER,
            state_dir: "state".into(),
            faults: self.config.faults.clone(),
        };
        write(&dir.join("gateway.toml"), &gateway_toml.to_toml())
    }

    fn console_lines(&self) -> Vec<String> {
        self.console.lines()
    }

    async fn wait_console_from(
        &self,
        from: usize,
        guard: std::time::Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.console.wait_from(from, guard, pred).await
    }

    fn netns(&self, node: Node) -> Option<PathBuf> {
        Some(self.topo.netns_path(node))
    }

    fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        self.topo.kill_established_tcp(node, dport)
    }

    fn board_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(ProcessGroup::id)
    }

    fn capabilities(&self) -> Capabilities {
        [
            Capability::Power,
            Capability::Link,
            Capability::Console,
            Capability::Capture,
            Capability::BoardProcess,
            Capability::LegacyDevices,
        ]
        .into_iter()
        .collect()
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        self.gateway = None;
        if !on {
            return Ok(());
        }
        let exe = self.config.bin_dir.join("gateway");
        let mut child = spawn(
            self.topo
                .command(Node::Gw, &exe)
                .arg("--config")
                .arg(self.config.dir.join("gateway.toml")),
            "the gateway",
        )?;
        self.console.follow(&mut child);
        self.gateway = Some(ProcessGroup(child));
        Ok(())
    }

    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        self.topo.set_uplink(up)
    }

    async fn flash(&mut self, _image: &Path) -> Result<(), RigError> {
        Err(RigError::Unsupported(Capability::Flash))
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        Ok(self.console.take_new())
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        Ok(CaptureTarget {
            interface: Topology::GW_DUT_IF.into(),
            netns: Some(self.topo.netns_path(Node::Gw)),
        })
    }

    fn dut_addresses(&self) -> DutAddresses {
        DutAddresses {
            ipv4: Some(self.topo.ipv4(5)),
            ipv6_link_local: None,
        }
    }
}
