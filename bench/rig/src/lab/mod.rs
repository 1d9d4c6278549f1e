//! The lab rig: a real board on a debug probe, its serial console, a Modbus
//! relay on its power (and optionally its Ethernet), wired to a bench NIC.
//!
//! Everything is described by a `rig.toml` ([`RigConfig`]). Power and link are
//! relay coils written with tokio-modbus; the console is read with
//! `serialport` on a blocking thread; flashing, reset and RTT go through the
//! [`Probe`] trait, whose real implementation (probe-rs) is behind the cargo
//! feature `probe-rs` so that nothing of the lab rig is needed to build or
//! test the emulated path.

mod config;
mod console;
pub(crate) mod fields;
pub mod labgrid;
pub(crate) mod logs;
mod power_port;
pub mod preflight;
mod probe;
#[cfg(feature = "probe-rs")]
mod probe_rs;
mod relay;
pub mod rfc2217;
pub mod switch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

pub use config::{
    CaptureConfig, CommandConfig, ConfigError, ConsoleConfig, HubConfig, ImageConfig,
    LabgridConfig, LinkConfig, ModbusEndpoint, PowerConfig, ProbeConfig, ProbeSelector, RigConfig,
    WireProtocol, DEFAULT_HUB_HOST, DEFAULT_LABGRID_TIMEOUT_S, DEFAULT_RELAY_TIMEOUT_MS, FIELDS,
};
pub use logs::{LineAssembler, MAX_LINE};
pub use power_port::{SimpleRest, SIMPLEREST};
pub use probe::{FakeProbe, FakeProbeRecord, ImageKind, Probe, RttData};
#[cfg(feature = "probe-rs")]
pub use probe_rs::ProbeRsProbe;
pub use relay::Relay;
pub use switch::{ModbusCoil, PowerSwitch};

use crate::rtt::poll::RttPoller;
use crate::{
    Capabilities, Capability, CaptureTarget, DutAddresses, LinePredicate, LogLine, Node,
    Provisioning, Rig, RigError, RigNetwork,
};
use console::Console;
use logs::LogSink;
use probe::{lock_probe, start_rtt_poller, SharedProbe};

/// A rig built from a `rig.toml`. Dropping it stops the console and RTT readers.
pub struct LabRig {
    // Readers first: they stop (and release the port and probe) before the rest goes.
    console: Option<Console>,
    rtt: Option<RttPoller>,
    probe: Option<SharedProbe>,
    power_switch: Option<Box<dyn PowerSwitch>>,
    link_switch: Option<Box<dyn PowerSwitch>>,
    sink: LogSink,
    config: RigConfig,
    name: String,
    /// What the bench last set; `None` until it switches power once.
    powered: Option<bool>,
}

impl std::fmt::Debug for LabRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabRig")
            .field("name", &self.name)
            .field("capabilities", &self.capabilities())
            .field("powered", &self.powered)
            .finish()
    }
}

impl LabRig {
    /// Load `rig.toml` and open the rig: the console port now, the probe lazily
    /// (with the `probe-rs` feature). A bad rig file is one [`ConfigError`].
    pub fn open(rig_file: &Path) -> Result<LabRig, RigError> {
        LabRig::from_config(RigConfig::load(rig_file)?)
    }

    /// A rig from a checked config (a rig file on an acquired labgrid place:
    /// [`RigConfig::on_place`]), with its real probe.
    pub fn from_config(config: RigConfig) -> Result<LabRig, RigError> {
        if config.labgrid.is_some() {
            return Err(RigError::Setup(format!(
                "{}: [labgrid]: the place must be acquired first (sacbench-suite does)",
                config.file.display()
            )));
        }
        let probe = match &config.probe {
            None => None,
            Some(probe) => Some(real_probe(&config, probe)?),
        };
        LabRig::new(config, probe)
    }

    /// A rig from a checked config and the probe to use for its `[probe]`
    /// (a [`FakeProbe`] in tests). A probe is required exactly when the config has `[probe]`.
    pub fn new(config: RigConfig, probe: Option<Box<dyn Probe>>) -> Result<LabRig, RigError> {
        let probe = match (&config.probe, probe) {
            (Some(_), Some(p)) => Some(Arc::new(Mutex::new(p))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(RigError::Setup(format!(
                    "{}: [probe] is set but no probe was given",
                    config.file.display()
                )))
            }
            (None, Some(_)) => {
                return Err(RigError::Setup(format!(
                    "{}: a probe was given but the rig file has no [probe]",
                    config.file.display()
                )))
            }
        };
        let sink = LogSink::default();
        let console = config
            .console
            .as_ref()
            .map(|c| Console::open(c, config.provider.as_deref(), sink.clone()))
            .transpose()?;
        let rtt = probe
            .clone()
            .map(|p| start_rtt_poller(p, sink.clone()))
            .transpose()?;
        let (power_switch, link_switch) = switch::from_config(&config);
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| config.file.display().to_string());
        Ok(LabRig {
            console,
            rtt,
            probe,
            power_switch,
            link_switch,
            sink,
            config,
            name,
            powered: None,
        })
    }

    /// The rig file's folder: where its relative paths and commands resolve.
    fn base_dir(&self) -> PathBuf {
        crate::folder_of(&self.config.file)
    }

    /// The rig file as parsed.
    pub fn config(&self) -> &RigConfig {
        &self.config
    }

    /// Wait until device output (or a reader failure) is queued, at most `timeout`;
    /// then [`Rig::logs`] has something. Returns whether anything is queued.
    /// Tests and suites wait on this instead of sleeping.
    pub async fn wait_for_logs(&self, timeout: Duration) -> bool {
        self.sink.wait(timeout).await
    }

    /// The device output queued since the last call (what [`Rig::logs`]
    /// returns), through a shared reference: a case may read it while
    /// waiting on the hub at the same time.
    pub fn take_logs(&self) -> Result<Vec<LogLine>, RigError> {
        if self.console.is_none() && self.rtt.is_none() {
            return Err(RigError::Unsupported(Capability::Console));
        }
        self.sink.drain()
    }

    /// Hands the provisioning directory (`device.json`, `device.pem`,
    /// `device.key`, `hub-ca.pem`: see `docs/DUT.md`) to the DUT with
    /// `provisioning.command`, the DUT powered off.
    pub async fn provision_dir(&mut self, dir: &Path) -> Result<(), RigError> {
        let Some(cmd) = self.config.provisioning.clone() else {
            return Err(RigError::Setup(format!(
                "{}: no [provisioning] command to give the DUT its identity for this run",
                self.config.file.display()
            )));
        };
        if self.power_switch.is_some() {
            self.power(false).await?;
        }
        let argv: Vec<std::ffi::OsString> = cmd
            .argv("{provisioning}", dir)
            .iter()
            .map(|a| {
                a.to_string_lossy()
                    .replace("{record}", &dir.to_string_lossy())
                    .into()
            })
            .collect();
        run_command("provisioning.command", &argv, &self.base_dir()).await
    }

    /// Run `f` on the probe on a blocking thread (probe calls are USB round trips).
    async fn with_probe<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Probe) -> Result<T, RigError> + Send + 'static,
    ) -> Result<T, RigError> {
        let probe = self
            .probe
            .clone()
            .ok_or(RigError::Unsupported(Capability::Flash))?;
        tokio::task::spawn_blocking(move || f(lock_probe(&probe).as_mut()))
            .await
            .map_err(|e| RigError::Device(format!("probe thread: {e}")))?
    }

    /// A failure of the console, power or link of a labgrid place names
    /// the exporter and place that provide them.
    fn blame(&self, e: RigError) -> RigError {
        let Some(by) = &self.config.provider else {
            return e;
        };
        match e {
            RigError::Device(m) => RigError::Device(format!("{by}: {m}")),
            RigError::Setup(m) => RigError::Setup(format!("{by}: {m}")),
            RigError::Io { what, source } => RigError::Io {
                what: format!("{by}: {what}"),
                source,
            },
            e @ RigError::Unsupported(_) => e,
        }
    }

    async fn tell_probe_power(&self, on: bool) -> Result<(), RigError> {
        if self.probe.is_some() {
            self.with_probe(move |p| {
                p.power_changed(on);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Runs a rig-file command to its end; a failure names the field and shows its stderr.
/// Runs a rig file's command in the rig file's folder `base`: a relative
/// program path (`./provision.sh`) and relative arguments resolve there,
/// as `image.path` does, whatever the bench's working directory.
async fn run_command(
    field: &str,
    argv: &[std::ffi::OsString],
    base: &Path,
) -> Result<(), RigError> {
    let (program, args) = argv.split_first().expect("checked non-empty when parsed");
    let as_path = Path::new(program);
    let program = if as_path.is_relative() && as_path.components().count() > 1 {
        base.join(as_path).into_os_string()
    } else {
        program.clone()
    };
    let out = tokio::process::Command::new(&program)
        .args(args)
        .current_dir(base)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| RigError::Setup(format!("{field}: running {program:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RigError::Device(format!(
        "{field} {argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(feature = "probe-rs")]
fn real_probe(config: &RigConfig, probe: &ProbeConfig) -> Result<Box<dyn Probe>, RigError> {
    let slot = config.image.as_ref().and_then(|i| i.slot_address);
    Ok(Box::new(ProbeRsProbe::new(probe.clone(), slot)))
}

#[cfg(not(feature = "probe-rs"))]
fn real_probe(config: &RigConfig, _probe: &ProbeConfig) -> Result<Box<dyn Probe>, RigError> {
    Err(RigError::Setup(format!(
        "{}: [probe] needs sacbench-rig built with the cargo feature `probe-rs`",
        config.file.display()
    )))
}

#[async_trait::async_trait(?Send)]
impl Rig for LabRig {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities()
    }

    /// The bench is the DUT's first hop and the hub (`hub.ipv4`).
    fn network(&self) -> Result<RigNetwork, RigError> {
        let file = self.config.file.display();
        let hub = self.config.hub.as_ref().ok_or_else(|| {
            RigError::Setup(format!(
                "{file}: no [hub] table: the suites need hub.ipv4, the bench's address on the DUT's network"
            ))
        })?;
        let dut_ipv4 = self
            .config
            .dut
            .ipv4
            .ok_or_else(|| RigError::Setup(format!("{file}: the suites need dut.ipv4")))?;
        Ok(RigNetwork {
            hub_host: hub.host_name.clone(),
            hub_ipv4: hub.ipv4,
            dut_ipv4,
            first_hop_ipv4: hub.ipv4,
            uplink_ipv4: hub.ipv4,
            unused_ipv4: None,
        })
    }

    fn device_ids(&self) -> Vec<String> {
        vec![crate::DEVICE_ID.into()]
    }

    /// Writes the record to `dir/provisioning` and runs `provisioning.command`.
    async fn provision(&mut self, dir: &Path, records: &[Provisioning]) -> Result<(), RigError> {
        let [record] = records else {
            return Err(RigError::Setup(format!(
                "a lab DUT takes one identity, not {}",
                records.len()
            )));
        };
        let path = dir.join("provisioning");
        sacbench_provisioning::write(&path, record)
            .map_err(|e| RigError::Setup(format!("writing the provisioning directory: {e}")))?;
        self.provision_dir(&path).await
    }

    fn console_lines(&self) -> Vec<String> {
        self.sink.console_lines()
    }

    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)> {
        self.sink.wait_console_from(from, guard, pred).await
    }

    fn netns(&self, _node: Node) -> Option<PathBuf> {
        None
    }

    fn configured_image(&self) -> Option<ImageConfig> {
        self.config.image.clone()
    }

    async fn power(&mut self, on: bool) -> Result<(), RigError> {
        let Some(switch) = &self.power_switch else {
            return Err(RigError::Unsupported(Capability::Power));
        };
        if !on {
            // Stop the probe touching the chip before its supply goes.
            self.tell_probe_power(false).await?;
        }
        let purpose = if on { "power on" } else { "power off" };
        if let Err(e) = switch.set(on, purpose).await {
            if !on {
                // The cut most likely did not happen: let the probe carry on.
                let _ = self.tell_probe_power(true).await;
            }
            return Err(self.blame(e));
        }
        self.powered = Some(on);
        if on {
            self.tell_probe_power(true).await?;
        }
        Ok(())
    }

    async fn link(&mut self, up: bool) -> Result<(), RigError> {
        let Some(switch) = &self.link_switch else {
            return Err(RigError::Unsupported(Capability::Link));
        };
        switch
            .set(up, if up { "link up" } else { "link down" })
            .await
            .map_err(|e| self.blame(e))
    }

    /// Flash through the probe, then reset so the new image boots. Unlike the
    /// emulated rig, the chip must be powered for its debug port to answer: a
    /// rig with a relay switches power on first; the core stays halted while
    /// the flash is written, so the old image does not run meanwhile.
    ///
    /// With a `[flasher]` instead, its command runs with the DUT powered off
    /// (the emulated board and boards with their own debugger supply), and the
    /// image boots at the next power-on.
    async fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        if let Some(flasher) = self.config.flasher.clone() {
            if self.power_switch.is_some() {
                self.power(false).await?;
            }
            let base = self.base_dir();
            return run_command("flasher.command", &flasher.argv("{image}", image), &base).await;
        }
        if self.probe.is_none() {
            return Err(RigError::Unsupported(Capability::Flash));
        }
        if self.power_switch.is_some() && self.powered != Some(true) {
            self.power(true).await?;
        }
        let image = image.to_owned();
        self.with_probe(move |p| {
            p.flash(&image)?;
            p.reset()
        })
        .await
    }

    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError> {
        self.take_logs()
    }

    fn capture_target(&self) -> Result<CaptureTarget, RigError> {
        let capture = self
            .config
            .capture
            .as_ref()
            .ok_or(RigError::Unsupported(Capability::Capture))?;
        Ok(CaptureTarget {
            interface: capture.interface.clone(),
            netns: None,
        })
    }

    fn dut_addresses(&self) -> DutAddresses {
        self.config.dut.clone()
    }
}
