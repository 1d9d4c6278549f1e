//! The DUT file: what the device under test is — its name, the parts of the
//! device contract it implements, how to run it as an emulated board, the
//! console events the bench may read, the fault switches it offers and the
//! image OTA cases sign. The rig file says how the bench reaches a board;
//! this file says what is on it. Format for users: `docs/DUT.md`.
//!
//! A bad file gets one error naming the file, the line and the field
//! ([`ConfigError`], as `rig.toml` gets).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use regex::Regex;
use serde::Deserialize;

use crate::lab::fields::{self, expected_in, find_line};
use crate::lab::ConfigError;

/// Every field of a DUT file with the form it expects, in file order.
pub const DUT_FIELDS: &[(&str, &str)] = &[
    ("name", "a string naming the device, shown in reports"),
    (
        "implements",
        "an array of contract parts, each one of: telemetry, c2d, methods, twin, est-rotation, ota, modbus-gateway",
    ),
    (
        "clock_scale",
        "true when the device runs its clock at device.json's `clock` scale (timers and wall clock alike); default false",
    ),
    (
        "connack_timeout_s",
        "an integer from 1 to 300: the seconds the device waits for a CONNACK before it gives the attempt up (optional; CD-16 then allows it that, not its default)",
    ),
    ("emulated", "a table [emulated] with command"),
    (
        "emulated.command",
        "an array of strings, the program first; placeholders {provisioning}, {state}, {device_id}, {hub_host}, {sacbench_bin}, {dut_dir}; with network = \"tap\" also {bridge}, {ipv4_cidr}, {ipv4_gateway}, {ntp_server}, {dns_server}, {mac}",
    ),
    (
        "emulated.build",
        "an array of strings run once before any case (before the rig's namespaces), in the DUT file's folder, to build what command runs, e.g. [\"make\", \"firmware\"]; placeholders {dut_dir}, {sacbench_bin}; a failure stops the run (exit 2)",
    ),
    (
        "emulated.flash",
        "an array of strings that writes the signed image {image} into the board's flash under {state}, e.g. [\"{sacbench_bin}/device-native\", \"write-image\", \"--flash\", \"{state}/flash.bin\", \"--slot\", \"primary\", \"{image}\"]",
    ),
    (
        "emulated.board",
        "\"sacbench-native\": the firmware runs on sacbench's native emulated board (its bootloader, flash layout and precise power switch)",
    ),
    (
        "emulated.ipv6_link_local",
        "\"eui64\" (only with network = \"tap\"): the board derives its IPv6 link-local address from {mac} by modified EUI-64 (RFC 4291 appendix A), so the bench can scan it (NI-06)",
    ),
    (
        "emulated.rtt",
        "an inline table { gdb = \"{state}/gdb.sock\", ram = [start, size] }: the board's RTT is read through the gdbstub socket its emulator listens on (e.g. QEMU's -gdb), the control block searched in that RAM (a 32-bit target)",
    ),
    ("emulated.rtt.gdb", "a path under {state}: the gdbstub's Unix socket"),
    ("emulated.rtt.ram", "[start, size]: the target RAM (up to 1 MiB) the RTT control block is searched in, e.g. [0x2000_0000, 0x1_0000]"),
    (
        "emulated.network",
        "\"namespace\" (default: the command's processes use the DUT namespace's own address) or \"tap\" (the board brings its own IP stack, e.g. QEMU: the rig bridges the DUT's link to {bridge}, where the board's TAP device goes, and leaves the address {ipv4_cidr} to the board)",
    ),
    ("events", "a table [events] of console event names to regular expressions"),
    ("faults", "a table [faults] with offered"),
    ("faults.offered", "an array of the fault switch names this device offers"),
    (
        "faults.args",
        "an array of strings added to [emulated] command for each fault switched on; {fault} is its name, e.g. [\"--fault\", \"{fault}\"]",
    ),
    ("image", "a table [image] with payload and signing_key"),
    (
        "image.payload",
        "the firmware payload OTA cases sign new versions of: a path relative to the DUT file, or with {sacbench_bin}",
    ),
    (
        "image.signing_key",
        "a path (relative to the DUT file) to the PKCS#8 PEM key (Ed25519 or ECDSA P-256) the device's OTA images are signed with",
    ),
];

/// A part of the device contract (`docs/device-contract.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractPart {
    /// Device-to-cloud telemetry on `devices/{id}/messages/events/`.
    Telemetry,
    /// Cloud-to-device commands, applied once per `$.mid` (at-least-once delivery).
    C2d,
    /// Direct methods (`credentials/rotate`, `reboot`, `diag/state`).
    Methods,
    /// Reported and desired properties of the device twin.
    Twin,
    /// EST re-enrolment (RFC 7030) on `credentials/rotate` or the twin's
    /// `credentials.rotateAfter`.
    EstRotation,
    /// Twin-driven firmware update with a test boot and revert.
    Ota,
    /// A field gateway for legacy Modbus devices (the GW cases run
    /// sacbench's reference gateway in that role).
    ModbusGateway,
}

impl ContractPart {
    /// Every contract part, in declaration order (the order error messages list them in).
    pub const ALL: &'static [ContractPart] = &[
        ContractPart::Telemetry,
        ContractPart::C2d,
        ContractPart::Methods,
        ContractPart::Twin,
        ContractPart::EstRotation,
        ContractPart::Ota,
        ContractPart::ModbusGateway,
    ];

    /// The part's name in a DUT file's `implements` (`est-rotation`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ContractPart::Telemetry => "telemetry",
            ContractPart::C2d => "c2d",
            ContractPart::Methods => "methods",
            ContractPart::Twin => "twin",
            ContractPart::EstRotation => "est-rotation",
            ContractPart::Ota => "ota",
            ContractPart::ModbusGateway => "modbus-gateway",
        }
    }
}

impl fmt::Display for ContractPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn allowed<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|t| name(*t)).collect::<Vec<_>>().join(", ")
}

impl FromStr for ContractPart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ContractPart::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown contract part {s:?}; allowed: {}",
                    allowed(ContractPart::ALL, ContractPart::name)
                )
            })
    }
}

/// A console event the bench may wait for: what the bench cannot see from
/// outside, declared by the DUT file as a regular expression over console lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventName {
    /// A cloud-to-device command was applied (named group `mid`: its `$.mid`).
    /// Printed once per application: a redelivery that is not applied again
    /// must not match.
    CommandApplied,
    /// An attempt to connect to the hub failed (TCP, TLS or MQTT).
    ConnectionFailed,
    /// The device could not use its own credential (e.g. the hub refused it).
    CredentialUnusable,
    /// A rotated credential was committed.
    CredentialsRotated,
    /// The bootloader booted an image (named groups `version`; `action`:
    /// `test` for a test boot, `revert` for a revert, absent otherwise).
    Boot,
    /// The bootloader resumed an interrupted slot swap.
    SwapResumed,
    /// The bootloader found no bootable image.
    NoBootableImage,
    /// The firmware died (a crash, or the bench's precise power cut).
    Crashed,
    /// An OTA download received its first bytes (named group `offset`: from where).
    OtaReceiving,
    /// An OTA image verification finished, whatever its result.
    OtaVerification,
    /// An OTA image passed verification.
    OtaVerified,
    /// The device resets into a newly installed image.
    OtaResetting,
}

impl EventName {
    /// Every event name, in declaration order (the order error messages list them in).
    pub const ALL: &'static [EventName] = &[
        EventName::CommandApplied,
        EventName::ConnectionFailed,
        EventName::CredentialUnusable,
        EventName::CredentialsRotated,
        EventName::Boot,
        EventName::SwapResumed,
        EventName::NoBootableImage,
        EventName::Crashed,
        EventName::OtaReceiving,
        EventName::OtaVerification,
        EventName::OtaVerified,
        EventName::OtaResetting,
    ];

    /// The event's key under a DUT file's `[events]` (`command_applied`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventName::CommandApplied => "command_applied",
            EventName::ConnectionFailed => "connection_failed",
            EventName::CredentialUnusable => "credential_unusable",
            EventName::CredentialsRotated => "credentials_rotated",
            EventName::Boot => "boot",
            EventName::SwapResumed => "swap_resumed",
            EventName::NoBootableImage => "no_bootable_image",
            EventName::Crashed => "crashed",
            EventName::OtaReceiving => "ota_receiving",
            EventName::OtaVerification => "ota_verification",
            EventName::OtaVerified => "ota_verified",
            EventName::OtaResetting => "ota_resetting",
        }
    }

    /// Named groups the pattern must have.
    pub fn required_groups(self) -> &'static [&'static str] {
        match self {
            EventName::CommandApplied => &["mid"],
            EventName::Boot => &["version"],
            EventName::OtaReceiving => &["offset"],
            _ => &[],
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventName::ALL
            .iter()
            .copied()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event {s:?}; allowed: {}",
                    allowed(EventName::ALL, EventName::name)
                )
            })
    }
}

/// The emulated board kinds a DUT file can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// sacbench's native board (`device-native boot`): an MCUboot-style
    /// bootloader running executable payloads from a flash file, with a
    /// precise power switch at the N-th flash write.
    SacbenchNative,
}

/// `[emulated]`: how to run the device as an emulated board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedDut {
    /// The argv that runs the device (program first), placeholders not yet
    /// expanded ([`COMMAND_PLACEHOLDERS`]); power on starts it, power off
    /// kills its process group.
    pub command: Vec<String>,
    /// The argv that writes the signed image `{image}` into the board's
    /// flash under `{state}`; its presence gives the rig the flashing capability.
    pub flash: Option<Vec<String>>,
    /// The emulated board the firmware runs on, if it is one sacbench knows.
    pub board: Option<Board>,
    /// The argv that builds what `command` runs, run once before any case
    /// (`{dut_dir}`, `{sacbench_bin}` not yet expanded).
    pub build: Option<Vec<String>>,
    /// How the board is on the DUT's link.
    pub network: BoardNetwork,
    /// A board on a TAP device takes its IPv6 link-local address from
    /// `{mac}` by modified EUI-64 (`ipv6_link_local = "eui64"`).
    pub ipv6_link_local_eui64: bool,
    /// Where the rig reads the board's RTT (`rtt = { gdb, ram }`).
    pub rtt: Option<RttGdb>,
}

/// `[emulated] network`: how an emulated board is on the DUT's link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BoardNetwork {
    /// The command's processes use the DUT namespace's own interface and
    /// address (a device that runs as a host process).
    #[default]
    Namespace,
    /// The board brings its own IP stack on a TAP device (an emulator such
    /// as QEMU): the rig bridges the DUT's link to `{bridge}` and gives the
    /// namespace no address; the board takes `{ipv4_cidr}` itself.
    Tap,
}

/// `[faults]`: the fault switches the device offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DutFaults {
    /// The fault switch names `--fault` may name for this device.
    pub offered: Vec<String>,
    /// Arguments appended to the emulated command once per switched-on
    /// fault, `{fault}` standing for its name (at least one contains it, or
    /// the list is empty).
    pub args: Vec<String>,
}

/// `[image]`: what OTA cases sign new versions of, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DutImage {
    /// The payload path, `{sacbench_bin}` not yet expanded.
    pub payload: String,
    /// The PKCS#8 PEM image-signing key (Ed25519 or ECDSA P-256), resolved
    /// against the DUT file's folder.
    pub signing_key: PathBuf,
}

impl DutImage {
    /// The payload's path, `{sacbench_bin}` being `sacbench_bin`.
    pub fn payload_path(&self, sacbench_bin: &Path) -> PathBuf {
        PathBuf::from(
            self.payload
                .replace("{sacbench_bin}", &sacbench_bin.to_string_lossy()),
        )
    }

    /// The image-signing key, read and parsed; the error names the file.
    pub fn signing_key(&self) -> Result<mcuboot_image::SigningKey, String> {
        let path = self.signing_key.display();
        let pem = std::fs::read_to_string(&self.signing_key)
            .map_err(|e| format!("image.signing_key {path}: {e}"))?;
        mcuboot_image::SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("image.signing_key {path}: {e:?}"))
    }
}

/// A checked DUT file.
#[derive(Debug, Clone)]
pub struct DutFile {
    /// The file it was read from, as given (named in errors; anchors relative paths).
    pub file: PathBuf,
    /// The device's name, shown in reports.
    pub name: String,
    /// The contract parts the device implements; cases of other parts are not applicable.
    pub implements: BTreeSet<ContractPart>,
    /// The device runs its clock — timers and wall clock alike, certificate
    /// checks included — at the scale `device.json`'s `clock` gives
    /// (`clock_scale = true`); cases that need a fast clock are not
    /// applicable to a device that does not.
    pub clock_scale: bool,
    /// The seconds the device says it waits for a CONNACK before giving the
    /// attempt up (`connack_timeout_s`), if it says.
    pub connack_timeout_s: Option<u32>,
    /// How to run the device as an emulated board, if it can be one.
    pub emulated: Option<EmulatedDut>,
    /// The console events the device declares, each a checked pattern with
    /// its required named groups.
    pub events: BTreeMap<EventName, Regex>,
    /// The fault switches the device offers (empty when it has no `[faults]`).
    pub faults: DutFaults,
    /// What OTA cases sign new images of, if the file has `[image]`.
    pub image: Option<DutImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDut {
    name: String,
    implements: Vec<toml::Spanned<String>>,
    #[serde(default)]
    clock_scale: bool,
    #[serde(default)]
    connack_timeout_s: Option<toml::Spanned<i64>>,
    #[serde(default)]
    emulated: Option<RawEmulated>,
    #[serde(default)]
    events: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default)]
    faults: Option<RawFaults>,
    #[serde(default)]
    image: Option<RawImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmulated {
    command: Vec<String>,
    #[serde(default)]
    build: Option<Vec<String>>,
    #[serde(default)]
    flash: Option<Vec<String>>,
    #[serde(default)]
    board: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ipv6_link_local: Option<String>,
    #[serde(default)]
    rtt: Option<rtt::RawRtt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    offered: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    payload: String,
    signing_key: String,
}

/// The placeholders `[emulated] command` may use.
pub const COMMAND_PLACEHOLDERS: &[&str] = &[
    "{provisioning}",
    "{state}",
    "{device_id}",
    "{hub_host}",
    "{sacbench_bin}",
    "{dut_dir}",
    "{bridge}",
    "{ipv4_cidr}",
    "{ipv4_gateway}",
    "{ntp_server}",
    "{dns_server}",
    "{mac}",
];

/// The placeholders only a board on `network = "tap"` has: its link and the
/// addresses its own IP stack takes.
pub const TAP_PLACEHOLDERS: &[&str] = &[
    "{bridge}",
    "{ipv4_cidr}",
    "{ipv4_gateway}",
    "{ntp_server}",
    "{dns_server}",
    "{mac}",
];

impl DutFile {
    /// Reads and checks a DUT file; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<DutFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            field: String::new(),
            line: None,
            problem: format!("cannot read: {e}"),
            expected: "a readable DUT file (docs/DUT.md)".into(),
        })?;
        let dut = Self::parse(&text, path)?;
        if let Some(image) = &dut.image {
            if !image.signing_key.is_file() {
                return Err(ConfigError {
                    file: path.to_owned(),
                    field: "image.signing_key".into(),
                    line: find_line(&text, "image", "signing_key"),
                    problem: format!("{} is not a file", image.signing_key.display()),
                    expected: expected_in(DUT_FIELDS, "image.signing_key").into(),
                });
            }
        }
        Ok(dut)
    }

    /// Checks the text of a DUT file; `file` names it in errors and anchors
    /// relative paths. Does no I/O.
    pub fn parse(text: &str, file: &Path) -> Result<DutFile, ConfigError> {
        let err = |field: &str, line: Option<usize>, problem: String| ConfigError {
            file: file.to_owned(),
            field: field.to_owned(),
            line,
            problem,
            expected: expected_in(DUT_FIELDS, field).to_owned(),
        };
        let line_at = |offset: usize| fields::line_at(text, offset);
        let raw: RawDut = fields::parse_toml(text, file, DUT_FIELDS)?;
        let base = file.parent().unwrap_or(Path::new("."));

        let mut implements = BTreeSet::new();
        for part in &raw.implements {
            let p: ContractPart = part
                .get_ref()
                .parse()
                .map_err(|m| err("implements", line_at(part.span().start), m))?;
            implements.insert(p);
        }

        let connack_timeout_s = match &raw.connack_timeout_s {
            None => None,
            Some(v) => Some(
                u32::try_from(*v.get_ref())
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .ok_or_else(|| {
                        err(
                            "connack_timeout_s",
                            line_at(v.span().start),
                            format!("{} is out of range", v.get_ref()),
                        )
                    })?,
            ),
        };

        let mut events = BTreeMap::new();
        for (name, pattern) in &raw.events {
            let line = line_at(pattern.span().start);
            let field = format!("events.{name}");
            let event: EventName = name.parse().map_err(|m| ConfigError {
                expected: format!("one of: {}", allowed(EventName::ALL, EventName::name)),
                ..err(&field, line, m)
            })?;
            let expected = || {
                let groups = event.required_groups();
                let mut s =
                    "a regular expression (Rust regex syntax) matching a console line".to_owned();
                if !groups.is_empty() {
                    s += &format!(
                        ", with the named group(s) {}",
                        groups
                            .iter()
                            .map(|g| format!("(?P<{g}>…)"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                s
            };
            let re = Regex::new(pattern.get_ref()).map_err(|e| ConfigError {
                expected: expected(),
                ..err(
                    &field,
                    line,
                    format!(
                        "not a regular expression: {}",
                        e.to_string().lines().last().unwrap_or_default().trim()
                    ),
                )
            })?;
            for g in event.required_groups() {
                if !re.capture_names().flatten().any(|n| n == *g) {
                    return Err(ConfigError {
                        expected: expected(),
                        ..err(&field, line, format!("no named group `{g}`"))
                    });
                }
            }
            events.insert(event, re);
        }

        let emulated = match raw.emulated {
            None => None,
            Some(e) => {
                let line = find_line(text, "emulated", "command");
                if e.command.first().is_none_or(|p| p.is_empty()) {
                    return Err(err("emulated.command", line, "no program".into()));
                }
                for arg in &e.command {
                    if let Some(bad) = unknown_placeholder(arg, COMMAND_PLACEHOLDERS) {
                        return Err(err(
                            "emulated.command",
                            line,
                            format!("unknown placeholder {bad}"),
                        ));
                    }
                }
                if let Some(flash) = &e.flash {
                    let line = find_line(text, "emulated", "flash");
                    if flash.first().is_none_or(|p| p.is_empty()) {
                        return Err(err("emulated.flash", line, "no program".into()));
                    }
                    if !flash.iter().any(|a| a.contains("{image}")) {
                        return Err(err(
                            "emulated.flash",
                            line,
                            "no argument contains {image}".into(),
                        ));
                    }
                }
                let board = match e.board.as_deref() {
                    None => None,
                    Some("sacbench-native") => Some(Board::SacbenchNative),
                    Some(other) => {
                        return Err(err(
                            "emulated.board",
                            find_line(text, "emulated", "board"),
                            format!("unknown board {other:?}"),
                        ))
                    }
                };
                let network = match e.network.as_deref() {
                    None | Some("namespace") => BoardNetwork::Namespace,
                    Some("tap") => BoardNetwork::Tap,
                    Some(other) => {
                        return Err(err(
                            "emulated.network",
                            find_line(text, "emulated", "network"),
                            format!("unknown network {other:?}"),
                        ))
                    }
                };
                if network == BoardNetwork::Namespace {
                    if let Some(p) = TAP_PLACEHOLDERS
                        .iter()
                        .find(|p| e.command.iter().any(|a| a.contains(*p)))
                    {
                        return Err(err(
                            "emulated.command",
                            line,
                            format!("{p} is only for a board with network = \"tap\""),
                        ));
                    }
                }
                let ipv6_link_local_eui64 = match e.ipv6_link_local.as_deref() {
                    None => false,
                    Some("eui64") if network == BoardNetwork::Tap => true,
                    Some(other) => {
                        return Err(err(
                            "emulated.ipv6_link_local",
                            find_line(text, "emulated", "ipv6_link_local"),
                            if other == "eui64" {
                                "\"eui64\" is only for a board with network = \"tap\" (a namespace board has the rig's own address)".into()
                            } else {
                                format!("unknown {other:?}")
                            },
                        ))
                    }
                };
                if let Some(build) = &e.build {
                    let line = find_line(text, "emulated", "build");
                    if build.first().is_none_or(|p| p.is_empty()) {
                        return Err(err("emulated.build", line, "no program".into()));
                    }
                    if let Some(bad) = build
                        .iter()
                        .find_map(|a| unknown_placeholder(a, &["{dut_dir}", "{sacbench_bin}"]))
                    {
                        return Err(err(
                            "emulated.build",
                            line,
                            format!("unknown placeholder {bad}"),
                        ));
                    }
                }
                let rtt = e
                    .rtt
                    .map(rtt::RawRtt::check)
                    .transpose()
                    .map_err(|m| err("emulated.rtt", find_line(text, "emulated", "rtt"), m))?;
                Some(EmulatedDut {
                    rtt,
                    command: e.command,
                    flash: e.flash,
                    build: e.build,
                    board,
                    network,
                    ipv6_link_local_eui64,
                })
            }
        };

        let faults = match raw.faults {
            None => DutFaults::default(),
            Some(f) => {
                if !f.args.is_empty() && !f.args.iter().any(|a| a.contains("{fault}")) {
                    return Err(err(
                        "faults.args",
                        find_line(text, "faults", "args"),
                        "no argument contains {fault}".into(),
                    ));
                }
                DutFaults {
                    offered: f.offered,
                    args: f.args,
                }
            }
        };

        let image = raw.image.map(|i| DutImage {
            payload: if i.payload.contains("{sacbench_bin}") {
                i.payload
            } else {
                base.join(&i.payload).display().to_string()
            },
            signing_key: base.join(i.signing_key),
        });

        Ok(DutFile {
            file: file.to_owned(),
            name: raw.name,
            implements,
            clock_scale: raw.clock_scale,
            connack_timeout_s,
            emulated,
            events,
            faults,
            image,
        })
    }

    /// `[emulated] build` with `{dut_dir}` and `{sacbench_bin}` expanded, if
    /// the file has one.
    pub fn build_argv(&self, sacbench_bin: &Path) -> Option<Vec<String>> {
        let build = self.emulated.as_ref()?.build.as_ref()?;
        // Absolute: the build runs in this folder, so a relative one would
        // be taken twice.
        let dir = absolute(self.dir());
        Some(
            build
                .iter()
                .map(|a| {
                    a.replace("{dut_dir}", &dir.to_string_lossy())
                        .replace("{sacbench_bin}", &sacbench_bin.to_string_lossy())
                })
                .collect(),
        )
    }

    /// The folder the DUT file is in: the emulated command's working directory.
    pub fn dir(&self) -> PathBuf {
        crate::folder_of(&self.file)
    }

    /// Whether the device declares `part` in `implements`.
    pub fn implements(&self, part: ContractPart) -> bool {
        self.implements.contains(&part)
    }

    /// The pattern the device declared for `name`, if any; a case waiting
    /// on an undeclared event is not applicable to the device.
    pub fn event(&self, name: EventName) -> Option<&Regex> {
        self.events.get(&name)
    }

    /// `Err` naming the fault and what the device offers, if it does not offer `fault`.
    pub fn check_fault(&self, fault: &str) -> Result<(), String> {
        if self.faults.offered.iter().any(|f| f == fault) {
            Ok(())
        } else if self.faults.offered.is_empty() {
            Err(format!(
                "--fault {fault}: {} ({}) offers no fault switches",
                self.name,
                self.file.display()
            ))
        } else {
            Err(format!(
                "--fault {fault}: {} ({}) offers no such fault; it offers: {}",
                self.name,
                self.file.display(),
                self.faults.offered.join(", ")
            ))
        }
    }
}

/// The first `{name}` in `arg` that is not one of `known`.
fn unknown_placeholder<'a>(arg: &'a str, known: &[&str]) -> Option<&'a str> {
    let mut rest = arg;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}')? + start + 1;
        let p = &rest[start..end];
        if !known.contains(&p) {
            return Some(p);
        }
        rest = &rest[end..];
    }
    None
}

/// `path` made absolute where it exists (placeholders are absolute paths).
pub(crate) fn absolute(path: PathBuf) -> PathBuf {
    std::fs::canonicalize(&path).unwrap_or(path)
}

mod placeholders;
pub use placeholders::{Placeholders, TapPlaceholders};
mod rtt;
pub use rtt::{Ram, RttGdb};

#[cfg(test)]
mod tests;
