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
use crate::{Capabilities, Capability, CaptureTarget, DutAddresses, LogLine, Rig, RigError};
use hub_fixture::hub::{DeviceCredentials, HubFixture};

/// The leaves every gateway case has: their ids, units and registers.
pub const LEAF_TCP: &str = "meter-a";
pub const LEAF_RTU: &str = "pump-b";
/// Readings the gateway holds per leaf while the hub is unreachable.
pub const BUFFER: usize = 20;

/// How to build one gateway rig.
#[derive(Debug, Clone)]
pub struct GatewayRigConfig {
    pub id: u8,
    pub dir: PathBuf,
    /// Where `gateway` and `modbus-leaf` are.
    pub bin_dir: PathBuf,
    pub faults: Vec<String>,
}

pub struct GatewayRig {
    // Processes first: they go before their namespaces (fields drop in order).
    gateway: Option<ProcessGroup>,
    // The leaves and the pty pair live as long as the rig.
    _procs: Vec<ProcessGroup>,
    _line: PtyPair,
    name: String,
    config: GatewayRigConfig,
    topo: Topology,
    hub: HubFixture,
    leaves: Vec<(String, DeviceCredentials)>,
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
    /// Builds the topology (no forwarding in `gw`), the hub, the two
    /// leaves and the gateway's keystore, mapping and configuration. The
    /// gateway itself starts at power-on.
    pub async fn start(config: GatewayRigConfig) -> Result<GatewayRig, RigError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir.join("keystore")).map_err(|e| RigError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
        let topo = Topology::create(config.id)?;
        topo.set_forwarding(false)?;
        let hub = super::rig::start_hub(&topo, dir, None)?;

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

        let mut leaves = Vec::new();
        let mut ca = String::new();
        for leaf in [LEAF_TCP, LEAF_RTU] {
            let c = hub
                .register_device(leaf)
                .map_err(|e| RigError::Setup(format!("registering {leaf}: {e}")))?;
            write(&dir.join(format!("keystore/{leaf}.cert.pem")), &c.cert_pem)?;
            write(&dir.join(format!("keystore/{leaf}.key.pem")), &c.key_pem)?;
            ca = c.ca_pem.clone();
            leaves.push((leaf.to_owned(), c));
        }
        write(&dir.join("ca.pem"), &ca)?;
        write(&dir.join("mapping.toml"), &mapping(&leaf_a, &gw_tty))?;
        let gateway_toml = field_gateway::GatewayConfig {
            mapping: "mapping.toml".into(),
            keystore: "keystore".into(),
            trust_anchor: "ca.pem".into(),
            hub_host: topo.hub_host(),
            hub_mqtt: hub.mqtt_addr(),
            buffer: BUFFER,
            state_dir: "state".into(),
            faults: config.faults.clone(),
        };
        write(&dir.join("gateway.toml"), &gateway_toml.to_toml())?;
        Ok(GatewayRig {
            name: format!("emulated gateway #{}", config.id),
            config,
            topo,
            hub,
            leaves,
            console,
            gateway: None,
            _procs: procs,
            _line: line,
        })
    }

    pub fn hub(&self) -> &HubFixture {
        &self.hub
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Each leaf's identity at the hub (what the gateway's keystore holds).
    pub fn leaves(&self) -> &[(String, DeviceCredentials)] {
        &self.leaves
    }

    /// The gateway's process while powered.
    pub fn gateway_pid(&self) -> Option<u32> {
        self.gateway.as_ref().map(ProcessGroup::id)
    }

    /// Every console line so far (gateway and leaves).
    pub fn console_lines(&self) -> Vec<String> {
        self.console.lines()
    }

    /// Waits for a console line matching `pred` (any seen since the rig
    /// started); `None` within `guard`.
    pub async fn wait_console(
        &self,
        guard: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.wait_console_from(0, guard, pred).await.map(|(_, l)| l)
    }

    /// Like [`GatewayRig::wait_console`], among the lines from index `from`
    /// of [`GatewayRig::console_lines`] on; returns the line and its index.
    pub async fn wait_console_from(
        &self,
        from: usize,
        guard: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(usize, String)> {
        self.console.wait_from(from, guard, pred).await
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

impl Rig for GatewayRig {
    fn name(&self) -> &str {
        &self.name
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
