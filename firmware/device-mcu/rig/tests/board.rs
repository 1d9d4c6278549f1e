//! Host tests of `devmcu-board` (`src/board.rs`): a provisioning directory
//! as the bench writes it (rcgen certificates, PEM) becomes a record the
//! firmware's own parser (`src/provfmt.rs`) reads back field for field; the
//! unit's seed and time floor are made once and kept; every bad input is an
//! error naming what and where; the image is picked by fault set whatever
//! the order of the faults; the ifup script and QEMU's arguments are what
//! QEMU needs. No root, no QEMU: `cargo test --test board`.
#![allow(clippy::unwrap_used)]

mod common;

use common::ca;
use device_mcu_rig::board::{
    self, ifup_script, image_path, prepare, read_provisioning, RunArgs, BUILD_COMMAND,
    TIME_FLOOR_MARGIN_S,
};
use device_mcu_rig::prov::provfmt;
use device_mcu_rig::{fault_set_name, Error};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const DEVICE_ID: &str = "device-mcu-board-0001";
const NOW: u64 = 1_800_000_000;

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "devmcu-board-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a provisioning directory was written from.
struct Written {
    dir: PathBuf,
    ca_der: Vec<u8>,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A provisioning directory as `sacbench_provisioning::write` makes it:
/// device.json with the keys this board ignores too, device.pem (leaf then
/// the CA: a chain), device.key (PKCS#8 PEM), hub-ca.pem.
fn provisioning_dir(hub_host: &str) -> Written {
    let dir = scratch("prov");
    let ca = ca("board test CA");
    let mut params = CertificateParams::new(vec![DEVICE_ID.to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, DEVICE_ID);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let json = serde_json::json!({
        "device_id": DEVICE_ID,
        "hub_host": hub_host,
        "mqtt_port": 8883,
        "https_port": 8443,
        "api_version": "2021-04-12",
        "est_url": format!("https://{hub_host}/.well-known/est"),
        "firmware_url": format!("https://{hub_host}/firmware/"),
        "faults": [],
        "reconnect_base_ms": 250,
        "some_future_key": {"nested": true},
    });
    std::fs::write(dir.join("device.json"), json.to_string()).unwrap();
    std::fs::write(dir.join("device.pem"), cert.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.join("device.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("hub-ca.pem"), ca.pem()).unwrap();
    Written {
        dir,
        ca_der: ca.der().to_vec(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// A folder with (stand-in) images for every fault set `build` makes.
fn images() -> PathBuf {
    let dir = scratch("images");
    for set in [
        "none",
        "listen-debug",
        "no-server-verify",
        "no-dedupe",
        "listen-debug+no-dedupe",
    ] {
        std::fs::write(dir.join(format!("device-mcu.faults-{set}.signed.bin")), set).unwrap();
    }
    std::fs::write(dir.join("device-mcu-boot"), "boot stage").unwrap();
    dir
}

fn argv(prov: &Path, state: &Path, images: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--provisioning",
        prov.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--ip",
        "10.200.7.2/30",
        "--gateway",
        "10.200.7.1",
        "--sntp",
        "10.200.7.1:123",
        "--dns",
        "10.200.7.1",
        "--bridge",
        "br0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn args(prov: &Path, state: &Path, images: &Path, extra: &[&str]) -> RunArgs {
    RunArgs::parse(argv(prov, state, images, extra)).unwrap()
}

/// `err` names every one of `parts`.
fn names(err: Error, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "{err:?} does not name {part:?}");
    }
    assert!(!err.contains('\n'), "one line: {err:?}");
}

#[test]
fn a_provisioning_directory_becomes_a_record_the_firmware_parses() {
    let w = provisioning_dir("localhost");
    let state = scratch("state");
    let images = images();
    let boot = prepare(&args(&w.dir, &state, &images, &[]), NOW).unwrap();

    let record = std::fs::read(state.join("provisioning.bin")).unwrap();
    let mut region = record.clone();
    region.resize(device_mcu_rig::prov::PROVISION_LEN, 0xff);
    let r = provfmt::parse(&region).unwrap();
    assert_eq!(r.ca, &w.ca_der[..]);
    assert_eq!(r.cert, &w.cert_der[..], "the leaf, not the chain's CA");
    assert_eq!(r.key, &w.key_der[..]);
    assert_eq!(r.device_id, DEVICE_ID);
    assert_eq!(r.hub_name, "localhost");
    assert_eq!(
        r.https_port, 8443,
        "device.json's https_port: where it re-enrols"
    );
    // A v2 record: the hub's name is the board's to look up, at --dns.
    assert_eq!(r.version, provfmt::VERSION);
    assert_eq!(
        r.hub,
        provfmt::Hub::Dns {
            server: [10, 200, 7, 1],
            port: 8883
        }
    );
    assert_eq!(r.sntp, ([10, 200, 7, 1], 123));
    assert_eq!(
        (r.ip, r.prefix, r.gateway),
        ([10, 200, 7, 2], 30, [10, 200, 7, 1])
    );
    assert_eq!(r.time_floor, NOW - TIME_FLOOR_MARGIN_S);
    let seed = std::fs::read(state.join("seed")).unwrap();
    assert_eq!(&r.seed[..], &seed[..]);
    assert_ne!(seed, vec![0u8; 32]);
    assert_eq!(
        std::fs::metadata(state.join("seed"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(boot.summary.contains(DEVICE_ID), "{}", boot.summary);
    assert!(
        boot.summary.contains("1 further certificate"),
        "the chain's CA is said not to be sent: {}",
        boot.summary
    );

    // The next power-on, a day later: the same unit (seed, floor), the
    // same record, rewritten.
    std::fs::remove_file(state.join("provisioning.bin")).unwrap();
    prepare(&args(&w.dir, &state, &images, &[]), NOW + 86_400).unwrap();
    assert_eq!(std::fs::read(state.join("seed")).unwrap(), seed);
    assert_eq!(
        std::fs::read_to_string(state.join("time-floor"))
            .unwrap()
            .trim(),
        (NOW - TIME_FLOOR_MARGIN_S).to_string()
    );
    assert_eq!(
        std::fs::read(state.join("provisioning.bin")).unwrap(),
        record
    );

    // Another unit (its own state) has its own secret.
    let other = scratch("state-other");
    prepare(&args(&w.dir, &other, &images, &[]), NOW).unwrap();
    assert_ne!(std::fs::read(other.join("seed")).unwrap(), seed);
}

#[test]
fn qemu_gets_the_record_the_tap_script_and_the_image() {
    let w = provisioning_dir("localhost");
    let state = scratch("state,with,commas");
    let images = images();
    let boot = prepare(
        &args(&w.dir, &state, &images, &["--mac", "02:00:00:00:07:02"]),
        NOW,
    )
    .unwrap();
    let state = std::fs::canonicalize(&state).unwrap();
    let s = state.display().to_string().replace(',', ",,");
    let want: Vec<OsString> = [
        "-M".to_owned(),
        "mps2-an385".into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-object".into(),
        format!("memory-backend-file,id=flash,size=16777216,mem-path={s}/flash.bin,share=on"),
        "-machine".into(),
        "memory-backend=flash".into(),
        "-device".into(),
        format!("loader,file={s}/provisioning.bin,addr=0x3f0000"),
        "-nic".into(),
        format!(
            "tap,ifname=mcu0,script={s}/qemu-ifup,downscript=no,model=lan9118,mac=02:00:00:00:07:02"
        ),
        "-kernel".into(),
        std::fs::canonicalize(images.join("device-mcu-boot"))
            .unwrap()
            .display()
            .to_string(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    assert_eq!(boot.qemu_args, want);

    let ifup = state.join("qemu-ifup");
    assert_eq!(
        std::fs::read_to_string(&ifup).unwrap(),
        "#!/bin/sh\nexec ip link set dev \"$1\" master br0 up\n"
    );
    assert_eq!(
        std::fs::metadata(&ifup).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        ifup_script("br-dut7"),
        "#!/bin/sh\nexec ip link set dev \"$1\" master br-dut7 up\n"
    );
}

#[test]
fn the_unit_is_flashed_at_its_first_power_on_and_keeps_its_flash() {
    let w = provisioning_dir("localhost");
    let state = scratch("state-flash");
    let images = images();
    let a = args(&w.dir, &state, &images, &["--fault", "no-dedupe"]);
    let first = prepare(&a, NOW).unwrap();
    assert!(
        first.summary.contains("flashed now with"),
        "{}",
        first.summary
    );
    let flash_path = state.join("flash.bin");
    let flash = std::fs::read(&flash_path).unwrap();
    assert_eq!(flash.len(), 16 << 20);
    // The case's image (here a stand-in) in the primary slot, the rest erased.
    assert_eq!(&flash[..9], b"no-dedupe");
    assert!(flash[9..].iter().all(|b| *b == 0xff));
    // What the board wrote stays, and a later power-on with the same
    // image does not flash the unit again.
    let mut written = flash;
    written[0x20_5000] = 1;
    // The app's storage partition (0x21ff_0000) too.
    written[0xff_0000..0xff_0004].copy_from_slice(b"kept");
    std::fs::write(&flash_path, &written).unwrap();
    let again = prepare(&a, NOW).unwrap();
    assert!(
        again.summary.contains("kept from the last power-on"),
        "{}",
        again.summary
    );
    assert_eq!(std::fs::read(&flash_path).unwrap(), written);
    // Another fault set: its image in the primary slot, the rest kept.
    let other = prepare(&args(&w.dir, &state, &images, &[]), NOW).unwrap();
    assert!(
        other.summary.contains("primary slot flashed anew with"),
        "{}",
        other.summary
    );
    let flash = std::fs::read(&flash_path).unwrap();
    assert_eq!(&flash[..5], b"none\xff");
    assert_eq!(flash[0x20_5000], 1);
    assert_eq!(&flash[0xff_0000..0xff_0004], b"kept");
    // A flash file that is not a whole flash: an error naming it.
    std::fs::write(&flash_path, b"torn").unwrap();
    names(
        prepare(&args(&w.dir, &state, &images, &[]), NOW).unwrap_err(),
        &[&flash_path.display().to_string(), "4 bytes"],
    );
    // No boot stage: its path and the build command.
    std::fs::remove_file(images.join("device-mcu-boot")).unwrap();
    names(
        prepare(&args(&w.dir, &scratch("state-noboot"), &images, &[]), NOW).unwrap_err(),
        &[
            &images.join("device-mcu-boot").display().to_string(),
            BUILD_COMMAND,
        ],
    );
}

#[test]
fn the_image_is_picked_by_fault_set_in_any_order() {
    let images = images();
    let pick = |faults: &[&str]| {
        let mut extra = Vec::new();
        for f in faults {
            extra.extend(["--fault", f]);
        }
        let a = args(Path::new("p"), Path::new("s"), &images, &extra);
        image_path(&a.images, &a.faults).unwrap()
    };
    assert_eq!(pick(&[]), images.join("device-mcu.faults-none.signed.bin"));
    assert_eq!(
        pick(&["no-server-verify"]),
        images.join("device-mcu.faults-no-server-verify.signed.bin")
    );
    let both = images.join("device-mcu.faults-listen-debug+no-dedupe.signed.bin");
    assert_eq!(pick(&["no-dedupe", "listen-debug"]), both);
    assert_eq!(pick(&["listen-debug", "no-dedupe"]), both);
    assert_eq!(pick(&["no-dedupe", "listen-debug", "no-dedupe"]), both);
    // The builder names its copies the same way.
    assert_eq!(fault_set_name(&[]), "none");
    assert_eq!(
        fault_set_name(&["no-dedupe", "listen-debug"]),
        "listen-debug+no-dedupe"
    );

    // A set nobody built: the path and the build command.
    let a = args(
        Path::new("p"),
        Path::new("s"),
        &images,
        &["--fault", "no-server-verify", "--fault", "listen-debug"],
    );
    let missing = images.join("device-mcu.faults-listen-debug+no-server-verify.signed.bin");
    names(
        image_path(&a.images, &a.faults).unwrap_err(),
        &[&missing.display().to_string(), BUILD_COMMAND],
    );
    // A fault the image does not apply is refused with the ones it does.
    let bad = argv(
        Path::new("p"),
        Path::new("s"),
        &images,
        &["--fault", "tight-reconnect"],
    );
    names(
        RunArgs::parse(bad).unwrap_err(),
        &[
            "tight-reconnect",
            "listen-debug",
            "no-server-verify",
            "no-dedupe",
        ],
    );
}

#[test]
fn bad_arguments_are_named() {
    let p = Path::new("p");
    let parse = |extra: &[&str], drop: &str| {
        let mut v = argv(p, p, p, extra);
        if let Some(at) = v.iter().position(|a| a == drop) {
            v.drain(at..at + 2);
        }
        RunArgs::parse(v)
    };
    let with = |flag: &str, value: &str| {
        let mut v = argv(p, p, p, &[]);
        let at = v.iter().position(|a| a == flag).unwrap();
        v[at + 1] = value.to_owned();
        RunArgs::parse(v)
    };
    names(
        with("--ip", "10.200.7.2").unwrap_err(),
        &["--ip", "10.200.7.2"],
    );
    names(with("--ip", "10.200.7.2/33").unwrap_err(), &["--ip", "/33"]);
    names(
        with("--ip", "10.200.7.300/30").unwrap_err(),
        &["--ip", "10.200.7.300"],
    );
    names(
        with("--gateway", "10.200.8.1").unwrap_err(),
        &["--gateway", "10.200.8.1"],
    );
    names(with("--gateway", "10.200.7.2").unwrap_err(), &["--gateway"]);
    names(with("--bridge", "br0; reboot").unwrap_err(), &["--bridge"]);
    names(
        with("--bridge", "a-bridge-name-too-long").unwrap_err(),
        &["--bridge"],
    );
    names(
        parse(&["--mac", "01:00:00:00:00:02"], "").unwrap_err(),
        &["--mac", "multicast"],
    );
    names(
        parse(&["--mac", "02:00:00:00:02"], "").unwrap_err(),
        &["--mac"],
    );
    names(
        parse(&[], "--bridge").unwrap_err(),
        &["--bridge", "required"],
    );
    names(
        parse(&["--ip", "10.0.0.2/8"], "").unwrap_err(),
        &["--ip", "twice"],
    );
    names(parse(&["--colour", "x"], "").unwrap_err(), &["--colour"]);
    names(parse(&["--fault"], "").unwrap_err(), &["--fault", "value"]);
    names(parse(&[], "--dns").unwrap_err(), &["--dns", "required"]);
    names(
        with("--dns", "hub7.sacbench.test").unwrap_err(),
        &["--dns", "hub7.sacbench.test"],
    );
    names(with("--dns", "0.0.0.0").unwrap_err(), &["--dns", "0.0.0.0"]);
    let ok = parse(&[], "").unwrap();
    assert_eq!(ok.mac, board::DEFAULT_MAC);
    assert!(ok.faults.is_empty());
}

#[test]
fn bad_provisioning_inputs_are_named() {
    let images = images();
    let try_prepare = |w: &Written| {
        let state = scratch("state");
        prepare(&args(&w.dir, &state, &images, &[]), NOW)
    };

    let w = provisioning_dir("localhost");
    std::fs::remove_file(w.dir.join("device.key")).unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[
            &w.dir.join("device.key").display().to_string(),
            "No such file",
        ],
    );

    let w = provisioning_dir("localhost");
    std::fs::write(
        w.dir.join("device.pem"),
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[&w.dir.join("device.pem").display().to_string(), "bad PEM"],
    );

    let w = provisioning_dir("localhost");
    std::fs::write(w.dir.join("hub-ca.pem"), "no PEM here\n").unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[
            &w.dir.join("hub-ca.pem").display().to_string(),
            "CERTIFICATE",
        ],
    );

    let w = provisioning_dir("localhost");
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(w.dir.join("device.key"), ed.serialize_pem()).unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[&w.dir.join("device.key").display().to_string(), "P-256"],
    );

    let w = provisioning_dir("localhost");
    std::fs::write(
        w.dir.join("device.key"),
        "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[&w.dir.join("device.key").display().to_string(), "PKCS#8"],
    );

    let w = provisioning_dir("localhost");
    std::fs::write(
        w.dir.join("device.json"),
        r#"{"device_id": "d", "hub_host": "localhost"}"#,
    )
    .unwrap();
    names(
        try_prepare(&w).unwrap_err(),
        &[
            &w.dir.join("device.json").display().to_string(),
            "mqtt_port",
        ],
    );

    // The launcher does not resolve the hub's name (the board does, at
    // --dns): a name no resolver here knows is packed as it is.
    let w = provisioning_dir("no-such-hub.invalid");
    let state = scratch("state");
    prepare(&args(&w.dir, &state, &images, &[]), NOW).unwrap();
    let mut region = std::fs::read(state.join("provisioning.bin")).unwrap();
    region.resize(device_mcu_rig::prov::PROVISION_LEN, 0xff);
    assert_eq!(
        provfmt::parse(&region).unwrap().hub_name,
        "no-such-hub.invalid"
    );

    // A seed file that is not a unit's seed is not replaced behind the
    // operator's back.
    let w = provisioning_dir("localhost");
    let state = scratch("state");
    std::fs::write(state.join("seed"), [1u8; 31]).unwrap();
    names(
        prepare(&args(&w.dir, &state, &images, &[]), NOW).unwrap_err(),
        &[&state.join("seed").display().to_string(), "31 bytes"],
    );

    // Nothing of it needs the images to be good, but they must be there.
    let w = provisioning_dir("localhost");
    let state = scratch("state");
    let empty = scratch("no-images");
    names(
        prepare(&args(&w.dir, &state, &empty, &[]), NOW).unwrap_err(),
        &["device-mcu.faults-none", BUILD_COMMAND],
    );
    assert!(
        !state.join("provisioning.bin").exists(),
        "nothing written for a board that cannot boot"
    );
}

#[test]
fn the_binary_says_what_is_wrong_in_one_line_and_exits_2() {
    let w = provisioning_dir("localhost");
    std::fs::remove_file(w.dir.join("hub-ca.pem")).unwrap();
    let state = scratch("state");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-board"))
        .arg("run")
        .args(argv(&w.dir, &state, &images(), &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("devmcu-board: "), "{stderr:?}");
    assert!(
        stderr.contains(&w.dir.join("hub-ca.pem").display().to_string()),
        "{stderr:?}"
    );
    assert!(out.stdout.is_empty());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-board"))
        .args(["run", "--ip", "10.200.7.2/40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("--ip"), "{stderr:?}");

    let w = read_provisioning(&provisioning_dir("localhost").dir).unwrap();
    assert_eq!(w.device.device_id, DEVICE_ID);
    assert_eq!(w.chain_extra, 1);
}
