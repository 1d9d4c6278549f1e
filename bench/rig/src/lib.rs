//! One `Rig` trait; the emulated rig and the lab rig differ only below it.
//!
//! A rig is what the suites drive: the device under test (DUT) with its
//! power, its network link, its flash, its logs (RTT channels and console),
//! a capture point on its network side, and its addresses. Not every rig has
//! every capability; a case that needs a missing one is reported as ignored
//! with the reason ([`RigError::Unsupported`]).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub mod dut;
pub mod emulated;
pub mod lab;
pub mod pty;
pub mod rtt;
pub mod scan;

/// A node of a case's network (the DUT, the gateway, the hub), and running
/// code in its namespace: on a lab rig every node is the bench itself.
pub use emulated::topology::{in_netns, Node};
pub use emulated::FlashHold;

/// Something a rig can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Power,
    Link,
    Flash,
    Rtt,
    Console,
    Capture,
    /// New signed images of the DUT's own firmware (for OTA cases): the
    /// emulated board's, or `image.path` re-signed with `image.signing_key`.
    Images,
    /// The board runs as a bench process (an emulated board): the suites may
    /// inspect its process (its socket table) and act inside its network
    /// namespace.
    BoardProcess,
    /// Emulated legacy Modbus devices behind the reference field gateway
    /// (the GW cases).
    LegacyDevices,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Power => "power control",
            Capability::Link => "link control",
            Capability::Flash => "flashing",
            Capability::Rtt => "RTT logs",
            Capability::Console => "console",
            Capability::Capture => "traffic capture",
            Capability::Images => "signing key for OTA images of the DUT's firmware",
            Capability::LegacyDevices => "emulated legacy devices behind a field gateway",
            Capability::BoardProcess => {
                "emulated board (the case inspects the board's process or acts in its network)"
            }
        })
    }
}

/// The capabilities a rig has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(pub BTreeSet<Capability>);

impl Capabilities {
    pub fn has(&self, c: Capability) -> bool {
        self.0.contains(&c)
    }

    /// `Err(Unsupported)` naming the first missing capability.
    pub fn require(&self, needed: &[Capability]) -> Result<(), RigError> {
        match needed.iter().find(|c| !self.has(**c)) {
            Some(c) => Err(RigError::Unsupported(*c)),
            None => Ok(()),
        }
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        Capabilities(iter.into_iter().collect())
    }
}

/// Where the DUT can be reached from the bench side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DutAddresses {
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 link-local address and the bench-side interface (its scope).
    pub ipv6_link_local: Option<(Ipv6Addr, String)>,
}

/// Where a log line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// An RTT up-channel, by number and name.
    Rtt {
        channel: usize,
        name: String,
    },
    Console,
    /// The rig's own note in the device log: a reset it saw (the DUT's
    /// process exited by itself and was started again), a power action.
    Rig,
}

/// One line of device output, stamped when the bench read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub source: LogSource,
    /// Nanoseconds since the Unix epoch, bench clock.
    pub at_ns: u64,
    pub text: String,
}

/// A capture in progress, written to `path` when stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureTarget {
    /// Interface on the bench side that sees the DUT's traffic.
    pub interface: String,
    /// Network namespace to open it in, if any.
    pub netns: Option<PathBuf>,
}

/// Why a rig operation failed. Messages name what and where.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    #[error("this rig has no {0}")]
    Unsupported(Capability),
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Device(String),
}

/// The device under test and everything around it.
#[allow(async_fn_in_trait)] // used with concrete rig types, never as `dyn Rig`
pub trait Rig {
    /// Human name (rig file path, or "emulated #3").
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// Switch DUT power. Off is immediate (a power cut), on boots the DUT.
    async fn power(&mut self, on: bool) -> Result<(), RigError>;
    /// Off, then on.
    async fn power_cycle(&mut self) -> Result<(), RigError> {
        self.power(false).await?;
        self.power(true).await
    }
    /// Take the DUT's network link down or up.
    async fn link(&mut self, up: bool) -> Result<(), RigError>;
    /// Write a signed image to the DUT's boot slot (power is off meanwhile).
    async fn flash(&mut self, image: &Path) -> Result<(), RigError>;
    /// The log lines produced since the last call (RTT and console).
    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError>;
    /// Where to capture the DUT's traffic.
    fn capture_target(&self) -> Result<CaptureTarget, RigError>;
    fn dut_addresses(&self) -> DutAddresses;
}

/// What a DUT is provisioned with for one case: its identity from the
/// case's hub, where the hub is and the name it goes by — the
/// language-neutral provisioning directory (`sacbench_provisioning`).
pub struct ProvisioningRecord;

impl ProvisioningRecord {
    /// The record for `credentials` at `hub_host` (MQTT on `mqtt_port`,
    /// HTTPS on `https_port`), no faults.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(
        credentials: &hub_fixture::hub::DeviceCredentials,
        hub_host: &str,
        mqtt_port: u16,
        https_port: u16,
    ) -> sacbench_provisioning::Provisioning {
        sacbench_provisioning::Provisioning {
            device: sacbench_provisioning::DeviceJson::new(
                &credentials.device_id,
                hub_host,
                mqtt_port,
                https_port,
            ),
            certificate_pem: credentials.cert_pem.clone(),
            private_key_pem: credentials.key_pem.clone(),
            hub_ca_pem: credentials.ca_pem.clone(),
            image_signing_key_pem: None,
        }
    }
}

/// The folder a rig or DUT file is in (`.` for a bare file name): where its
/// relative paths and commands resolve.
pub(crate) fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The public half of the DUT file's image-signing key, for the
/// provisioning directory (`image-signing.pub.pem`).
pub fn image_public_key(dut: &dut::DutFile) -> Result<Option<String>, RigError> {
    let Some(image) = &dut.image else {
        return Ok(None);
    };
    let key = image
        .signing_key()
        .map_err(|e| RigError::Setup(format!("{}: {e}", dut.file.display())))?;
    Ok(Some(key.public_key_pem()))
}

/// The fixture hub of one case: data and TLS key log under `dir`, MQTT on
/// `ip:8883`, EST and firmware on `ip:443`, a server certificate for
/// `host_name` and `ip`.
pub fn case_hub_config(dir: &Path, host_name: &str, ip: Ipv4Addr) -> hub_fixture::hub::HubConfig {
    let mut c = hub_fixture::hub::HubConfig::for_tests(dir.join("hub"));
    c.host_names = vec![host_name.into(), ip.to_string()];
    c.mqtt_addr = (ip, 8883).into();
    c.https_addr = (ip, 443).into();
    c.key_log = Some(dir.join("tls-keys.log"));
    c
}
