use super::*;

const GOOD: &str = r#"
name = "Example device"
implements = ["telemetry", "c2d"]

[emulated]
command = ["node", "app.js", "{provisioning}", "{state}"]

[events]
command_applied = '^command applied mid=(?P<mid>\S+)'
connection_failed = '^connection failed'

[faults]
offered = ["debug-listener"]
args = ["--fault", "{fault}"]
"#;

fn parse(text: &str) -> Result<DutFile, String> {
    DutFile::parse(text, Path::new("devs/dut.toml")).map_err(|e| e.to_string())
}

#[test]
fn a_good_file_parses() {
    let d = parse(GOOD).unwrap();
    assert_eq!(d.name, "Example device");
    assert!(d.implements(ContractPart::C2d) && !d.implements(ContractPart::Ota));
    let re = d.event(EventName::CommandApplied).unwrap();
    let caps = re.captures("command applied mid=m-7 body=x").unwrap();
    assert_eq!(&caps["mid"], "m-7");
    assert!(d.event(EventName::Boot).is_none());
    assert_eq!(d.connack_timeout_s, None);
    assert_eq!(d.dir(), Path::new("devs"));
    assert!(d.check_fault("debug-listener").is_ok());
    let e = d.check_fault("no-such").unwrap_err();
    assert!(e.contains("no-such") && e.contains("debug-listener"), "{e}");
}

#[test]
fn each_bad_field_is_one_error_with_file_line_and_field() {
    let cases: &[(String, &str, &str, usize)] = &[
        (
            GOOD.replace("\"c2d\"", "\"c2d\", \"telepathy\""),
            "implements",
            "est-rotation",
            3,
        ),
        (
            GOOD.replace("connection_failed =", "connection_lost ="),
            "events.connection_lost",
            "command_applied",
            10,
        ),
        (
            GOOD.replace("'^connection failed'", "'^connection (failed'"),
            "events.connection_failed",
            "regular expression",
            10,
        ),
        (
            GOOD.replace("(?P<mid>\\S+)", "(\\S+)"),
            "events.command_applied",
            "mid",
            9,
        ),
        (
            GOOD.replace("{state}", "{flash}"),
            "emulated.command",
            "{flash}",
            6,
        ),
        (
            GOOD.replace("[\"--fault\", \"{fault}\"]", "[\"--fault\"]"),
            "faults.args",
            "{fault}",
            14,
        ),
        (GOOD.replace("name = ", "title = "), "title", "unknown", 2),
        (
            GOOD.replace("[emulated]", "connack_timeout_s = 0\n[emulated]"),
            "connack_timeout_s",
            "1 to 300",
            5,
        ),
    ];
    for (text, field, mention, line) in cases {
        let e = parse(text).unwrap_err();
        assert!(
            e.starts_with(&format!("devs/dut.toml:{line}: `{field}`")),
            "{field}: {e}"
        );
        assert!(e.contains(mention), "{field}: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let declared =
        parse(&GOOD.replace("[emulated]", "connack_timeout_s = 30\n[emulated]")).unwrap();
    assert_eq!(declared.connack_timeout_s, Some(30));
    let missing = parse("name = \"x\"\n").unwrap_err();
    assert!(missing.contains("`implements`: missing"), "{missing}");
}

#[test]
fn placeholders_expand_and_relative_paths_anchor_at_the_file() {
    let d = parse(&format!(
        "{GOOD}\n[image]\npayload = \"fw.bin\"\nsigning_key = \"keys/k.pem\"\n"
    ))
    .unwrap();
    let image = d.image.unwrap();
    assert_eq!(image.payload, "devs/fw.bin");
    assert_eq!(image.signing_key, Path::new("devs/keys/k.pem"));
    let p = Placeholders {
        provisioning: "/p".into(),
        state: "/s".into(),
        device_id: "dut-1".into(),
        hub_host: "hub1.sacbench.test".into(),
        sacbench_bin: "/bin".into(),
        dut_dir: "/d".into(),
        tap: None,
    };
    assert_eq!(
        p.expand("{sacbench_bin}/x --p {provisioning} {state}/f {device_id}@{hub_host} {dut_dir}"),
        "/bin/x --p /p /s/f dut-1@hub1.sacbench.test /d"
    );
    let tap = Placeholders {
        tap: Some(TapPlaceholders {
            bridge: "br0".into(),
            ipv4_cidr: "10.200.3.2/30".into(),
            ipv4_gateway: "10.200.3.1".into(),
            ntp_server: "10.200.3.1:123".into(),
            dns_server: "10.200.3.1".into(),
            mac: "02:00:0a:c8:03:02".into(),
        }),
        ..p
    };
    assert_eq!(
        tap.expand(
            "--bridge {bridge} --ip {ipv4_cidr} --gw {ipv4_gateway} --sntp {ntp_server} --dns {dns_server} {state} --mac {mac}"
        ),
        "--bridge br0 --ip 10.200.3.2/30 --gw 10.200.3.1 --sntp 10.200.3.1:123 --dns 10.200.3.1 /s --mac 02:00:0a:c8:03:02"
    );
}

#[test]
fn a_board_on_a_tap_gets_the_link_and_addresses_and_no_other_board_does() {
    let tap_command = r#"command = ["qemu-board", "--ip", "{ipv4_cidr}", "--bridge", "{bridge}", "--gw", "{ipv4_gateway}", "--sntp", "{ntp_server}", "--dns", "{dns_server}", "--mac", "{mac}"]"#;
    let on_tap = GOOD.replace(
        r#"command = ["node", "app.js", "{provisioning}", "{state}"]"#,
        &format!("network = \"tap\"\n{tap_command}"),
    );
    let d = parse(&on_tap).unwrap();
    assert_eq!(d.emulated.unwrap().network, BoardNetwork::Tap);
    assert_eq!(
        parse(GOOD).unwrap().emulated.unwrap().network,
        BoardNetwork::Namespace
    );
    // Without `network = "tap"` the board has no link of its own to name.
    let e = parse(&on_tap.replace("network = \"tap\"\n", "")).unwrap_err();
    assert!(
        e.starts_with("devs/dut.toml:6: `emulated.command`: {bridge} is only for a board with network = \"tap\""),
        "{e}"
    );
    // Every placeholder of a tap board, each on its own.
    for p in TAP_PLACEHOLDERS {
        let alone = GOOD.replace("\"{state}\"]", &format!("\"{p}\"]"));
        let e = parse(&alone).unwrap_err();
        assert!(
            e.contains(&format!("{p} is only for a board with network")),
            "{e}"
        );
    }
    assert!(TAP_PLACEHOLDERS
        .iter()
        .all(|p| COMMAND_PLACEHOLDERS.contains(p)));
    let e = parse(&on_tap.replace("\"tap\"", "\"slirp\"")).unwrap_err();
    assert!(
        e.starts_with("devs/dut.toml:6: `emulated.network`: unknown network \"slirp\""),
        "{e}"
    );
    assert!(e.contains("\"namespace\""), "{e}");
    // An EUI-64 link-local address only where the board brings its stack.
    let eui = on_tap.replace(
        "network = \"tap\"",
        "network = \"tap\"\nipv6_link_local = \"eui64\"",
    );
    assert!(parse(&eui).unwrap().emulated.unwrap().ipv6_link_local_eui64);
    assert!(
        !parse(&on_tap)
            .unwrap()
            .emulated
            .unwrap()
            .ipv6_link_local_eui64
    );
    let e =
        parse(&GOOD.replace("[emulated]", "[emulated]\nipv6_link_local = \"eui64\"")).unwrap_err();
    assert!(
        e.contains(
            "`emulated.ipv6_link_local`: \"eui64\" is only for a board with network = \"tap\""
        ),
        "{e}"
    );
    let e = parse(&eui.replace("\"eui64\"", "\"slaac\"")).unwrap_err();
    assert!(
        e.contains("`emulated.ipv6_link_local`: unknown \"slaac\""),
        "{e}"
    );
}

#[test]
fn a_build_command_expands_the_folder_and_names_a_bad_placeholder() {
    let with = |build: &str| GOOD.replace("[emulated]", &format!("[emulated]\nbuild = {build}"));
    let d = parse(&with(r#"["make", "-C", "{dut_dir}/fw", "{sacbench_bin}"]"#)).unwrap();
    assert_eq!(
        d.build_argv(Path::new("/bin")).unwrap(),
        ["make", "-C", "devs/fw", "/bin"]
    );
    assert!(parse(GOOD).unwrap().build_argv(Path::new("/bin")).is_none());
    let e = parse(&with(r#"["make", "{state}"]"#)).unwrap_err();
    assert!(
        e.starts_with("devs/dut.toml:6: `emulated.build`: unknown placeholder {state}"),
        "{e}"
    );
    let e = parse(&with("[]")).unwrap_err();
    assert!(e.contains("`emulated.build`: no program"), "{e}");
}

#[test]
fn the_field_table_documents_every_key_the_parser_takes() {
    for (field, _) in DUT_FIELDS {
        assert_ne!(expected_in(DUT_FIELDS, field), "no such field");
    }
    assert!(expected_in(DUT_FIELDS, "implements").contains("est-rotation"));
}

#[test]
fn the_rtt_key_names_a_gdb_socket_under_state_and_the_ram() {
    let with = |rtt: &str| GOOD.replace("[emulated]", &format!("[emulated]\nrtt = {rtt}"));
    let d = parse(&with(
        r#"{ gdb = "{state}/gdb.sock", ram = [0x2000_0000, 0x1_0000] }"#,
    ))
    .unwrap();
    assert_eq!(
        d.emulated.unwrap().rtt,
        Some(RttGdb {
            gdb: "{state}/gdb.sock".into(),
            ram: Ram {
                start: 0x2000_0000,
                size: 0x1_0000
            }
        })
    );
    assert_eq!(parse(GOOD).unwrap().emulated.unwrap().rtt, None);
    for (rtt, says) in [
        (
            r#"{ gdb = "/tmp/gdb.sock", ram = [0, 4096] }"#,
            "not under {state}",
        ),
        (
            r#"{ gdb = "{state}/{mac}.sock", ram = [0, 4096] }"#,
            "unknown placeholder {mac}",
        ),
        (
            r#"{ gdb = "{state}/gdb.sock", ram = [0, 16] }"#,
            "ram size 0x10",
        ),
        (
            r#"{ gdb = "{state}/gdb.sock", ram = [0, 0x1000_0000] }"#,
            "ram size",
        ),
        (
            r#"{ gdb = "{state}/gdb.sock", ram = [0xffff_f000, 0x2000] }"#,
            "32-bit",
        ),
    ] {
        let e = parse(&with(rtt)).unwrap_err();
        assert!(
            e.starts_with("devs/dut.toml:6: `emulated.rtt`: ") && e.contains(says),
            "{rtt}: {e}"
        );
    }
    // Serde's own checks name the field too.
    let e = parse(&with(r#"{ gdb = "{state}/gdb.sock" }"#)).unwrap_err();
    assert!(e.contains("emulated.rtt") && e.contains("ram"), "{e}");
    let e = parse(&with(r#"{ gdb = "{state}/g", ram = [1], x = 1 }"#)).unwrap_err();
    assert!(e.contains("emulated.rtt"), "{e}");
}
