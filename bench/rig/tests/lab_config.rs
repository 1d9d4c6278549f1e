//! rig.toml: the complete example parses to what it says, and every kind of
//! mistake is one error naming the file, the dotted field, the line and the
//! expected form.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use sacbench_rig::lab::{ConfigError, ModbusEndpoint, RigConfig, WireProtocol, FIELDS};

/// The example the README shows; kept here so it is proven to parse.
const EXAMPLE: &str = r#"# rig.toml: one lab rig, a board on a debug probe, its console, a Modbus relay.
name = "nrf52840-dk #1"

[probe]
selector = "1366:1015:000683512345"   # VID:PID[:serial], hex, as `probe-rs list` shows
chip = "nRF52840_xxAA"                # probe-rs chip name
protocol = "swd"                      # optional: "swd" or "jtag"
speed_khz = 4000                      # optional

[image]
path = "images/device.signed.bin"     # relative to this file: ELF or MCUboot-signed image
slot_address = 0x0000C000             # primary boot slot, where signed images are written
signing_key = "keys/ota-signing.pem"  # optional: lets the OTA cases sign new images of it

[console]
port = "/dev/ttyACM0"
baud = 115200

[power]
tcp = "192.0.2.10:502"                # Modbus TCP relay; or rtu = "/dev/ttyUSB0" with baud = 9600
unit = 1                              # Modbus unit id
coil = 0                              # 0-based coil address, as on the wire
on_value = true                       # the coil value that powers the DUT
timeout_ms = 2000                     # optional: how long the relay may take to answer

[link]                                # optional: a coil on the same relay in the DUT's Ethernet
coil = 1
up_value = true                       # the coil value that connects the link

[capture]
interface = "enp3s0"                  # the bench NIC wired to the DUT

[dut]
ipv4 = "192.0.2.20"
ipv6_link_local = "fe80::1%enp3s0"    # the %interface defaults to capture.interface

[hub]                                 # where the suites' fixture hub listens
ipv4 = "192.0.2.1"                    # the bench's address on the DUT's network (8883, 443)
host_name = "hub.sacbench.test"       # optional: the name the DUT is provisioned with (SNI)

[provisioning]                        # gives the DUT each case's identity, DUT powered off
command = ["./provision.sh", "{provisioning}"]   # {provisioning}: the provisioning directory
"#;

/// The README's rig on a labgrid place: the place gives console, power and link.
const LABGRID_EXAMPLE: &str = r#"name = "farm nrf52840"

[labgrid]
coordinator = "labgrid.lab:20408"     # the coordinator's gRPC address
place = "nrf52840-3"                  # or tags = { board = "nrf52840" }: any place with them
timeout_s = 600                       # optional: how long to wait while others hold it

[capture]
interface = "enp3s0"

[dut]
ipv4 = "192.0.2.20"

[hub]
ipv4 = "192.0.2.1"

[provisioning]
command = ["./provision.sh", "{provisioning}"]
"#;

fn file() -> PathBuf {
    PathBuf::from("/lab/rigs/rig.toml")
}

#[test]
fn a_labgrid_place_instead_of_hardware() {
    use sacbench_rig::lab::labgrid::PlaceSelector;
    let c = RigConfig::parse(LABGRID_EXAMPLE, &file()).expect("labgrid example parses");
    let lg = c.labgrid.clone().unwrap();
    assert_eq!(lg.coordinator, "labgrid.lab:20408");
    assert_eq!(lg.selector, PlaceSelector::Name("nrf52840-3".into()));
    assert_eq!(lg.timeout_s, 600);
    // Nothing of the hardware until the place is acquired.
    assert!(c.console.is_none() && c.power.is_none() && c.link.is_none());
    let tags = LABGRID_EXAMPLE.replace(
        "place = \"nrf52840-3\"",
        "tags = { board = \"nrf52840\", lab = \"2\" }",
    );
    let c = RigConfig::parse(&tags.replace("timeout_s = 600", ""), &file()).unwrap();
    let lg = c.labgrid.unwrap();
    let PlaceSelector::Tags(t) = lg.selector else {
        panic!("tags")
    };
    assert_eq!(t.len(), 2);
    assert_eq!(lg.timeout_s, sacbench_rig::lab::DEFAULT_LABGRID_TIMEOUT_S);
    let v6 = LABGRID_EXAMPLE.replace("labgrid.lab:20408", "[fd00::5]:20408");
    assert_eq!(
        RigConfig::parse(&v6, &file())
            .unwrap()
            .labgrid
            .unwrap()
            .coordinator,
        "[fd00::5]:20408"
    );
    // The place and its resolved resources: the rig file with them in place of [labgrid].
    let resolved = sacbench_rig::lab::labgrid::Resolved {
        console: Some(sacbench_rig::lab::ConsoleConfig {
            port: "rfc2217://127.0.0.1:4000".into(),
            baud: 115_200.try_into().unwrap(),
        }),
        ..Default::default()
    };
    let on = RigConfig::parse(LABGRID_EXAMPLE, &file())
        .unwrap()
        .on_place(&resolved, "labgrid exporter e (place p on c)".into())
        .unwrap();
    assert_eq!(
        on.provider.as_deref(),
        Some("labgrid exporter e (place p on c)")
    );
    assert!(on.labgrid.is_none());
    assert_eq!(
        on.capabilities(),
        [
            sacbench_rig::Capability::Console,
            sacbench_rig::Capability::Capture
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn the_places_network_service_is_the_duts_address() {
    use sacbench_rig::lab::labgrid::Resolved;
    let place = |addr: Option<&str>| Resolved {
        dut_address: addr.map(str::to_owned),
        ..Resolved::default()
    };
    let by = || "labgrid exporter e (place p on c)".to_owned();
    let with_dut = RigConfig::parse(LABGRID_EXAMPLE, &file()).unwrap();
    // The same address in both: fine. Another: refused, naming both.
    let on = with_dut.on_place(&place(Some("192.0.2.20")), by()).unwrap();
    assert_eq!(on.dut.ipv4, Some(Ipv4Addr::new(192, 0, 2, 20)));
    let e = with_dut
        .on_place(&place(Some("192.0.2.99")), by())
        .unwrap_err();
    assert!(
        e.contains("dut.ipv4 192.0.2.20 is not the place's NetworkService address 192.0.2.99"),
        "{e}"
    );
    // No [dut] in the rig file: the place's address is the DUT's; without one, no address.
    let bare = RigConfig::parse(
        &LABGRID_EXAMPLE.replace("[dut]\nipv4 = \"192.0.2.20\"\n", ""),
        &file(),
    )
    .unwrap();
    assert_eq!(bare.dut.ipv4, None);
    let on = bare.on_place(&place(Some("192.0.2.30")), by()).unwrap();
    assert_eq!(on.dut.ipv4, Some(Ipv4Addr::new(192, 0, 2, 30)));
    assert!(bare
        .on_place(&place(None), by())
        .unwrap_err()
        .contains("no DUT address"));
    assert!(bare
        .on_place(&place(Some("dut.lab")), by())
        .unwrap_err()
        .contains("\"dut.lab\" is not an IPv4 address"));
}

#[test]
fn labgrid_mistakes_name_the_field() {
    let text = LABGRID_EXAMPLE.replace(
        "timeout_s = 600",
        "timeout_s = 600\ntags = { board = \"x\" }",
    );
    check(
        &text,
        "labgrid.tags",
        "tags = { board = \"x\"",
        "both labgrid.place and labgrid.tags",
    );
    let text = LABGRID_EXAMPLE.replace("place = \"nrf52840-3\"", "");
    check(&text, "labgrid.place", "[labgrid]", "missing");
    let text = LABGRID_EXAMPLE.replace("labgrid.lab:20408", "labgrid.lab");
    check(
        &text,
        "labgrid.coordinator",
        "coordinator = ",
        "has no port",
    );
    let text = LABGRID_EXAMPLE.replace("timeout_s = 600", "timeout_s = 0");
    check(&text, "labgrid.timeout_s", "timeout_s = ", "");
    let text = LABGRID_EXAMPLE.replace("timeout_s = 600", "wait = 5");
    check(&text, "labgrid.wait", "wait = ", "unknown");
    // The place provides the console, power and link: not both.
    let text = format!("{LABGRID_EXAMPLE}\n[console]\nport = \"/dev/ttyACM0\"\nbaud = 115200\n");
    check(
        &text,
        "labgrid",
        "[console]",
        "both [labgrid] and [console]",
    );
}

#[test]
fn the_complete_example_parses_to_what_it_says() {
    let c = RigConfig::parse(EXAMPLE, &file()).expect("example parses");
    assert_eq!(c.name.as_deref(), Some("nrf52840-dk #1"));
    let probe = c.probe.expect("probe");
    assert_eq!(
        (probe.selector.vendor_id, probe.selector.product_id),
        (0x1366, 0x1015)
    );
    assert_eq!(probe.selector.serial.as_deref(), Some("000683512345"));
    assert_eq!(probe.selector.to_string(), "1366:1015:000683512345");
    assert_eq!(probe.chip, "nRF52840_xxAA");
    assert_eq!(probe.protocol, Some(WireProtocol::Swd));
    assert_eq!(probe.speed_khz.map(|s| s.get()), Some(4000));
    let image = c.image.expect("image");
    assert_eq!(
        image.path,
        Path::new("/lab/rigs/images/device.signed.bin"),
        "relative to the rig file"
    );
    assert_eq!(image.slot_address, Some(0xC000));
    assert_eq!(
        image.signing_key.as_deref(),
        Some(Path::new("/lab/rigs/keys/ota-signing.pem"))
    );
    let console = c.console.expect("console");
    assert_eq!(
        (console.port.as_str(), console.baud.get()),
        ("/dev/ttyACM0", 115_200)
    );
    let power = c.power.expect("power");
    assert_eq!(
        power.relay,
        ModbusEndpoint::Tcp {
            host: "192.0.2.10".into(),
            port: 502
        }
    );
    assert_eq!(
        (power.unit, power.coil, power.on_value, power.timeout_ms),
        (1, 0, true, 2000)
    );
    let link = c.link.expect("link");
    assert_eq!((link.coil, link.up_value), (1, true));
    assert_eq!(c.capture.expect("capture").interface, "enp3s0");
    assert_eq!(c.dut.ipv4, Some(Ipv4Addr::new(192, 0, 2, 20)));
    assert_eq!(
        c.dut.ipv6_link_local,
        Some(("fe80::1".parse::<Ipv6Addr>().unwrap(), "enp3s0".into()))
    );
    let hub = c.hub.expect("hub");
    assert_eq!(
        (hub.ipv4, hub.host_name.as_str()),
        (Ipv4Addr::new(192, 0, 2, 1), "hub.sacbench.test")
    );
    let record = c
        .provisioning
        .expect("provisioning")
        .argv("{provisioning}", Path::new("/tmp/r.toml"));
    assert_eq!(record, ["./provision.sh", "/tmp/r.toml"]);
    assert!(c.flasher.is_none());
}

#[test]
fn flasher_and_provisioning_commands() {
    // A [flasher] flashes instead of a [probe]; not both.
    let text = "[image]
path = \"a.bin\"
[flasher]
command = [\"west\", \"flash\", \"--bin-file\", \"{image}\"]
[dut]
ipv4 = \"192.0.2.20\"
";
    let c = RigConfig::parse(text, &file()).expect("parses");
    assert_eq!(
        c.flasher.unwrap().argv("{image}", Path::new("/i.bin")),
        ["west", "flash", "--bin-file", "/i.bin"]
    );
    let text = edit(
        "[console]",
        Some("[flasher]\ncommand = [\"f\", \"{image}\"]\n[console]"),
    );
    check(
        &text,
        "flasher",
        "command = [\"f\"",
        "both [probe] and [flasher]",
    );
    // Each command needs its program and its placeholder.
    let text = edit("command = ", Some("command = [\"./provision.sh\"]"));
    check(
        &text,
        "provisioning.command",
        "command = ",
        "{provisioning}",
    );
    let text = edit("command = ", Some("command = []"));
    check(&text, "provisioning.command", "command = ", "no program");
    let text = edit(
        "command = ",
        Some("command = \"./provision.sh {provisioning}\""),
    );
    check(&text, "provisioning.command", "command = ", "invalid type");
    // The hub's address is an IPv4 address.
    let text = edit("ipv4 = \"192.0.2.1\"", Some("ipv4 = \"hub.local\""));
    check(&text, "hub.ipv4", "ipv4 = \"hub.local\"", "invalid IPv4");
}

#[test]
fn a_minimal_rtu_rig_takes_defaults() {
    let text = "[power]\nrtu = \"/dev/ttyUSB0\"\nbaud = 9600\nunit = 3\ncoil = 7\n\n\
                [capture]\ninterface = \"eth1\"\n\n[dut]\nipv6_link_local = \"fe80::2\"\n";
    let c = RigConfig::parse(text, &file()).expect("parses");
    let power = c.power.expect("power");
    assert_eq!(
        power.relay,
        ModbusEndpoint::Rtu {
            port: "/dev/ttyUSB0".into(),
            baud: 9600.try_into().unwrap()
        }
    );
    assert!(
        power.on_value,
        "on_value defaults to true (normally-open contact)"
    );
    assert_eq!(
        power.timeout_ms,
        sacbench_rig::lab::DEFAULT_RELAY_TIMEOUT_MS
    );
    assert_eq!(
        c.dut.ipv6_link_local.map(|(_, i)| i).as_deref(),
        Some("eth1"),
        "scope from [capture]"
    );
    assert!(c.probe.is_none() && c.console.is_none() && c.link.is_none() && c.image.is_none());
}

/// The example with the line containing `find` replaced (`None` deletes it).
fn edit(find: &str, with: Option<&str>) -> String {
    let mut hit = false;
    let out: Vec<String> = EXAMPLE
        .lines()
        .filter_map(|l| {
            if !hit && l.contains(find) {
                hit = true;
                with.map(str::to_owned)
            } else {
                Some(l.to_owned())
            }
        })
        .collect();
    assert!(hit, "test bug: {find:?} is not in the example");
    out.join("\n") + "\n"
}

/// 1-based line of the first line containing `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

fn parse_err(text: &str) -> ConfigError {
    match RigConfig::parse(text, &file()) {
        Ok(c) => panic!("accepted a bad rig file:\n{text}\n=> {c:?}"),
        Err(e) => e,
    }
}

/// One error: the right field and line, and a message that names file, field and form.
fn check(text: &str, field: &str, line_needle: &str, problem: &str) {
    let e = parse_err(text);
    let shown = e.to_string();
    assert_eq!(e.field, field, "{shown}");
    assert_eq!(e.line, Some(line_of(text, line_needle)), "{shown}");
    assert!(
        e.problem.contains(problem),
        "problem {problem:?} not in: {shown}"
    );
    assert!(
        shown.starts_with(&format!(
            "/lab/rigs/rig.toml:{}: ",
            line_of(text, line_needle)
        )),
        "{shown}"
    );
    if !field.is_empty() {
        assert!(shown.contains(&format!("`{field}`")), "{shown}");
    }
    assert!(shown.contains("; expected "), "{shown}");
    if let Some((_, form)) = FIELDS.iter().find(|(f, _)| *f == field) {
        if !problem.contains("unknown") {
            assert!(
                shown.ends_with(form),
                "expected form of {field} missing: {shown}"
            );
        }
    }
}

#[test]
fn wrong_types_and_values_name_the_field_and_its_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("coil = 0 ", "coil = \"zero\"", "power.coil", "invalid type"),
        ("coil = 0 ", "coil = 70000", "power.coil", "70000"),
        ("coil = 0 ", "coil = -1", "power.coil", "-1"),
        ("unit = 1", "unit = 0", "power.unit", "broadcast"),
        ("unit = 1", "unit = 256", "power.unit", "256"),
        (
            "on_value",
            "on_value = \"yes\"",
            "power.on_value",
            "invalid type",
        ),
        ("timeout_ms", "timeout_ms = 0", "power.timeout_ms", "0"),
        (
            "selector",
            "selector = \"1366\"",
            "probe.selector",
            "no ':'",
        ),
        (
            "selector",
            "selector = \"zz:1015\"",
            "probe.selector",
            "not hex",
        ),
        (
            "selector",
            "selector = \"1366:10150\"",
            "probe.selector",
            "1 to 4 hex digits",
        ),
        (
            "selector",
            "selector = \"1366:1015:\"",
            "probe.selector",
            "empty serial",
        ),
        (
            "selector",
            "selector = 0x1366",
            "probe.selector",
            "invalid type",
        ),
        ("protocol", "protocol = \"spi\"", "probe.protocol", "spi"),
        ("speed_khz", "speed_khz = 0", "probe.speed_khz", "0"),
        (
            "slot_address",
            "slot_address = -4096",
            "image.slot_address",
            "-4096",
        ),
        ("baud = 115200", "baud = 0", "console.baud", "0"),
        (
            "baud = 115200",
            "baud = \"fast\"",
            "console.baud",
            "invalid type",
        ),
        ("tcp = ", "tcp = \"192.0.2.10\"", "power.tcp", "no port"),
        (
            "tcp = ",
            "tcp = \"192.0.2.10:0\"",
            "power.tcp",
            "not 1..=65535",
        ),
        ("tcp = ", "tcp = \":502\"", "power.tcp", "no host"),
        ("tcp = ", "tcp = \"::1:502\"", "power.tcp", "[addr]:port"),
        ("up_value", "up_value = 1", "link.up_value", "invalid type"),
        (
            "interface = ",
            "interface = [\"enp3s0\"]",
            "capture.interface",
            "invalid type",
        ),
        ("ipv4", "ipv4 = \"300.1.1.1\"", "dut.ipv4", "invalid"),
        (
            "ipv6_link_local",
            "ipv6_link_local = \"2001:db8::1%enp3s0\"",
            "dut.ipv6_link_local",
            "not link-local",
        ),
        (
            "ipv6_link_local",
            "ipv6_link_local = \"fe80::zz\"",
            "dut.ipv6_link_local",
            "not an IPv6",
        ),
        (
            "ipv6_link_local",
            "ipv6_link_local = \"fe80::1%\"",
            "dut.ipv6_link_local",
            "empty interface",
        ),
        ("name = ", "name = 5", "name", "invalid type"),
    ];
    for (find, with, field, problem) in cases {
        let text = edit(find, Some(with));
        check(&text, field, with, problem);
    }
}

#[test]
fn unknown_fields_and_sections_are_errors_listing_what_is_allowed() {
    let text = edit("on_value", Some("on_valeu = true"));
    check(&text, "power.on_valeu", "on_valeu", "unknown field");
    let e = parse_err(&text).to_string();
    assert!(
        e.contains("on_value") && e.contains("timeout_ms"),
        "lists the power fields: {e}"
    );

    let text = edit("[capture]", Some("[captrue]"));
    check(&text, "captrue", "[captrue]", "unknown field");
    let e = parse_err(&text).to_string();
    assert!(
        e.contains("probe, image, console, power, link, capture, dut"),
        "lists the sections: {e}"
    );

    let text = edit("chip = ", Some("chip = \"nRF52840_xxAA\"\nspeed = 4000"));
    check(&text, "probe.speed", "speed = 4000", "unknown field");
}

#[test]
fn missing_fields_name_the_field_itself() {
    for (find, field, anchor) in [
        ("coil = 0 ", "power.coil", "[power]"),
        ("unit = 1", "power.unit", "[power]"),
        ("chip = ", "probe.chip", "[probe]"),
        ("selector = ", "probe.selector", "[probe]"),
        ("port = ", "console.port", "[console]"),
        ("baud = 115200", "console.baud", "[console]"),
        ("path = ", "image.path", "[image]"),
        ("interface = ", "capture.interface", "[capture]"),
    ] {
        let text = edit(find, None);
        let e = parse_err(&text);
        assert_eq!(e.field, field, "{e}");
        assert_eq!(e.problem, "missing", "{e}");
        // The line is the table's, since the missing key has none.
        let line = e.line.expect("a line");
        assert!(line >= line_of(&text, anchor), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("`{field}`: missing; expected ")),
            "{e}"
        );
    }
}

#[test]
fn cross_field_rules() {
    // Both relay transports.
    let text = edit(
        "tcp = ",
        Some("tcp = \"192.0.2.10:502\"\nrtu = \"/dev/ttyUSB0\""),
    );
    check(&text, "power.rtu", "rtu = ", "both");
    // Neither.
    let text = edit("tcp = ", None);
    let e = parse_err(&text);
    assert_eq!(e.field, "power.tcp", "{e}");
    assert!(e.problem.contains("power.rtu"), "{e}");
    // RTU without a baud rate, and TCP with one.
    let text = edit("tcp = ", Some("rtu = \"/dev/ttyUSB0\""));
    check(&text, "power.baud", "rtu = ", "missing");
    let text = edit("tcp = ", Some("tcp = \"192.0.2.10:502\"\nbaud = 9600"));
    check(&text, "power.baud", "baud = 9600", "TCP");
    // The link coil is the power coil.
    let text = edit("coil = 1", Some("coil = 0"));
    let e = parse_err(&text);
    assert_eq!(e.field, "link.coil", "{e}");
    // [link] or [image] alone.
    let text = "[link]\ncoil = 1\n[dut]\nipv4 = \"192.0.2.20\"\n";
    let e = parse_err(text);
    assert_eq!((e.field.as_str(), e.line), ("power", Some(1)), "{e}");
    let text = "[image]\npath = \"a.elf\"\n[dut]\nipv4 = \"192.0.2.20\"\n";
    let e = parse_err(text);
    assert_eq!((e.field.as_str(), e.line), ("probe", Some(1)), "{e}");
    // No DUT address, no [dut] at all, no scope for the link-local address.
    let text = "[dut]\n";
    let e = parse_err(text);
    assert_eq!(e.field, "dut", "{e}");
    let e = parse_err("name = \"x\"\n");
    assert_eq!(
        (e.field.as_str(), e.problem.as_str()),
        ("dut", "missing"),
        "{e}"
    );
    let text = "[dut]\nipv6_link_local = \"fe80::1\"\n";
    check(
        text,
        "dut.ipv6_link_local",
        "ipv6_link_local",
        "no %interface",
    );
}

#[test]
fn toml_syntax_errors_give_the_line() {
    let text = edit("coil = 0 ", Some("coil = "));
    let e = parse_err(&text);
    assert_eq!(
        (e.field.as_str(), e.line),
        ("", Some(line_of(&text, "coil = "))),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("/lab/rigs/rig.toml:") && e.problem.contains("TOML"),
        "{e}"
    );
    // A duplicate key is a syntax error too, at the second one.
    let text = edit("unit = 1", Some("unit = 1\nunit = 2"));
    let e = parse_err(&text);
    assert_eq!(e.line, Some(line_of(&text, "unit = 2")), "{e}");
}

#[test]
fn load_resolves_the_image_and_requires_it_to_exist() {
    let dir = tempfile::tempdir().unwrap();
    let rig = dir.path().join("rig.toml");
    std::fs::write(&rig, EXAMPLE).unwrap();
    let e = RigConfig::load(&rig).expect_err("image missing");
    assert_eq!(
        (e.field.as_str(), e.line),
        ("image.path", Some(line_of(EXAMPLE, "path = "))),
        "{e}"
    );
    assert!(e.to_string().contains(&rig.display().to_string()), "{e}");

    std::fs::create_dir(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("images/device.signed.bin"), b"img").unwrap();
    let e = RigConfig::load(&rig).expect_err("signing key missing");
    assert_eq!(
        (e.field.as_str(), e.line),
        (
            "image.signing_key",
            Some(line_of(EXAMPLE, "signing_key = "))
        ),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/ota-signing.pem"), b"key").unwrap();
    let c = RigConfig::load(&rig).expect("loads");
    assert_eq!(
        c.image.unwrap().path,
        dir.path().join("images/device.signed.bin")
    );

    let e = RigConfig::load(&dir.path().join("nope.toml")).expect_err("no file");
    assert!(e.problem.contains("cannot read"), "{e}");
}

#[test]
fn every_field_in_the_table_is_accepted_by_the_parser() {
    // FIELDS documents the format; a field it lists that the parser refused
    // (or the reverse, caught by the unknown-field test) would mislead users.
    for (field, _) in FIELDS {
        let leaf = field.rsplit('.').next().unwrap();
        let in_example = EXAMPLE.lines().chain(LABGRID_EXAMPLE.lines()).any(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{leaf} =")) || l.starts_with(&format!("[{leaf}]"))
        });
        assert!(
            // The alternatives: an RTU relay, a [flasher] instead of the
            // [probe], a place chosen by tags instead of by name.
            in_example || ["rtu", "baud", "flasher", "tags"].contains(&leaf),
            "{field} is not shown in the example"
        );
    }
}
