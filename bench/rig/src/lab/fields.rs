//! What each field of `rig.toml` expects, and the one error a bad field
//! gets: file, dotted field, line and expected form. The forms live in one
//! table ([`FIELDS`]) so messages and documentation cannot drift apart.

use std::fmt;
use std::path::{Path, PathBuf};

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
    (
        "console.port",
        "a serial device path, e.g. \"/dev/ttyACM0\", or an RFC 2217 server \"rfc2217://host:port\" (ser2net)",
    ),
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
        "an array of strings, the program first, one of them containing \"{provisioning}\" (the provisioning directory; the older \"{record}\" means the same), e.g. [\"./provision.sh\", \"{provisioning}\"]",
    ),
    (
        "labgrid",
        "a table [labgrid] with coordinator and place or tags (instead of [console], [power] and [link])",
    ),
    (
        "labgrid.coordinator",
        "the labgrid coordinator's gRPC address \"host:port\", e.g. \"labgrid.lab:20408\"",
    ),
    ("labgrid.place", "the place's name (or alias), e.g. \"nrf52-3\" (not with labgrid.tags)"),
    (
        "labgrid.tags",
        "a table of tags any free place carrying them all will do, e.g. { board = \"nrf52840\" } (not with labgrid.place)",
    ),
    (
        "labgrid.timeout_s",
        "how long to wait for the place while others hold it, in seconds, an integer 1..=4294967295 (default 600)",
    ),
];

/// The form a field of a rig file expects (from [`FIELDS`]).
pub(super) fn expected(field: &str) -> &'static str {
    expected_in(FIELDS, field)
}

/// The form `field` expects in the field table `table` (rig or DUT file).
pub(crate) fn expected_in(table: &[(&str, &'static str)], field: &str) -> &'static str {
    table
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, e)| *e)
        .unwrap_or("no such field")
}

/// The fields directly inside `table` ("" for the top level) of the field
/// table `fields`, for "unknown field" errors.
pub(crate) fn fields_in(fields: &[(&str, &str)], table: &str) -> String {
    let prefix = if table.is_empty() {
        String::new()
    } else {
        format!("{table}.")
    };
    let names: Vec<&str> = fields
        .iter()
        .filter_map(|(f, _)| f.strip_prefix(prefix.as_str()))
        .filter(|rest| !rest.contains('.'))
        .collect();
    format!("one of: {}", names.join(", "))
}

/// One problem in a rig or DUT file: which file, which field, which line, what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The rig or DUT file, as the bench was given it.
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

/// Turn a serde error at `path` into our error: missing and unknown fields name
/// the field itself, and serde's own "expected u16" gives way to the table's form.
fn serde_error(
    fields: &[(&str, &'static str)],
    file: &Path,
    path: &str,
    message: &str,
    line: Option<usize>,
) -> ConfigError {
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
            expected_in(fields, &field).to_owned(),
        )
    } else if message.starts_with("unknown field") {
        let (field, table) = with_key(&quoted(message));
        (field, "unknown field".to_owned(), fields_in(fields, &table))
    } else {
        // "invalid type: string \"x\", expected u16" -> keep the first half.
        let problem = message
            .split(", expected")
            .next()
            .unwrap_or(message)
            .trim()
            .to_owned();
        (
            path.to_owned(),
            problem,
            expected_in(fields, path).to_owned(),
        )
    };
    ConfigError {
        file: file.to_owned(),
        field,
        line,
        problem,
        expected: expected_form,
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> Option<usize> {
    Some(text[..offset.min(text.len())].matches('\n').count() + 1)
}

/// Parses `text` (the file `file`) as `T`: a TOML syntax error or a bad
/// field is one [`ConfigError`] with the line and the field's expected form
/// from `fields`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
    fields: &[(&str, &'static str)],
) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        field: String::new(),
        line: e.span().and_then(|s| line_at(text, s.start)),
        problem: format!("TOML syntax error: {}", e.message().trim_end()),
        expected: "valid TOML (https://toml.io)".into(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let line = e.inner().span().and_then(|s| line_at(text, s.start));
        serde_error(
            fields,
            file,
            &e.path().to_string(),
            e.inner().message(),
            line,
        )
    })
}

/// The line of `key = ...` inside `[table]`, for checks made after parsing.
pub(crate) fn find_line(text: &str, table: &str, key: &str) -> Option<usize> {
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
