//! The rig a case runs on: its own emulated topology, or the lab rig of
//! `rig.toml` with the case's fixture hub listening on the bench NIC.
//!
//! Cases see one interface. Where the two differ in kind — the emulated
//! board is a bench process in its own namespace, a real board is not — the
//! difference is a capability ([`Capability::BoardProcess`]), so a lab run
//! reports those cases as ignored with the reason, never as passed.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hub_fixture::hub::{DeviceCredentials, HubFixture};
use sacbench_rig::emulated::topology::{in_netns, Node};
use sacbench_rig::emulated::{EmulatedRig, GatewayRig};
use sacbench_rig::lab::LabRig;
use sacbench_rig::{
    Capabilities, CaptureTarget, DutAddresses, LogLine, ProvisioningRecord, Rig, RigError,
};

/// A lab rig with the case's hub and the DUT provisioned for it.
pub struct LabCase {
    pub rig: LabRig,
    hub: HubFixture,
    credentials: DeviceCredentials,
    hub_ipv4: Ipv4Addr,
    hub_host: String,
    dut_ipv4: Ipv4Addr,
}

/// The rig of one case.
pub enum CaseRig {
    Emulated(Box<EmulatedRig>),
    Lab(Box<LabCase>),
    /// The field gateway as the DUT (GW cases), legacy devices behind it.
    Gateway(Box<GatewayRig>),
}

impl LabCase {
    /// Opens `rig_file`, starts a hub on `hub.ipv4` (its MQTT listener on
    /// `hub_mqtt_port` instead of 8883 if given: the case's own bad hub, or
    /// nothing, takes 8883), registers `device_id` and provisions the DUT
    /// (powered off) with a provisioning directory for that hub.
    pub async fn start(
        rig_file: &Path,
        dir: &Path,
        device_id: &str,
        faults: &[String],
        hub_mqtt_port: Option<u16>,
    ) -> Result<LabCase, RigError> {
        let mut rig = LabRig::open(rig_file)?;
        let config = rig.config().clone();
        let file = config.file.display().to_string();
        let hub_cfg = config.hub.clone().ok_or_else(|| {
            RigError::Setup(format!(
                "{file}: no [hub] table: the suites need hub.ipv4, the bench's address on the DUT's network"
            ))
        })?;
        let dut_ipv4 = config
            .dut
            .ipv4
            .ok_or_else(|| RigError::Setup(format!("{file}: the suites need dut.ipv4")))?;
        std::fs::create_dir_all(dir).map_err(|e| RigError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
        let mut hub_config = sacbench_rig::case_hub_config(dir, &hub_cfg.host_name, hub_cfg.ipv4);
        if let Some(port) = hub_mqtt_port {
            hub_config.mqtt_addr.set_port(port);
        }
        let hub = HubFixture::start(hub_config).await.map_err(|e| {
            RigError::Setup(format!(
                "starting the hub on {} (hub.ipv4 of {file}): {e}",
                hub_cfg.ipv4
            ))
        })?;
        let credentials = hub
            .register_device(device_id)
            .map_err(|e| RigError::Setup(format!("registering {device_id}: {e}")))?;
        let mut record = ProvisioningRecord::new(&credentials, &hub_cfg.host_name, 8883, 443);
        record.device.faults = faults.to_vec();
        let path = dir.join("provisioning");
        sacbench_provisioning::write(&path, &record)
            .map_err(|e| RigError::Setup(format!("writing the provisioning directory: {e}")))?;
        rig.provision(&path).await?;
        Ok(LabCase {
            rig,
            hub,
            credentials,
            hub_ipv4: hub_cfg.ipv4,
            hub_host: hub_cfg.host_name,
            dut_ipv4,
        })
    }
}

impl CaseRig {
    pub fn hub(&self) -> &HubFixture {
        match self {
            CaseRig::Emulated(r) => r.hub(),
            CaseRig::Lab(l) => &l.hub,
            CaseRig::Gateway(g) => g.hub(),
        }
    }

    /// The identity the DUT was provisioned with for this case (for the
    /// gateway: its first leaf's).
    pub fn credentials(&self) -> &DeviceCredentials {
        match self {
            CaseRig::Emulated(r) => r.credentials(),
            CaseRig::Lab(l) => &l.credentials,
            CaseRig::Gateway(g) => &g.leaves()[0].1,
        }
    }

    /// The hub's host name: what the DUT dials, its SNI, the name in the
    /// hub's certificate.
    pub fn hub_host(&self) -> String {
        match self {
            CaseRig::Emulated(r) => r.topology().hub_host(),
            CaseRig::Lab(l) => l.hub_host.clone(),
            CaseRig::Gateway(g) => g.topology().hub_host(),
        }
    }

    pub fn hub_ipv4(&self) -> Ipv4Addr {
        match self {
            CaseRig::Emulated(r) => r.topology().hub_ipv4(),
            CaseRig::Lab(l) => l.hub_ipv4,
            CaseRig::Gateway(g) => g.topology().hub_ipv4(),
        }
    }

    pub fn dut_ipv4(&self) -> Ipv4Addr {
        match self {
            CaseRig::Emulated(r) => r.topology().dut_ipv4(),
            CaseRig::Lab(l) => l.dut_ipv4,
            CaseRig::Gateway(g) => g.topology().dut_ipv4(),
        }
    }

    /// The DUT's first hop: the emulated gateway, or the bench itself.
    pub fn gateway_ipv4(&self) -> Ipv4Addr {
        match self {
            CaseRig::Emulated(r) => r.topology().ipv4(1),
            CaseRig::Lab(l) => l.hub_ipv4,
            CaseRig::Gateway(g) => g.topology().ipv4(1),
        }
    }

    /// The gateway's (or router's) address on the hub's side.
    pub fn uplink_ipv4(&self) -> Ipv4Addr {
        match self {
            CaseRig::Emulated(r) => r.topology().ipv4(5),
            CaseRig::Lab(l) => l.hub_ipv4,
            CaseRig::Gateway(g) => g.topology().ipv4(5),
        }
    }

    /// The DUT's link-local IPv6 address and the bench interface it is on.
    pub fn dut_ipv6_link_local(&self) -> Option<(Ipv6Addr, String)> {
        self.dut_addresses().ipv6_link_local
    }

    /// The bench-side interface on the DUT's link (the capture point).
    pub fn bench_interface(&self) -> Result<String, RigError> {
        Ok(self.capture_target()?.interface)
    }

    /// The network namespace standing for `node`: the emulated topology's,
    /// or `None` (the bench's own) on a lab rig, where the hub and the bench
    /// side of the DUT's link are this host. On a lab rig a client "from the
    /// DUT's side" (`Node::Dut`) runs on the bench too: the hub cannot tell.
    pub fn netns(&self, node: Node) -> Option<PathBuf> {
        match self {
            CaseRig::Emulated(r) => Some(r.topology().netns_path(node)),
            CaseRig::Lab(_) => None,
            CaseRig::Gateway(g) => Some(g.topology().netns_path(node)),
        }
    }

    /// `program` run in [`CaseRig::netns`] of `node`.
    pub fn command(&self, node: Node, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self {
            CaseRig::Emulated(r) => r.topology().command(node, program),
            CaseRig::Lab(_) => Command::new(program),
            CaseRig::Gateway(g) => g.topology().command(node, program),
        }
    }

    /// Runs `f` on a thread in [`CaseRig::netns`] of `node`.
    pub fn in_ns<T: Send + 'static>(
        &self,
        node: Node,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RigError> {
        in_netns(self.netns(node), f)
    }

    /// The emulated board's process id while powered (`BoardProcess` cases only).
    /// Destroys `node`'s established TCP sockets (to `dport`, or all), as
    /// `ss -K` would; how many.
    pub fn kill_established_tcp(&self, node: Node, dport: Option<u16>) -> Result<usize, RigError> {
        match self {
            CaseRig::Emulated(r) => r.topology().kill_established_tcp(node, dport),
            CaseRig::Gateway(g) => g.topology().kill_established_tcp(node, dport),
            CaseRig::Lab(_) => Err(RigError::Setup(
                "a lab rig cannot reach into the device's sockets".into(),
            )),
        }
    }

    /// Holds the native board's flash writes for `delay` each, until the
    /// guard is dropped.
    pub fn hold_flash_writes(
        &self,
        delay: std::time::Duration,
    ) -> Result<sacbench_rig::FlashHold, RigError> {
        match self {
            CaseRig::Emulated(r) => r.hold_flash_writes(delay),
            _ => Err(RigError::Setup(
                "holding flash writes needs sacbench's native board".into(),
            )),
        }
    }

    pub fn board_pid(&self) -> Option<u32> {
        match self {
            CaseRig::Emulated(r) => r.board_pid(),
            CaseRig::Lab(_) => None,
            CaseRig::Gateway(g) => g.gateway_pid(),
        }
    }

    /// The lab rig's queued device output (see [`LabRig::take_logs`]).
    pub(crate) fn take_lab_logs(&self) -> Vec<LogLine> {
        match self {
            CaseRig::Emulated(_) | CaseRig::Gateway(_) => Vec::new(),
            CaseRig::Lab(l) => l.rig.take_logs().unwrap_or_default(),
        }
    }

    /// Waits until the lab rig has device output queued, at most `timeout`.
    pub(crate) async fn wait_for_lab_logs(&self, timeout: Duration) -> bool {
        match self {
            CaseRig::Emulated(_) | CaseRig::Gateway(_) => false,
            CaseRig::Lab(l) => l.rig.wait_for_logs(timeout).await,
        }
    }
}

impl Rig for CaseRig {
    fn name(&self) -> &str {
        match self {
            CaseRig::Emulated(r) => r.name(),
            CaseRig::Lab(l) => l.rig.name(),
            CaseRig::Gateway(g) => g.name(),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self {
            CaseRig::Emulated(r) => r.capabilities(),
            CaseRig::Lab(l) => l.rig.capabilities(),
            CaseRig::Gateway(g) => g.capabilities(),
        }
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        match self {
            CaseRig::Emulated(r) => r.power(on).await,
            CaseRig::Lab(l) => l.rig.power(on).await,
            CaseRig::Gateway(g) => g.power(on).await,
        }
    }

    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        match self {
            CaseRig::Emulated(r) => r.link(up).await,
            CaseRig::Lab(l) => l.rig.link(up).await,
            CaseRig::Gateway(g) => g.link(up).await,
        }
    }

    async fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        match self {
            CaseRig::Emulated(r) => r.flash(image).await,
            CaseRig::Lab(l) => l.rig.flash(image).await,
            CaseRig::Gateway(g) => g.flash(image).await,
        }
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        match self {
            CaseRig::Emulated(r) => r.logs().await,
            CaseRig::Lab(l) => l.rig.logs().await,
            CaseRig::Gateway(g) => g.logs().await,
        }
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        match self {
            CaseRig::Emulated(r) => r.capture_target(),
            CaseRig::Lab(l) => l.rig.capture_target(),
            CaseRig::Gateway(g) => g.capture_target(),
        }
    }

    fn dut_addresses(&self) -> DutAddresses {
        match self {
            CaseRig::Emulated(r) => r.dut_addresses(),
            CaseRig::Lab(l) => l.rig.dut_addresses(),
            CaseRig::Gateway(g) => g.dut_addresses(),
        }
    }
}
