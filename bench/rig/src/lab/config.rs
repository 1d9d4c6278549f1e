//! `rig.toml`: what a lab rig is made of.
//!
//! Parsing is serde + `toml` with `deny_unknown_fields` everywhere, so a typo
//! is an error rather than a silently ignored setting. Every problem becomes
//! one [`ConfigError`] naming the file, the dotted field, the line and the
//! expected form; the expected forms live in one table ([`FIELDS`]) so the
//! messages and the documentation cannot drift apart.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::DutAddresses;

/// Every field of `rig.toml` with the form it expects, in file order.
pub const FIELDS: &[(&str, &str)] = &[
    ("name", "a string naming the rig"),
    ("probe", "a table [probe] with selector and chip"),
    (
        "probe.selector",
        "a string \"VID:PID\" or \"VID:PID:serial\", VID and PID in hex, e.g. \"1366:1015:000683512345\"",
    ),
    ("probe.chip", "a probe-rs chip name, e.g. \"nRF52840_xxAA\""),
    ("probe.protocol", "\"swd\" or \"jtag\""),
    ("probe.speed_khz", "a wire speed in kHz, an integer 1..=4294967295"),
    ("image", "a table [image] with path"),
    (
        "image.path",
        "a path (relative to the rig file) to an existing ELF or MCUboot-signed image",
    ),
    (
        "image.signing_key",
        "a path (relative to the rig file) to the PKCS#8 PEM key (Ed25519 or ECDSA P-256) that signs the firmware's OTA images",
    ),
    (
        "image.slot_address",
        "the flash address of the primary boot slot, an integer such as 0x0000C000",
    ),
    ("console", "a table [console] with port and baud"),
    ("console.port", "a serial device path, e.g. \"/dev/ttyACM0\""),
    ("console.baud", "a baud rate, an integer such as 115200"),
    ("power", "a table [power] with tcp or rtu, unit and coil"),
    (
        "power.tcp",
        "a Modbus TCP relay address \"host:port\", e.g. \"192.0.2.10:502\" (not with power.rtu)",
    ),
    (
        "power.rtu",
        "a Modbus RTU serial device path, e.g. \"/dev/ttyUSB0\" (not with power.tcp)",
    ),
    ("power.baud", "the RTU baud rate, an integer such as 9600 (only with power.rtu)"),
    ("power.unit", "the relay's Modbus unit id, an integer 1..=255"),
    ("power.coil", "the coil address (0-based, as on the wire), an integer 0..=65535"),
    ("power.on_value", "true or false: the coil value that powers the DUT"),
    ("power.timeout_ms", "a relay answer timeout in milliseconds, an integer 1..=4294967295"),
    ("link", "a table [link] with coil"),
    (
        "link.coil",
        "the coil (on the power relay) that connects the DUT's Ethernet, an integer 0..=65535",
    ),
    ("link.up_value", "true or false: the coil value that connects the link"),
    ("capture", "a table [capture] with interface"),
    ("capture.interface", "the bench interface wired to the DUT, e.g. \"enp3s0\""),
    ("dut", "a table [dut] with ipv4 and/or ipv6_link_local"),
    ("dut.ipv4", "an IPv4 address, e.g. \"192.0.2.20\""),
    (
        "dut.ipv6_link_local",
        "an fe80::/10 address with its interface, e.g. \"fe80::1%enp3s0\" (the interface defaults to capture.interface)",
    ),
    ("hub", "a table [hub] with ipv4: where the suites' fixture hub listens"),
    (
        "hub.ipv4",
        "the bench's own IPv4 address on the DUT's network, e.g. \"192.0.2.1\" (the hub listens there on 8883 and 443)",
    ),
    (
        "hub.host_name",
        "the host name the DUT is provisioned to connect to (its SNI), e.g. \"hub.sacbench.test\"",
    ),
    ("flasher", "a table [flasher] with command (instead of [probe])"),
    (
        "flasher.command",
        "an array of strings, the program first, one of them containing \"{image}\", e.g. [\"west\", \"flash\", \"--bin-file\", \"{image}\"]",
    ),
    ("provisioning", "a table [provisioning] with command"),
    (
        "provisioning.command",
        "an array of strings, the program first, one of them containing \"{record}\" (the provisioning record file), e.g. [\"./provision.sh\", \"{record}\"]",
    ),
];

/// The form a field expects (from [`FIELDS`]).
fn expected(field: &str) -> &'static str {
    FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, e)| *e)
        .unwrap_or("no such field")
}

/// The fields directly inside `table` ("" for the top level), for "unknown field" errors.
fn fields_in(table: &str) -> String {
    let prefix = if table.is_empty() {
        String::new()
    } else {
        format!("{table}.")
    };
    let names: Vec<&str> = FIELDS
        .iter()
        .filter_map(|(f, _)| f.strip_prefix(prefix.as_str()))
        .filter(|rest| !rest.contains('.'))
        .collect();
    format!("one of: {}", names.join(", "))
}

/// One problem in a rig file: which file, which field, which line, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path (`power.coil`); empty for a TOML syntax error.
    pub field: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
    /// The form the field expects.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.problem)?;
        } else {
            write!(f, ": `{}`: {}", self.field, self.problem)?;
        }
        write!(f, "; expected {}", self.expected)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for crate::RigError {
    fn from(e: ConfigError) -> Self {
        crate::RigError::Setup(e.to_string())
    }
}

/// A parsed, checked `rig.toml`. Relative paths are already resolved against the file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RigConfig {
    /// The rig file this came from.
    pub file: PathBuf,
    pub name: Option<String>,
    pub probe: Option<ProbeConfig>,
    pub image: Option<ImageConfig>,
    pub console: Option<ConsoleConfig>,
    pub power: Option<PowerConfig>,
    pub link: Option<LinkConfig>,
    pub capture: Option<CaptureConfig>,
    pub dut: DutAddresses,
    pub hub: Option<HubConfig>,
    pub flasher: Option<CommandConfig>,
    pub provisioning: Option<CommandConfig>,
}

/// `[hub]`: where the suites' fixture hub listens, and the name the DUT knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    pub ipv4: Ipv4Addr,
    #[serde(default = "default_hub_host")]
    pub host_name: String,
}

/// The host name the hub's certificate carries when `hub.host_name` is not given.
pub const DEFAULT_HUB_HOST: &str = "hub.sacbench.test";

fn default_hub_host() -> String {
    DEFAULT_HUB_HOST.into()
}

/// `[flasher]` / `[provisioning]`: a program the bench runs, with one
/// placeholder (`{image}` / `{record}`) replaced by a file path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    pub command: Vec<String>,
}

impl CommandConfig {
    /// The argv with `placeholder` replaced by `path`.
    pub fn argv(&self, placeholder: &str, path: &Path) -> Vec<std::ffi::OsString> {
        self.command
            .iter()
            .map(|a| a.replace(placeholder, &path.to_string_lossy()).into())
            .collect()
    }
}

/// `[probe]`: which debug probe and which chip behind it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub selector: ProbeSelector,
    pub chip: String,
    #[serde(default)]
    pub protocol: Option<WireProtocol>,
    #[serde(default)]
    pub speed_khz: Option<NonZeroU32>,
}

/// A USB debug probe: vendor and product id, and a serial number when several are plugged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSelector {
    pub vendor_id: u16,
    pub product_id: u16,
    pub serial: Option<String>,
}

impl FromStr for ProbeSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The serial may itself contain ':' (some probes use a MAC address), hence splitn.
        let mut parts = s.splitn(3, ':');
        let vid = parts.next().unwrap_or_default();
        let pid = parts
            .next()
            .ok_or_else(|| format!("{s:?} has no ':' between VID and PID"))?;
        let hex = |what: &str, v: &str| {
            let digits = v.strip_prefix("0x").unwrap_or(v);
            if digits.is_empty() || digits.len() > 4 {
                return Err(format!("{what} {v:?} is not 1 to 4 hex digits"));
            }
            u16::from_str_radix(digits, 16).map_err(|_| format!("{what} {v:?} is not hex"))
        };
        let serial = match parts.next() {
            Some("") => return Err(format!("{s:?} has an empty serial number")),
            other => other.map(str::to_owned),
        };
        Ok(ProbeSelector {
            vendor_id: hex("VID", vid)?,
            product_id: hex("PID", pid)?,
            serial,
        })
    }
}

impl fmt::Display for ProbeSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor_id, self.product_id)?;
        match &self.serial {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}

/// The debug wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireProtocol {
    Swd,
    Jtag,
}

/// `[image]`: the image the bench flashes first, and where signed images go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub path: PathBuf,
    /// Primary boot slot address; needed to flash MCUboot-signed images (ELF files carry their own).
    #[serde(default)]
    pub slot_address: Option<u64>,
    /// The key OTA cases sign new images of `path`'s payload with.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
}

/// `[console]`: the DUT's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub port: String,
    pub baud: NonZeroU32,
}

/// How the bench reaches the Modbus relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusEndpoint {
    Tcp { host: String, port: u16 },
    Rtu { port: String, baud: NonZeroU32 },
}

impl fmt::Display for ModbusEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModbusEndpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "modbus tcp [{host}]:{port}")
            }
            ModbusEndpoint::Tcp { host, port } => write!(f, "modbus tcp {host}:{port}"),
            ModbusEndpoint::Rtu { port, baud } => write!(f, "modbus rtu {port} @ {baud} baud"),
        }
    }
}

/// `[power]`: the relay and the coil that switches DUT power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerConfig {
    pub relay: ModbusEndpoint,
    /// Modbus unit (slave) id, never 0: 0 is broadcast and is never answered.
    pub unit: u8,
    pub coil: u16,
    /// The coil value that means "powered" (true for a normally-open contact).
    pub on_value: bool,
    pub timeout_ms: u32,
}

/// `[link]`: a second coil on the power relay that connects the DUT's Ethernet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub coil: u16,
    #[serde(default = "yes")]
    pub up_value: bool,
}

/// `[capture]`: the bench interface that sees the DUT's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    pub interface: String,
}

fn yes() -> bool {
    true
}

/// Deserialize through `FromStr`, so a bad string yields our message, not serde's.
fn from_str<'de, D: Deserializer<'de>, T: FromStr<Err = String>>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(de::Error::custom)
}

impl<'de> Deserialize<'de> for ProbeSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// `host:port`, with `[v6]:port` for IPv6 literals.
struct HostPort(String, u16);

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} has no port"))?;
        let host = match host.strip_prefix('[') {
            Some(h) => h
                .strip_suffix(']')
                .ok_or_else(|| format!("{s:?} has an unclosed '['"))?,
            None if host.contains(':') => {
                return Err(format!("{s:?}: write an IPv6 address as [addr]:port"))
            }
            None => host,
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p != 0 => Ok(HostPort(host.to_owned(), p)),
            _ => Err(format!("port {port:?} is not 1..=65535")),
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// A link-local IPv6 address with an optional `%interface` scope.
struct ScopedLinkLocal(Ipv6Addr, Option<String>);

impl FromStr for ScopedLinkLocal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, scope) = match s.split_once('%') {
            Some((_, "")) => return Err(format!("{s:?} has an empty interface after '%'")),
            Some((a, i)) => (a, Some(i.to_owned())),
            None => (s, None),
        };
        let ip: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv6 address"))?;
        if ip.segments()[0] & 0xffc0 != 0xfe80 {
            return Err(format!("{ip} is not link-local (fe80::/10)"));
        }
        Ok(ScopedLinkLocal(ip, scope))
    }
}

impl<'de> Deserialize<'de> for ScopedLinkLocal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str(d)
    }
}

/// A Modbus unit id; 0 (broadcast) is refused because a relay never answers it.
struct Unit(u8);

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Err(de::Error::custom(
                "0 is the broadcast address, which no relay answers",
            )),
            u => Ok(Unit(u)),
        }
    }
}

// The file as written. Cross-field rules (tcp xor rtu, sections that need
// others) are checked after deserialization, with spans kept for the lines.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRig {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    probe: Option<ProbeConfig>,
    #[serde(default)]
    image: Option<toml::Spanned<ImageConfig>>,
    #[serde(default)]
    console: Option<ConsoleConfig>,
    #[serde(default)]
    power: Option<toml::Spanned<RawPower>>,
    #[serde(default)]
    link: Option<toml::Spanned<LinkConfig>>,
    #[serde(default)]
    capture: Option<CaptureConfig>,
    dut: toml::Spanned<RawDut>,
    #[serde(default)]
    hub: Option<HubConfig>,
    #[serde(default)]
    flasher: Option<toml::Spanned<CommandConfig>>,
    #[serde(default)]
    provisioning: Option<toml::Spanned<CommandConfig>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPower {
    #[serde(default)]
    tcp: Option<toml::Spanned<HostPort>>,
    #[serde(default)]
    rtu: Option<toml::Spanned<String>>,
    #[serde(default)]
    baud: Option<toml::Spanned<NonZeroU32>>,
    unit: Unit,
    coil: u16,
    #[serde(default = "yes")]
    on_value: bool,
    #[serde(default)]
    timeout_ms: Option<NonZeroU32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDut {
    #[serde(default)]
    ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    ipv6_link_local: Option<toml::Spanned<ScopedLinkLocal>>,
}

/// The relay answer timeout when `power.timeout_ms` is not given.
pub const DEFAULT_RELAY_TIMEOUT_MS: u32 = 2000;

impl RigConfig {
    /// What a rig built from this file can do.
    pub fn capabilities(&self) -> crate::Capabilities {
        use crate::Capability;
        [
            (self.power.is_some(), Capability::Power),
            (self.link.is_some(), Capability::Link),
            (
                self.probe.is_some() || self.flasher.is_some(),
                Capability::Flash,
            ),
            (self.probe.is_some(), Capability::Rtt),
            (self.console.is_some(), Capability::Console),
            (self.capture.is_some(), Capability::Capture),
            (
                self.image.as_ref().is_some_and(|i| i.signing_key.is_some()),
                Capability::Images,
            ),
        ]
        .into_iter()
        .filter_map(|(has, cap)| has.then_some(cap))
        .collect()
    }

    /// Read and check a rig file. Relative paths resolve against its folder, and
    /// `image.path` must exist.
    pub fn load(path: &Path) -> Result<RigConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            field: String::new(),
            line: None,
            problem: format!("cannot read: {e}"),
            expected: "a readable rig.toml".into(),
        })?;
        let config = Self::parse(&text, path)?;
        if let Some(image) = &config.image {
            if !image.path.is_file() {
                let line = find_line(&text, "image", "path");
                return Err(ConfigError {
                    file: path.to_owned(),
                    field: "image.path".into(),
                    line,
                    problem: format!("{} is not a file", image.path.display()),
                    expected: expected("image.path").into(),
                });
            }
        }
        if let Some(key) = config.image.as_ref().and_then(|i| i.signing_key.as_ref()) {
            if !key.is_file() {
                return Err(ConfigError {
                    file: path.to_owned(),
                    field: "image.signing_key".into(),
                    line: find_line(&text, "image", "signing_key"),
                    problem: format!("{} is not a file", key.display()),
                    expected: expected("image.signing_key").into(),
                });
            }
        }
        Ok(config)
    }

    /// Check the text of a rig file; `file` names it in errors and anchors relative paths.
    /// Does no I/O.
    pub fn parse(text: &str, file: &Path) -> Result<RigConfig, ConfigError> {
        let err = |field: &str, line: Option<usize>, problem: String| ConfigError {
            file: file.to_owned(),
            field: field.to_owned(),
            line,
            problem,
            expected: expected(field).to_owned(),
        };
        let line_at =
            |offset: usize| Some(text[..offset.min(text.len())].matches('\n').count() + 1);

        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            field: String::new(),
            line: e.span().and_then(|s| line_at(s.start)),
            problem: format!("TOML syntax error: {}", e.message().trim_end()),
            expected: "valid TOML (https://toml.io)".into(),
        })?;
        let raw: RawRig = serde_path_to_error::deserialize(de).map_err(|e| {
            let line = e.inner().span().and_then(|s| line_at(s.start));
            serde_error(file, &e.path().to_string(), e.inner().message(), line)
        })?;

        let base = file.parent().unwrap_or(Path::new("."));
        let command = |table: &str, c: Option<toml::Spanned<CommandConfig>>, placeholder: &str| {
            let Some(c) = c else { return Ok(None) };
            let field = format!("{table}.command");
            let line = find_line(text, table, "command").or(line_at(c.span().start));
            let c = c.into_inner();
            if c.command.first().is_none_or(|p| p.is_empty()) {
                return Err(err(&field, line, "no program".into()));
            }
            if !c.command.iter().any(|a| a.contains(placeholder)) {
                return Err(err(
                    &field,
                    line,
                    format!("no argument contains {placeholder}"),
                ));
            }
            Ok(Some(c))
        };
        let flasher = command("flasher", raw.flasher, "{image}")?;
        let provisioning = command("provisioning", raw.provisioning, "{record}")?;
        if let (Some(_), Some(_)) = (&raw.probe, &flasher) {
            let line = find_line(text, "flasher", "command");
            return Err(err(
                "flasher",
                line,
                "both [probe] and [flasher] are set".into(),
            ));
        }
        let image = match raw.image {
            Some(img) if raw.probe.is_none() && flasher.is_none() => {
                return Err(err(
                    "probe",
                    line_at(img.span().start),
                    "[image] needs a [probe] or a [flasher] to flash it".into(),
                ));
            }
            Some(img) => {
                let mut img = img.into_inner();
                img.path = base.join(&img.path);
                img.signing_key = img.signing_key.map(|k| base.join(k));
                Some(img)
            }
            None => None,
        };

        let power = raw.power.map(|p| {
            let span = p.span();
            let p = p.into_inner();
            let relay = match (p.tcp, p.rtu) {
                (Some(_), Some(rtu)) => {
                    return Err(err(
                        "power.rtu",
                        line_at(rtu.span().start),
                        "both power.tcp and power.rtu are set".into(),
                    ));
                }
                (None, None) => {
                    return Err(err(
                        "power.tcp",
                        line_at(span.start),
                        "missing (the relay needs power.tcp or power.rtu)".into(),
                    ));
                }
                (Some(tcp), None) => {
                    if let Some(baud) = p.baud {
                        return Err(err(
                            "power.baud",
                            line_at(baud.span().start),
                            "a baud rate for a TCP relay".into(),
                        ));
                    }
                    let HostPort(host, port) = tcp.into_inner();
                    ModbusEndpoint::Tcp { host, port }
                }
                (None, Some(rtu)) => {
                    let Some(baud) = p.baud else {
                        return Err(err(
                            "power.baud",
                            line_at(rtu.span().start),
                            "missing for the RTU relay".into(),
                        ));
                    };
                    ModbusEndpoint::Rtu {
                        port: rtu.into_inner(),
                        baud: baud.into_inner(),
                    }
                }
            };
            Ok(PowerConfig {
                relay,
                unit: p.unit.0,
                coil: p.coil,
                on_value: p.on_value,
                timeout_ms: p
                    .timeout_ms
                    .map_or(DEFAULT_RELAY_TIMEOUT_MS, NonZeroU32::get),
            })
        });
        let power = power.transpose()?;

        let link = match raw.link {
            Some(link) if power.is_none() => {
                return Err(err(
                    "power",
                    line_at(link.span().start),
                    "[link] switches a coil on the power relay, but there is no [power]".into(),
                ));
            }
            Some(link)
                if power
                    .as_ref()
                    .is_some_and(|p| p.coil == link.get_ref().coil) =>
            {
                return Err(err(
                    "link.coil",
                    line_at(link.span().start),
                    "the same coil as power.coil".into(),
                ));
            }
            link => link.map(toml::Spanned::into_inner),
        };

        let dut_span = raw.dut.span();
        let dut = raw.dut.into_inner();
        let ipv6_link_local = match dut.ipv6_link_local {
            None => None,
            Some(v6) => {
                let line = line_at(v6.span().start);
                let ScopedLinkLocal(ip, scope) = v6.into_inner();
                match scope.or_else(|| raw.capture.as_ref().map(|c| c.interface.clone())) {
                    Some(ifname) => Some((ip, ifname)),
                    None => {
                        return Err(err(
                            "dut.ipv6_link_local",
                            line,
                            "no %interface and no [capture] interface to default to".into(),
                        ));
                    }
                }
            }
        };
        if dut.ipv4.is_none() && ipv6_link_local.is_none() {
            return Err(err("dut", line_at(dut_span.start), "no DUT address".into()));
        }

        Ok(RigConfig {
            file: file.to_owned(),
            name: raw.name,
            probe: raw.probe,
            image,
            console: raw.console,
            power,
            link,
            capture: raw.capture,
            dut: DutAddresses {
                ipv4: dut.ipv4,
                ipv6_link_local,
            },
            hub: raw.hub,
            flasher,
            provisioning,
        })
    }
}

/// Turn a serde error at `path` into our error: missing and unknown fields name
/// the field itself, and serde's own "expected u16" gives way to the table's form.
fn serde_error(file: &Path, path: &str, message: &str, line: Option<usize>) -> ConfigError {
    // `toml::Spanned` adds a private segment to the path; users never wrote it.
    let segments: Vec<&str> = path
        .split('.')
        .filter(|s| !s.is_empty() && !s.starts_with("$__serde_spanned"))
        .collect();
    let path = segments.join(".");
    let path = path.as_str();
    let quoted = |m: &str| m.split('`').nth(1).unwrap_or_default().to_owned();
    // The path of an unknown key already ends with it; that of a missing one does not.
    let with_key = |name: &str| match segments.last() {
        Some(last) if *last == name => (path.to_owned(), segments[..segments.len() - 1].join(".")),
        _ if path.is_empty() => (name.to_owned(), String::new()),
        _ => (format!("{path}.{name}"), path.to_owned()),
    };
    let (field, problem, expected_form) = if message.starts_with("missing field") {
        let (field, _) = with_key(&quoted(message));
        (
            field.clone(),
            "missing".to_owned(),
            expected(&field).to_owned(),
        )
    } else if message.starts_with("unknown field") {
        let (field, table) = with_key(&quoted(message));
        (field, "unknown field".to_owned(), fields_in(&table))
    } else {
        // "invalid type: string \"x\", expected u16" -> keep the first half.
        let problem = message
            .split(", expected")
            .next()
            .unwrap_or(message)
            .trim()
            .to_owned();
        (path.to_owned(), problem, expected(path).to_owned())
    };
    ConfigError {
        file: file.to_owned(),
        field,
        line,
        problem,
        expected: expected_form,
    }
}

/// The line of `key = ...` inside `[table]`, for checks made after parsing.
fn find_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let header = format!("[{table}]");
    let mut in_table = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line.starts_with(&header);
        } else if in_table && line.split('=').next().map(str::trim) == Some(key) {
            return Some(n + 1);
        }
    }
    None
}
