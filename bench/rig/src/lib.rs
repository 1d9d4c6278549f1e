//! One `Rig` trait; the emulated rig and the lab rig differ only below it.
//!
//! A rig is what the suites drive: the device under test (DUT) with its
//! power, its network link, its flash, its logs (RTT channels and console),
//! a capture point on its network side, and its addresses. Not every rig has
//! every capability; a case that needs a missing one is reported as ignored
//! with the reason ([`RigError::Unsupported`]).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub mod dut;
pub mod emulated;
pub mod lab;
pub mod pty;
pub mod rtt;
pub mod scan;

pub use emulated::FlashHold;
pub use sacbench_provisioning::board_control::HoldScope;
pub use sacbench_provisioning::Provisioning;

/// Something a rig can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Switching the DUT's power on and off ([`Rig::power`]): a relay on a
    /// lab rig.
    Power,
    /// Taking the DUT's network link down and up ([`Rig::link`]).
    Link,
    /// Writing a signed image to the DUT's boot slot ([`Rig::flash`]): a
    /// debug probe or a flasher command on a lab rig.
    Flash,
    /// Reading the DUT's RTT up-channels through a debug probe.
    Rtt,
    /// Reading the DUT's console: a serial port on a lab rig, the emulated
    /// board's stdout and stderr.
    Console,
    /// Capturing the DUT's traffic on the bench side ([`Rig::capture_target`]).
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
    /// A second board of the same DUT on the rig's network, with its own
    /// address, power, console and state, provisioned as the case says
    /// ([`Rig::second_board`]).
    SecondBoard,
    /// The rig knows the DUT's IPv6 link-local address
    /// ([`DutAddresses::ipv6_link_local`]): the emulated rig's own, for a
    /// board in its namespace; a lab rig's `dut.ipv6_link_local`.
    Ipv6LinkLocal,
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
                "board running as a bench process (the case inspects the board's process or acts in its network namespace; a board with its own IP stack, such as QEMU, has its sockets inside the emulator)"
            }
            Capability::SecondBoard => "second board of the DUT on its network",
            Capability::Ipv6LinkLocal => {
                "known IPv6 link-local address of the DUT (a lab rig's dut.ipv6_link_local; the emulated rig assigns none to a board with its own IP stack)"
            }
        })
    }
}

/// The capabilities a rig has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(pub BTreeSet<Capability>);

impl Capabilities {
    /// Whether the rig can do `c`.
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
    /// The DUT's IPv4 address, if it has one the bench knows.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 link-local address and the bench-side interface (its scope).
    pub ipv6_link_local: Option<(Ipv6Addr, String)>,
}

/// Where a log line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// An RTT up-channel, by number and name.
    Rtt {
        /// The up-channel's index in the DUT's RTT control block.
        channel: usize,
        /// The up-channel's name as the firmware declares it.
        name: String,
    },
    /// The DUT's console: a serial port on a lab rig, the emulated board's
    /// stdout and stderr.
    Console,
    /// The rig's own note in the device log: a reset it saw (the DUT's
    /// process exited by itself and was started again), a power action.
    Rig,
}

/// One line of device output, stamped when the bench read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which channel of the DUT (or the rig itself) produced the line.
    pub source: LogSource,
    /// Nanoseconds since the Unix epoch, bench clock.
    pub at_ns: u64,
    /// The line, without its line ending (invalid UTF-8 replaced).
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
    /// The operation needs a capability this rig lacks; the suites report
    /// the case as ignored with this reason.
    #[error("this rig has no {0}")]
    Unsupported(Capability),
    /// The bench side is wrong: a rig or DUT file, a missing tool, a
    /// provisioning step that could not be done.
    #[error("{0}")]
    Setup(String),
    /// An I/O error on the bench, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What the bench was doing, and on which file or device.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The DUT or its hardware (relay, probe, RTT) answered wrongly or not
    /// at all.
    #[error("{0}")]
    Device(String),
}

/// The device id a DUT is registered under when the bench does not say
/// otherwise (the suites' `dut-1`).
pub const DEVICE_ID: &str = "dut-1";

/// A node of a case's network, as the suites name it: the device under
/// test, its first hop (the emulated gateway or router), the hub. On a lab
/// rig the first hop and the hub are the bench itself.
pub use emulated::topology::Node;

/// The addresses of one case's network, as the suites use them: where the
/// hub listens and what the device dials, whatever the rig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigNetwork {
    /// The hub's DNS name: what the DUT dials, its SNI, the name in the
    /// hub's certificate.
    pub hub_host: String,
    /// Where the case's hub listens.
    pub hub_ipv4: Ipv4Addr,
    /// The DUT's address.
    pub dut_ipv4: Ipv4Addr,
    /// The DUT's first hop on its own link (the emulated gateway; the bench
    /// on a lab rig).
    pub first_hop_ipv4: Ipv4Addr,
    /// The first hop's address on the hub's side (the gateway's uplink).
    pub uplink_ipv4: Ipv4Addr,
    /// An address inside the case's range that nothing legitimate talks to
    /// (only the `extra-destination` fault does), if the rig has one.
    pub unused_ipv4: Option<Ipv4Addr>,
}

/// One predicate over a console line, for [`Rig::wait_console_from`].
pub type LinePredicate<'a> = &'a dyn Fn(&str) -> bool;

/// A second board of the same DUT ([`Rig::second_board`]): its own address
/// on the rig's network, power, console and state (its flash), provisioned
/// as the case said — with the first board's identity (two units sharing
/// one) or with another. Dropped, it is powered off.
#[async_trait::async_trait(?Send)]
pub trait SecondBoard {
    /// Its address on the rig's network: what tells its connections from
    /// the first board's at the hub.
    fn ipv4(&self) -> Ipv4Addr;
    /// Switch its power. Off is immediate (a power cut), on boots it.
    async fn power(&mut self, on: bool) -> Result<(), RigError>;
    /// Its log lines produced since the last call (console).
    async fn logs(&mut self) -> Result<Vec<LogLine>, RigError>;
    /// Every console line of it since it came up, in order.
    fn console_lines(&self) -> Vec<String>;
    /// Waits until one of its console lines from index `from` on matches
    /// `pred`: the line and its index, or `None` within `guard`.
    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)>;
    /// Where to capture its traffic.
    fn capture_target(&self) -> Result<CaptureTarget, RigError>;
}

/// The device under test and everything around it.
///
/// Object-safe (`Box<dyn Rig>`; its futures are not `Send`: a case drives
/// its rig from one task): the suites drive every rig through it;
/// what only some rigs can do is a [`Capability`] and a default method that
/// says so.
#[async_trait::async_trait(?Send)]
pub trait Rig {
    /// Human name (rig file path, or "emulated #3").
    fn name(&self) -> &str;
    /// What this rig can do.
    fn capabilities(&self) -> Capabilities;
    /// The case network's addresses; an error names what the rig file lacks.
    fn network(&self) -> Result<RigNetwork, RigError>;
    /// The hub identities the DUT needs, by device id (one for a device; one
    /// per leaf for a gateway). [`Rig::provision`] gets one record per id, in
    /// this order.
    fn device_ids(&self) -> Vec<String>;
    /// Hands the DUT its provisioning (one record per [`Rig::device_ids`]),
    /// written under `dir`; the DUT is powered off.
    async fn provision(&mut self, dir: &Path, records: &[Provisioning]) -> Result<(), RigError>;
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
    /// Every console line since the rig came up, in order.
    fn console_lines(&self) -> Vec<String>;
    /// Waits until a console line from index `from` of
    /// [`Rig::console_lines`] on matches `pred`: the line and its index, or
    /// `None` within `guard`.
    async fn wait_console_from(
        &self,
        from: usize,
        guard: Duration,
        pred: LinePredicate<'_>,
    ) -> Option<(usize, String)>;
    /// Where to capture the DUT's traffic.
    fn capture_target(&self) -> Result<CaptureTarget, RigError>;
    /// Where the DUT can be reached from the bench side.
    fn dut_addresses(&self) -> DutAddresses;
    /// The network namespace standing for `node`, or `None`: the bench's
    /// own (a lab rig, where the hub and the bench side of the DUT's link
    /// are this host; a client "from the DUT's side" then runs on the bench
    /// too, and the hub cannot tell).
    fn netns(&self, _node: Node) -> Option<PathBuf> {
        None
    }
    /// `program`, to be run in [`Rig::netns`] of `node`.
    fn command(&self, node: Node, program: &OsStr) -> Command {
        match self.netns(node) {
            Some(ns) => emulated::sandbox::netns_command(&ns, program),
            None => Command::new(program),
        }
    }
    /// Destroys `node`'s established TCP sockets (to `dport`, or all), as
    /// `ss -K` would; how many.
    fn kill_established_tcp(&self, _node: Node, _dport: Option<u16>) -> Result<usize, RigError> {
        Err(RigError::Setup(
            "this rig cannot reach into the device's sockets".into(),
        ))
    }
    /// Holds the DUT firmware's flash writes in `scope` until the guard is
    /// dropped, each for at most `delay` (sacbench's native board only).
    fn hold_flash_writes(
        &self,
        _delay: Duration,
        _scope: HoldScope,
    ) -> Result<FlashHold, RigError> {
        Err(RigError::Setup(
            "holding flash writes needs sacbench's native board".into(),
        ))
    }
    /// The DUT's process id while powered, where it is a bench process.
    fn board_pid(&self) -> Option<u32> {
        None
    }
    /// The image the rig file names (`[image]`), if any: what a lab DUT
    /// starts each case from, and the payload and key OTA cases re-sign.
    fn configured_image(&self) -> Option<lab::ImageConfig> {
        None
    }
    /// A second board of the same DUT on the rig's network, handed
    /// `record` (the first board's identity, or another one the hub knows)
    /// and powered off; at most one per rig. A rig with one board says so
    /// ([`Capability::SecondBoard`]): the cases that need two are ignored
    /// there, never failed.
    async fn second_board(
        &mut self,
        _record: &Provisioning,
    ) -> Result<Box<dyn SecondBoard>, RigError> {
        Err(RigError::Unsupported(Capability::SecondBoard))
    }
}

/// Waits for a console line matching `pred` on `rig` (any line since it
/// came up); `None` within `guard`.
pub async fn wait_console(
    rig: &dyn Rig,
    guard: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    rig.wait_console_from(0, guard, &pred)
        .await
        .map(|(_, line)| line)
}

/// Runs `f` on a thread in `netns` (the bench's own namespace for `None`).
pub use emulated::topology::in_netns;

/// Runs `f`, which blocks (a thread join, a netlink round trip), without
/// holding up the runtime's other tasks: on a multi-threaded runtime the
/// worker hands them on first (`block_in_place`); a current-thread runtime
/// has no other worker to hand them to and runs it in place.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
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
