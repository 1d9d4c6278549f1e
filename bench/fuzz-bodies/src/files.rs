//! The files people write for the bench: the lab rig file (`rig.toml`), the
//! DUT file and the field gateway's mapping file. Each parser is pure
//! (`parse(text, path)`); errors name the file, the line and the field.

use std::path::Path;

use field_gateway::mapping::Mapping;
use field_gateway::translate;
use sacbench_rig::dut::{DutFile, EventName};
use sacbench_rig::lab::{ConfigError, RigConfig};

/// The input as text: invalid UTF-8 becomes U+FFFD, so every input is a
/// file (the loaders read files with `read_to_string`, which would refuse
/// it before the parser; the parser must cope with any text).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn lines(text: &str) -> usize {
    text.matches('\n').count() + 1
}

/// A bench config error names the file and, if it has one, a line that
/// exists; it prints.
fn check_config_error(e: &ConfigError, file: &Path, text: &str) {
    assert_eq!(e.file, file);
    if let Some(line) = e.line {
        assert!(
            (1..=lines(text)).contains(&line),
            "error at line {line} of a {}-line file: {e}",
            lines(text)
        );
    }
    assert!(!e.problem.is_empty());
    assert!(!e.to_string().is_empty());
}

/// The lab rig file parser (`RigConfig::parse`: TOML, the fields table,
/// relays, console, probe, commands and their placeholders).
///
/// Input: the file's bytes (lossy UTF-8).
///
/// Asserts: no panic; an error names the file and an existing line; an
/// accepted file reports capabilities and expands its command placeholders.
pub fn rig_file(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/rigs/lab/rig.toml");
    match RigConfig::parse(&text, file) {
        Ok(rig) => {
            assert_eq!(rig.file, file);
            let _ = rig.capabilities();
            for c in [&rig.flasher, &rig.provisioning].into_iter().flatten() {
                assert!(!c.command.is_empty());
                let argv = c.argv("{image}", Path::new("/tmp/image.bin"));
                assert_eq!(argv.len(), c.command.len());
            }
        }
        Err(e) => check_config_error(&e, file, &text),
    }
}

/// The DUT file parser (`DutFile::parse`: contract parts, `[emulated]`
/// command placeholders, `[events]` regular expressions with their required
/// named groups, `[faults]`, `[image]`).
///
/// Input: the file's bytes (lossy UTF-8).
///
/// Asserts: no panic; an error names the file and an existing line; in an
/// accepted file every event's pattern has the named groups the event needs
/// and runs on a console line, and every offered fault checks.
pub fn dut_file(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/duts/board/dut.toml");
    match DutFile::parse(&text, file) {
        Ok(dut) => {
            assert_eq!(dut.file, file);
            for name in EventName::ALL {
                let Some(re) = dut.event(*name) else { continue };
                for group in name.required_groups() {
                    assert!(
                        re.capture_names().flatten().any(|n| n == *group),
                        "event {name} accepted without the group {group}"
                    );
                }
                let _ = re.captures("boot: version=1.2.3+4 action=test mid=m1 offset=0");
            }
            for fault in &dut.faults.offered {
                assert!(
                    dut.check_fault(fault).is_ok(),
                    "offered fault {fault} refused"
                );
            }
            let _ = dut.check_fault("not-a-fault");
            if let Some(e) = &dut.emulated {
                assert!(!e.command.is_empty());
            }
        }
        Err(e) => check_config_error(&e, file, &text),
    }
}

/// The field gateway's mapping file parser (`Mapping::parse`: leaves, TCP
/// or RTU endpoints, telemetry points, commands with ranges), and the
/// translation of commands it accepts.
///
/// Input: the file's bytes (lossy UTF-8).
///
/// Asserts: no panic; an error names the file and an existing line; in an
/// accepted mapping every command's `min` and `max` are written (as the
/// parser promises: the whole range fits the register), a value past the
/// range is refused, and every telemetry point decodes its registers.
pub fn gateway_mapping(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/etc/gateway/mapping.toml");
    match Mapping::parse(&text, file) {
        Ok(mapping) => {
            assert_eq!(mapping.file, file);
            assert!(!mapping.leaves.is_empty());
            for leaf in &mapping.leaves {
                for c in &leaf.commands {
                    for value in [c.min, c.max] {
                        let payload =
                            serde_json::json!({"command": c.name, "value": value}).to_string();
                        // serde_json's float parsing may be 1 ULP off; only
                        // an exact bound is promised.
                        let sent: serde_json::Value =
                            serde_json::from_str(&payload).expect("our own JSON");
                        if sent["value"].as_f64() != Some(value) {
                            continue;
                        }
                        let write = translate::decide(leaf, payload.as_bytes(), false)
                            .unwrap_or_else(|r| {
                                panic!("{} = {value} (in range) refused: {r:?}", c.name)
                            });
                        assert_eq!(write.register, c.register);
                        assert_eq!(write.words.len(), usize::from(c.value_type.words()));
                    }
                    let above = c.max + c.max.abs().max(1.0);
                    if above.is_finite() && above > c.max {
                        let payload =
                            serde_json::json!({"command": c.name, "value": above}).to_string();
                        assert!(
                            translate::decide(leaf, payload.as_bytes(), false).is_err(),
                            "{} = {above} (past the range) written",
                            c.name
                        );
                    }
                }
                for t in &leaf.telemetry {
                    let words = [0x1234, 0xfedc];
                    assert!(translate::point_value(t, &words).is_some());
                }
            }
        }
        Err(e) => {
            assert_eq!(e.file, file);
            if let Some(line) = e.line {
                assert!(
                    (1..=lines(&text)).contains(&line),
                    "error at line {line}: {e}"
                );
            }
            assert!(!e.to_string().is_empty());
        }
    }
}
