//! `devmcu-board`: the device-mcu image as a sacbench emulated board (issue
//! 17 §2). The DUT file (`firmware/device-mcu/dut.toml`) runs
//! `devmcu-board run …` in the case's DUT network namespace, whose bridge
//! enslaves the DUT's veth link; at every power-on it turns the case's
//! provisioning directory into the board's provisioning record, writes the
//! script that puts QEMU's TAP on that bridge, picks the image built with
//! the case's fault switches, and `exec`s QEMU (so QEMU is the process the
//! rig powers off). Everything here but the `exec` is in this module, so it
//! is tested on the host; the binary (`src/bin/devmcu-board.rs`) is the
//! thin shell.
//!
//! What a unit keeps in `{state}` (across power cycles of one case):
//!
//! ```text
//! {state}/seed              32 bytes from /dev/urandom, made at the first power-on: the unit's secret
//! {state}/time-floor        Unix seconds (decimal), written at the first power-on: the provisioning time
//! {state}/provisioning.bin  the record (`prov::pack`), rewritten at every power-on
//! {state}/qemu-ifup         QEMU's TAP script (0755), rewritten at every power-on
//! {state}/flash.bin         the board's flash (16 MiB, `flashmap`), made at the first power-on:
//!                           erased, the signed image of the case's fault set in the primary
//!                           slot (the factory flashing the unit); then the board's own —
//!                           QEMU maps it shared, so what the board writes stays
//! {state}/flash.image       `sha256:<hex>` of the image the unit was last flashed with: a
//!                           power-on asking for another (fault set) rewrites the primary
//!                           slot only
//! ```
//!
//! QEMU boots the boot stage (`device-mcu-boot`, the board's ROM at 0x0),
//! which checks the primary slot's image and starts it.

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::Deserialize;

use crate::image::Flashing;
use crate::prov::{pack, HubAt, Provision, PROVISION_ADDR};
use crate::{fault_set_name, Error};

/// The TAP device QEMU creates in the DUT namespace (≤ 15 characters).
pub const TAP: &str = "mcu0";
/// The board's MAC when `--mac` is not given (locally administered, unicast).
pub const DEFAULT_MAC: &str = "02:00:00:00:00:02";
/// The fault switches this image applies (device-core's names), i.e. the
/// images `build` makes besides the correct one.
pub const FAULTS: [&str; 3] = ["listen-debug", "no-server-verify", "no-dedupe"];
/// `{state}/seed`: the unit's 32-byte secret.
pub const SEED_FILE: &str = "seed";
/// `{state}/time-floor`: the unit's provisioning time, Unix seconds.
pub const TIME_FLOOR_FILE: &str = "time-floor";
/// `{state}/provisioning.bin`: the record QEMU lays at 0x003f0000.
pub const RECORD_FILE: &str = "provisioning.bin";
/// `{state}/qemu-ifup`: the script QEMU runs on the TAP it made.
pub const IFUP_FILE: &str = "qemu-ifup";
/// `{state}/flash.bin`: the board's flash.
pub const FLASH_FILE: &str = "flash.bin";
/// `{state}/flash.image`: which image the unit was last flashed with.
pub const FLASH_RECORD_FILE: &str = "flash.image";
/// How far before the first power-on the time floor is put: the floor must
/// never be after the hub's (the SNTP server's) clock, which on the bench
/// is the same host clock a moment later — the margin covers that clock
/// being stepped back a little (NTP on the host) and a factory clock that
/// runs ahead; it is small against the validity of any certificate.
pub const TIME_FLOOR_MARGIN_S: u64 = 24 * 3600;
/// The command that builds the images `run` boots.
pub const BUILD_COMMAND: &str =
    "cd firmware/device-mcu/rig && cargo run --release --bin devmcu-board -- build";

/// `devmcu-board run`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// The provisioning directory (device.json, device.pem, device.key, hub-ca.pem).
    pub provisioning: PathBuf,
    /// The unit's state directory (created if missing).
    pub state: PathBuf,
    /// Where the images `device-mcu.faults-<set>.signed.bin` and the boot
    /// stage `device-mcu-boot` are.
    pub images: PathBuf,
    /// The board's IPv4 address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Its default gateway (inside the prefix).
    pub gateway: Ipv4Addr,
    /// The SNTP server, `HOST:PORT` (resolved at power-on).
    pub sntp: String,
    /// The DNS server the board looks its hub's name up at (record v2).
    pub dns: Ipv4Addr,
    /// The bridge in the namespace the TAP joins.
    pub bridge: String,
    /// The board's MAC, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
    /// Fault switches (each one of `FAULTS`), sorted, without repeats.
    pub faults: Vec<String>,
    /// QEMU's gdbstub socket, if asked (`--gdb`, `gdb.rs`).
    pub gdb: Option<PathBuf>,
}

const RUN_FLAGS: [&str; 11] = [
    "gdb",
    "provisioning",
    "state",
    "images",
    "ip",
    "gateway",
    "sntp",
    "dns",
    "bridge",
    "mac",
    "fault",
];

impl RunArgs {
    /// Parses the arguments after `run`. Every flag takes a value; all but
    /// `--mac`, `--fault` and `--gdb` are required; `--fault` may repeat.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let mut values: Vec<(String, String)> = Vec::new();
        let mut faults = Vec::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let key = flag
                .strip_prefix("--")
                .filter(|k| RUN_FLAGS.contains(k))
                .ok_or_else(|| {
                    format!(
                        "unknown argument {flag:?}; `run` takes --{}",
                        RUN_FLAGS.join(" --")
                    )
                })?
                .to_owned();
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            if key == "fault" {
                if !FAULTS.contains(&value.as_str()) {
                    return Err(format!(
                        "--fault {value:?}: this image offers {}",
                        FAULTS.join(", ")
                    ));
                }
                faults.push(value);
            } else if values.iter().any(|(k, _)| *k == key) {
                return Err(format!("{flag} given twice"));
            } else {
                values.push((key, value));
            }
        }
        let get = |k: &str| {
            values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("--{k} is required"))
        };
        let (ip, prefix) = parse_cidr(&get("ip")?).map_err(|e| format!("--ip {e}"))?;
        let gateway_text = get("gateway")?;
        let gateway: Ipv4Addr = gateway_text
            .parse()
            .map_err(|e| format!("--gateway {gateway_text:?}: {e}"))?;
        if !same_subnet(ip, gateway, prefix) || gateway == ip {
            return Err(format!(
                "--gateway {gateway} is not another address in --ip {ip}/{prefix}"
            ));
        }
        let dns_text = get("dns")?;
        let dns: Ipv4Addr = dns_text
            .parse()
            .map_err(|e| format!("--dns {dns_text:?}: {e}"))?;
        if dns.is_unspecified() || dns.is_broadcast() || dns.is_multicast() {
            return Err(format!("--dns {dns}: not a server's address"));
        }
        let bridge = get("bridge")?;
        check_ifname(&bridge).map_err(|e| format!("--bridge {bridge:?}: {e}"))?;
        let mac = get("mac").unwrap_or_else(|_| DEFAULT_MAC.to_owned());
        check_mac(&mac).map_err(|e| format!("--mac {mac:?}: {e}"))?;
        faults.sort_unstable();
        faults.dedup();
        Ok(RunArgs {
            provisioning: get("provisioning")?.into(),
            state: get("state")?.into(),
            images: get("images")?.into(),
            ip,
            prefix,
            gateway,
            sntp: get("sntp")?,
            dns,
            bridge,
            mac,
            faults,
            gdb: get("gdb").ok().map(PathBuf::from),
        })
    }
}

/// `a.b.c.d/p` with p in 1..=32.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), Error> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: an IPv4 address/prefix, e.g. 10.200.7.2/30"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{text:?}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| format!("{text:?}: the prefix is 1 to 32"))?;
    Ok((addr, prefix))
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX << (32 - u32::from(prefix));
    u32::from(a) & mask == u32::from(b) & mask
}

/// A Linux interface name we can put in a shell script unquoted: 1–15 of
/// `[A-Za-z0-9_.-]`, not `.` or `..`.
fn check_ifname(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    match ok {
        true => Ok(()),
        false => Err("an interface name is 1 to 15 of A-Z a-z 0-9 _ . -".into()),
    }
}

/// Six hex octets separated by `:`, unicast.
fn check_mac(mac: &str) -> Result<(), Error> {
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| match o.len() {
            2 => u8::from_str_radix(o, 16).ok(),
            _ => None,
        })
        .collect::<Option<_>>()
        .filter(|v: &Vec<u8>| v.len() == 6)
        .ok_or("six hex octets, e.g. 02:00:00:00:00:02")?;
    if octets[0] & 1 == 1 {
        return Err("a multicast address (first octet odd)".into());
    }
    Ok(())
}

/// `device.json`'s keys this board uses (the others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceJson {
    /// The device id: MQTT client id, the certificate's CN.
    pub device_id: String,
    /// The hub's name: looked up by the board at `--dns` before each
    /// connection attempt, SNI and the name its certificate is checked
    /// against.
    pub hub_host: String,
    /// The hub's MQTT-over-TLS port.
    pub mqtt_port: u16,
    /// The hub's HTTPS port (EST), 443 when device.json does not say.
    #[serde(default = "default_https_port")]
    pub https_port: u16,
}

fn default_https_port() -> u16 {
    crate::prov::provfmt::DEFAULT_HTTPS_PORT
}

/// A provisioning directory, read and decoded.
#[derive(Debug, Clone)]
pub struct ProvisioningDir {
    /// `device.json`.
    pub device: DeviceJson,
    /// The device's certificate (DER), the first of `device.pem`.
    pub cert: Vec<u8>,
    /// How many more certificates `device.pem` holds (a chain): the image
    /// sends only its own.
    pub chain_extra: usize,
    /// The device's key, PKCS#8 DER (P-256).
    pub key: Vec<u8>,
    /// The hub's trust anchor (DER), `hub-ca.pem`.
    pub ca: Vec<u8>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads `dir`'s device.json, device.pem, device.key and hub-ca.pem.
pub fn read_provisioning(dir: &Path) -> Result<ProvisioningDir, Error> {
    let json = dir.join("device.json");
    let device: DeviceJson = serde_json::from_slice(&read_file(&json)?)
        .map_err(|e| format!("{}: {e}", json.display()))?;
    if device.device_id.is_empty() || device.hub_host.is_empty() {
        return Err(format!(
            "{}: device_id and hub_host must not be empty",
            json.display()
        ));
    }
    let certs = |path: &Path| -> Result<Vec<Vec<u8>>, Error> {
        let text = read_file(path)?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
        match certs.is_empty() {
            true => Err(format!("{}: no PEM CERTIFICATE block", path.display())),
            false => Ok(certs),
        }
    };
    let pem = dir.join("device.pem");
    let mut chain = certs(&pem)?;
    let cert = chain.remove(0);
    let key_path = dir.join("device.key");
    let key = PrivatePkcs8KeyDer::from_pem_slice(&read_file(&key_path)?)
        .map_err(|e| {
            format!(
                "{}: no PKCS#8 PEM PRIVATE KEY block ({e})",
                key_path.display()
            )
        })?
        .secret_pkcs8_der()
        .to_vec();
    // The image signs with ECDSA P-256 only: say so now, not as a failed
    // handshake later.
    use p256::pkcs8::DecodePrivateKey;
    p256::SecretKey::from_pkcs8_der(&key).map_err(|e| {
        format!(
            "{}: not a P-256 key, the only kind this board signs with ({e})",
            key_path.display()
        )
    })?;
    let ca_path = dir.join("hub-ca.pem");
    let mut anchors = certs(&ca_path)?;
    if anchors.len() > 1 {
        return Err(format!(
            "{}: {} certificates; the board's record holds one trust anchor",
            ca_path.display(),
            anchors.len()
        ));
    }
    Ok(ProvisioningDir {
        device,
        cert,
        chain_extra: chain.len(),
        key,
        ca: anchors.remove(0),
    })
}

/// The first IPv4 address `host:port` resolves to through the normal
/// resolver (getaddrinfo: /etc/hosts, DNS), for `--sntp` (the board dials
/// IPv4 only; the hub's name it looks up itself).
pub fn resolve_ipv4(host: &str, port: u16) -> Result<SocketAddrV4, Error> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
    addrs
        .filter_map(|a| match a {
            std::net::SocketAddr::V4(v4) => Some(v4),
            std::net::SocketAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no IPv4 address (the board dials IPv4 only)"))
}

/// `HOST:PORT` resolved as `resolve_ipv4` does.
fn resolve_host_port(text: &str) -> Result<SocketAddrV4, Error> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|e| format!("{text:?}: port: {e}"))?;
    resolve_ipv4(host, port)
}

/// The contents of `path`, made by `make` (and written with `mode`) if it
/// does not exist yet. Created whole or not at all: written to a temporary
/// file, then hard-linked into place (which never replaces a file another
/// power-on made first).
fn create_once(
    path: &Path,
    mode: u32,
    make: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    match fs::read(path) {
        Ok(bytes) => return Ok(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let bytes = make()?;
    let tmp = written_aside(path, &bytes, mode)?;
    let linked = match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    };
    let _ = fs::remove_file(&tmp);
    linked.map_err(|e| format!("{}: {e}", path.display()))?;
    read_file(path)
}

/// Writes `bytes` to `path` whole (a temporary file renamed over it).
fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = written_aside(path, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

/// `bytes` written and synced, with `mode`, to a temporary file beside
/// `path` (this process's own), whose path it returns.
fn written_aside(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, Error> {
    let tmp = path.with_extension(format!("part-{}", std::process::id()));
    let written = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(format!("{}: {e}", path.display()))
        }
    }
}

/// The unit's secret, `{state}/seed`: 32 bytes from /dev/urandom made at
/// its first power-on and the same at every later one.
pub fn unit_seed(state: &Path) -> Result<[u8; 32], Error> {
    let path = state.join(SEED_FILE);
    let bytes = create_once(&path, 0o600, || {
        let mut seed = vec![0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        Ok(seed)
    })?;
    let seed = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{}: {} bytes; a unit's seed is 32 (remove the file to make a new unit)",
            path.display(),
            bytes.len()
        )
    })?;
    if seed == [0; 32] {
        return Err(format!(
            "{}: all zeros (remove the file to make a new unit)",
            path.display()
        ));
    }
    Ok(seed)
}

/// The unit's time floor, `{state}/time-floor`: written at its first
/// power-on as `now_unix` − `TIME_FLOOR_MARGIN_S` (its provisioning time)
/// and the same at every later one.
pub fn time_floor(state: &Path, now_unix: u64) -> Result<u64, Error> {
    let path = state.join(TIME_FLOOR_FILE);
    let bytes = create_once(&path, 0o644, || {
        Ok(format!("{}\n", now_unix.saturating_sub(TIME_FLOOR_MARGIN_S)).into_bytes())
    })?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| format!("{}: not a number of Unix seconds", path.display()))
}

/// The record for this power-on (v2): the provisioning directory, the
/// unit's seed and floor, the board's addresses, the DNS server it asks for
/// the hub's name, the SNTP server's address resolved now.
pub fn provision(
    dir: &ProvisioningDir,
    args: &RunArgs,
    seed: [u8; 32],
    time_floor: u64,
) -> Result<Provision, Error> {
    let hub = HubAt::Dns {
        dns: args.dns,
        port: dir.device.mqtt_port,
        https_port: dir.device.https_port,
    };
    let sntp = resolve_host_port(&args.sntp).map_err(|e| format!("--sntp {e}"))?;
    Ok(Provision {
        ca: dir.ca.clone(),
        cert: dir.cert.clone(),
        key: dir.key.clone(),
        seed,
        device_id: dir.device.device_id.clone(),
        hub_name: dir.device.hub_host.clone(),
        hub,
        sntp,
        time_floor,
        ip: args.ip,
        prefix: args.prefix,
        gateway: args.gateway,
    })
}

/// The signed image for `faults` in `images`:
/// `device-mcu.faults-<set>.signed.bin` (`fault_set_name`); a missing one
/// is an error naming it and the build.
pub fn image_path(images: &Path, faults: &[String]) -> Result<PathBuf, Error> {
    let names: Vec<&str> = faults.iter().map(String::as_str).collect();
    let path = images.join(format!(
        "device-mcu.faults-{}.signed.bin",
        fault_set_name(&names)
    ));
    match path.is_file() {
        true => Ok(path),
        false => Err(format!(
            "no image {} (faults [{}]); build the images with `{BUILD_COMMAND}`",
            path.display(),
            names.join(", ")
        )),
    }
}

/// The boot stage in `images` (`image::BOOT_STAGE`); a missing one is an
/// error naming it and the build.
pub fn boot_stage_path(images: &Path) -> Result<PathBuf, Error> {
    let path = images.join(crate::image::BOOT_STAGE);
    match path.is_file() {
        true => Ok(path),
        false => Err(format!(
            "no boot stage {}; build the images with `{BUILD_COMMAND}`",
            path.display()
        )),
    }
}

/// `{state}/qemu-ifup`: QEMU runs it with the TAP's name once it has made
/// the TAP; it joins the namespace's bridge, up.
pub fn ifup_script(bridge: &str) -> String {
    format!("#!/bin/sh\nexec ip link set dev \"$1\" master {bridge} up\n")
}

/// A value inside a QEMU option list: `,` doubled.
fn qemu_value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// QEMU's arguments (after `qemu-system-arm`): mps2-an385, the console on
/// stdio, the flash file as the PSRAM (`image::flash_args`), the record
/// laid at 0x003f0000, the LAN9118 on TAP `TAP` (made by QEMU, joined to
/// the bridge by `ifup`), the boot stage as the ROM.
pub fn qemu_args(
    boot_stage: &Path,
    flash: &Path,
    record: &Path,
    ifup: &Path,
    mac: &str,
) -> Vec<OsString> {
    let loader = format!(
        "loader,file={},addr={PROVISION_ADDR:#x}",
        qemu_value(record)
    );
    let nic = format!(
        "tap,ifname={TAP},script={},downscript=no,model=lan9118,mac={mac}",
        qemu_value(ifup)
    );
    let mut args: Vec<OsString> = crate::QEMU_MACHINE
        .iter()
        .map(|a| a.to_string())
        .chain(crate::image::flash_args(flash))
        .chain(["-device", &loader, "-nic", &nic, "-kernel"].map(String::from))
        .map(OsString::from)
        .collect();
    args.push(boot_stage.as_os_str().to_owned());
    args
}

/// What `run` execs, and a line saying what it is about to boot.
#[derive(Debug, Clone)]
pub struct Boot {
    /// `qemu-system-arm`'s arguments.
    pub qemu_args: Vec<OsString>,
    /// One line for the console before QEMU starts.
    pub summary: String,
}

/// Everything `run` does before it execs QEMU, at Unix time `now_unix`:
/// reads the provisioning directory, keeps the unit's seed and floor,
/// writes the record and the ifup script into `{state}`, picks the image
/// and, at the unit's first power-on, flashes it (`{state}/flash.bin`).
pub fn prepare(args: &RunArgs, now_unix: u64) -> Result<Boot, Error> {
    let dir = read_provisioning(&args.provisioning)?;
    let image = image_path(&args.images, &args.faults)?;
    let boot_stage = boot_stage_path(&args.images)?;
    fs::create_dir_all(&args.state).map_err(|e| format!("{}: {e}", args.state.display()))?;
    let state =
        fs::canonicalize(&args.state).map_err(|e| format!("{}: {e}", args.state.display()))?;
    let seed = unit_seed(&state)?;
    let floor = time_floor(&state, now_unix)?;
    let p = provision(&dir, args, seed, floor)?;
    let record = pack(&p).map_err(|e| format!("{}: {e}", args.provisioning.display()))?;
    let record_path = state.join(RECORD_FILE);
    replace(&record_path, &record, 0o600)?;
    let ifup = state.join(IFUP_FILE);
    replace(&ifup, ifup_script(&args.bridge).as_bytes(), 0o755)?;
    let boot_stage =
        fs::canonicalize(&boot_stage).map_err(|e| format!("{}: {e}", boot_stage.display()))?;
    let flash = state.join(FLASH_FILE);
    let flashed =
        crate::image::flash_unit(&flash, &state.join(FLASH_RECORD_FILE), &read_file(&image)?)?;
    let flash_note = match flashed {
        Flashing::New => format!("flashed now with {}", image.display()),
        Flashing::Kept => "kept from the last power-on".to_owned(),
        Flashing::Reflashed => format!("primary slot flashed anew with {}", image.display()),
    };
    let chain_note = match dir.chain_extra {
        0 => String::new(),
        n => format!(
            "; device.pem's {n} further certificate(s) not sent (the image sends its own only)"
        ),
    };
    let summary = format!(
        "devmcu-board: device {} at {}/{} via {}, hub {} ({}), sntp {}, time floor {}, flash {} ({}){}",
        p.device_id,
        p.ip,
        p.prefix,
        p.gateway,
        p.hub_name,
        p.hub,
        p.sntp,
        p.time_floor,
        flash.display(),
        flash_note,
        chain_note
    );
    let mut qemu_args = qemu_args(&boot_stage, &flash, &record_path, &ifup, &args.mac);
    if let Some(gdb) = &args.gdb {
        qemu_args.extend(crate::gdb::qemu_gdb_args(gdb)?);
    }
    Ok(Boot { qemu_args, summary })
}

/// Where `build` puts the images and a copy of this launcher:
/// `firmware/device-mcu/target/board/`, whatever the profile (the last
/// build is what the DUT file boots).
pub fn board_dir() -> PathBuf {
    crate::firmware_dir().join("target").join("board")
}

/// The bench's reconnect base for its images (sacbench's
/// `RECONNECT_BASE_MS`): outages in the cases take seconds, not minutes.
pub const BENCH_BACKOFF_BASE_MS: u64 = 250;
/// device-core's stable-session time, unchanged in the bench's images.
pub const BENCH_BACKOFF_STABLE_MS: u64 = 60_000;

/// Builds the correct image and one per fault of `FAULTS` into
/// `board_dir()`, with the bench's reconnect base (250 ms, what the bench
/// gives the reference device through `device.json`'s `reconnect_base_ms`,
/// which this image cannot read: its record has no such field) and the
/// firmware's own stable-session time (60 s); returns their paths.
pub fn build_images(profile: crate::Profile) -> Result<Vec<PathBuf>, Error> {
    let out = board_dir();
    let mut sets: Vec<Vec<&str>> = vec![Vec::new()];
    sets.extend(FAULTS.iter().map(|f| vec![*f]));
    sets.iter()
        .map(|faults| {
            crate::build(&crate::ImageBuild {
                profile,
                faults,
                diag_ip: "10.0.17.2/24",
                diag_peer: "10.0.17.1:7700",
                backoff_ms: Some((BENCH_BACKOFF_BASE_MS, BENCH_BACKOFF_STABLE_MS)),
                out_dir: Some(&out),
            })
        })
        .collect()
}
