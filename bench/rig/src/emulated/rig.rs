//! `EmulatedRig`: one case's topology with the fixture hub in `hub`, the
//! emulated board (`device-native`) in `dut`, the capture point on the
//! gateway's DUT-facing interface. Power is the board's process group
//! (started / killed; its flash file stays), the link is the veth, flashing
//! writes the slot with the board's own tool.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::console::{ConsoleLog, ProcessGroup};
use super::topology::{in_netns, Node, Topology};
use crate::rtt::RttReader;
use crate::{
    Capabilities, Capability, CaptureTarget, DutAddresses, LogLine, LogSource, Rig, RigError,
};
use hub_fixture::hub::{DeviceCredentials, HubFixture};

/// The hub's name in every emulated topology (SNI, server certificate).
pub const HUB_HOST: &str = "hub.sacbench.test";

/// How to build one emulated rig.
#[derive(Debug, Clone)]
pub struct EmulatedRigConfig {
    /// Topology number, unique among rigs alive at once.
    pub id: u8,
    /// Per-case directory: flash, provisioning, hub data, run dir, key log.
    pub dir: PathBuf,
    /// The `device-native` executable (the board's tools and bootloader).
    pub device_exe: PathBuf,
    pub device_id: String,
    /// Fault switches for the provisioning file.
    pub faults: Vec<String>,
    /// Flash slot size (a multiple of 128 KiB).
    pub slot_size: u32,
    /// Point the device's MQTT at this address instead of the hub fixture
    /// (cases that stand up a deliberately bad hub in the hub namespace).
    pub hub_mqtt_override: Option<std::net::SocketAddr>,
    /// The firmware's reconnect backoff base (`None`: its own, 1 s).
    pub reconnect_base_ms: Option<u64>,
}

/// A running emulated rig (inside the rig sandbox).
pub struct EmulatedRig {
    name: String,
    config: EmulatedRigConfig,
    topo: Topology,
    hub: HubFixture,
    credentials: DeviceCredentials,
    board: Option<ProcessGroup>,
    console: ConsoleLog,
    rtt: Option<RttReader>,
    /// Why RTT could not be attached last time, for [`EmulatedRig::rtt_error`].
    rtt_error: Option<String>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn tool(exe: &Path, args: &[&std::ffi::OsStr]) -> Result<(), RigError> {
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| RigError::Setup(format!("running {}: {e}", exe.display())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RigError::Device(format!(
            "{} {:?}: {}",
            exe.display(),
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Starts the case's hub in `topo`'s hub namespace; its listeners are made
/// on a thread inside that namespace.
pub(crate) fn start_hub(topo: &Topology, dir: &Path) -> Result<HubFixture, RigError> {
    let hub_config = crate::case_hub_config(dir, HUB_HOST, topo.hub_ipv4());
    let handle = tokio::runtime::Handle::current();
    in_netns(topo.netns_path(Node::Hub), move || {
        handle.block_on(HubFixture::start(hub_config))
    })?
    .map_err(|e| RigError::Setup(format!("starting the hub: {e}")))
}

impl EmulatedRig {
    /// Builds the topology, starts the hub in its namespace, registers the
    /// device and writes its provisioning file and an erased flash.
    pub async fn start(config: EmulatedRigConfig) -> Result<EmulatedRig, RigError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| RigError::Io {
            what: format!("creating {}", config.dir.display()),
            source: e,
        })?;
        let topo = Topology::create(config.id)?;
        let hub = start_hub(&topo, &config.dir)?;
        let credentials = hub
            .register_device(&config.device_id)
            .map_err(|e| RigError::Setup(format!("registering {}: {e}", config.device_id)))?;
        let provisioning = crate::provisioning_record(&crate::ProvisioningRecord {
            credentials: &credentials,
            hub_host: HUB_HOST,
            hub_mqtt: config.hub_mqtt_override.unwrap_or(hub.mqtt_addr()),
            hub_https: hub.https_addr(),
            faults: &config.faults,
            // Neither hub nor gateway, inside the topology's range and routed
            // nowhere: only the `extra-destination` fault ever uses it.
            extra_destination: Some((topo.ipv4(77), 443).into()),
            reconnect_base_ms: config.reconnect_base_ms,
        });
        std::fs::write(config.dir.join("provisioning.toml"), provisioning).map_err(|e| {
            RigError::Io {
                what: "writing the provisioning file".into(),
                source: e,
            }
        })?;
        let flash = config.dir.join("flash.bin");
        let _ = std::fs::remove_file(&flash);
        tool(
            &config.device_exe,
            &[
                "make-flash".as_ref(),
                flash.as_os_str(),
                "--slot-size".as_ref(),
                config.slot_size.to_string().as_ref(),
            ],
        )?;
        Ok(EmulatedRig {
            name: format!("emulated #{}", config.id),
            config,
            topo,
            hub,
            credentials,
            board: None,
            console: ConsoleLog::default(),
            rtt: None,
            rtt_error: None,
        })
    }

    /// What every emulated rig can do.
    pub fn capabilities() -> Capabilities {
        [
            Capability::Power,
            Capability::Link,
            Capability::Flash,
            Capability::Rtt,
            Capability::Console,
            Capability::Capture,
            Capability::Images,
            Capability::BoardProcess,
            Capability::LegacyDevices,
        ]
        .into_iter()
        .collect()
    }

    pub fn hub(&self) -> &HubFixture {
        &self.hub
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    pub fn credentials(&self) -> &DeviceCredentials {
        &self.credentials
    }

    pub fn flash_path(&self) -> PathBuf {
        self.config.dir.join("flash.bin")
    }

    /// Waits until a console line (seen since power-on of this rig) matches
    /// `pred`; `None` if none does within `guard`.
    pub async fn wait_console(
        &self,
        guard: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.console.wait_from(0, guard, pred).await.map(|(_, l)| l)
    }

    /// Why the last attempt to attach RTT failed, if it did.
    pub fn rtt_error(&self) -> Option<&str> {
        self.rtt_error.as_deref()
    }

    /// The bootloader's process id while powered.
    pub fn board_pid(&self) -> Option<u32> {
        self.board.as_ref().map(ProcessGroup::id)
    }

    /// The running payload (the firmware): the bootloader's child.
    fn payload_pid(&self) -> Option<u32> {
        let boot = self.board_pid()?;
        let children =
            std::fs::read_to_string(format!("/proc/{boot}/task/{boot}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

impl Rig for EmulatedRig {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        EmulatedRig::capabilities()
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        if self.board.take().is_some() {
            // Dropped: the power cut, the whole board (bootloader and payload) at once.
            self.rtt = None;
        }
        if !on {
            return Ok(());
        }
        let dir = &self.config.dir;
        let mut child = self
            .topo
            .command(Node::Dut, &self.config.device_exe)
            .arg("boot")
            .arg("--flash")
            .arg(dir.join("flash.bin"))
            .arg("--provisioning")
            .arg(dir.join("provisioning.toml"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| RigError::Setup(format!("powering the board: {e}")))?;
        self.console.follow(&mut child);
        self.board = Some(ProcessGroup(child));
        Ok(())
    }

    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        self.topo.set_link(up)
    }

    async fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        if self.board.is_some() {
            return Err(RigError::Device(
                "flashing needs the board powered off".into(),
            ));
        }
        let flash = self.flash_path();
        tool(
            &self.config.device_exe,
            &[
                "write-image".as_ref(),
                "--flash".as_ref(),
                flash.as_os_str(),
                "--slot".as_ref(),
                "primary".as_ref(),
                image.as_os_str(),
            ],
        )
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        let mut lines = self.console.take_new();
        if let Some(pid) = self.payload_pid() {
            if self.rtt.as_ref().map(RttReader::pid) != Some(pid) {
                // A new payload (reboot): attach to its control block, if it has one yet.
                self.rtt = match RttReader::attach(pid) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // Not fatal: a payload that has not logged yet has no block.
                        self.rtt_error = Some(e.to_string());
                        None
                    }
                };
            }
            if let Some(rtt) = self.rtt.as_mut() {
                let name = rtt.up.first().map(|c| c.name.clone()).unwrap_or_default();
                if let Ok(bytes) = rtt.read_up(0) {
                    let at_ns = now_ns();
                    for text in String::from_utf8_lossy(&bytes).lines() {
                        lines.push(LogLine {
                            source: LogSource::Rtt {
                                channel: 0,
                                name: name.clone(),
                            },
                            at_ns,
                            text: text.into(),
                        });
                    }
                }
            }
        }
        Ok(lines)
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        Ok(CaptureTarget {
            interface: Topology::GW_DUT_IF.into(),
            netns: Some(self.topo.netns_path(Node::Gw)),
        })
    }

    fn dut_addresses(&self) -> DutAddresses {
        DutAddresses {
            ipv4: Some(self.topo.dut_ipv4()),
            ipv6_link_local: Some((self.topo.dut_ipv6_link_local(), Topology::GW_DUT_IF.into())),
        }
    }
}

impl Drop for EmulatedRig {
    fn drop(&mut self) {
        self.board = None;
        self.hub.shutdown();
    }
}
