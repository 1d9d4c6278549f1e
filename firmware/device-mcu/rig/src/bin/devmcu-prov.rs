//! Writes a device-mcu provisioning record (`prov::pack`) to a file, for
//! booting the image by hand or from a DUT file's command:
//!
//! ```text
//! devmcu-prov --ca ca.der --cert device.der --key device.key.der \
//!   --device-id dev-1 --hub-name hub.sacbench.test --dns 10.0.17.1 --hub-port 8883 \
//!   [--https-port 443] --sntp 10.0.17.1:123 --ip 10.0.17.2/24 --gateway 10.0.17.1 \
//!   [--time-floor UNIX_SECONDS] [--seed seed.bin] --out prov.bin
//! ```
//!
//! `--dns IP --hub-port PORT` packs a v2 record (the device looks the hub
//! name up at that DNS server; `--https-port`, default 443, is where it
//! re-enrols); `--hub ADDR:PORT` instead, a v1 record (it dials that
//! address, and re-enrols on 443).
//!
//! The time floor defaults to now; the seed (32 bytes) to fresh random
//! bytes from /dev/urandom. Then:
//! `qemu-system-arm -M mps2-an385 … -device loader,file=prov.bin,addr=0x3f0000`.

use device_mcu_rig::prov::{pack, HubAt, Provision, PROVISION_ADDR};
use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

const KEYS: [&str; 15] = [
    "ca",
    "cert",
    "key",
    "device-id",
    "hub-name",
    "hub",
    "dns",
    "hub-port",
    "https-port",
    "sntp",
    "ip",
    "gateway",
    "time-floor",
    "seed",
    "out",
];

fn run() -> Result<(), String> {
    let mut args = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let key = flag
            .strip_prefix("--")
            .filter(|k| KEYS.contains(k))
            .ok_or_else(|| format!("unknown argument {flag:?}; flags: --{}", KEYS.join(" --")))?
            .to_owned();
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        args.insert(key, value);
    }
    let get = |k: &str| args.get(k).ok_or_else(|| format!("--{k} is required"));
    let read = |k: &str| get(k).and_then(|p| std::fs::read(p).map_err(|e| format!("{p}: {e}")));
    let parse = |k: &str| -> Result<String, String> { get(k).cloned() };
    let seed = match args.get("seed") {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| format!("{path}: the seed is 32 bytes, not {}", bytes.len()))?
        }
        None => {
            let mut seed = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut seed))
                .map_err(|e| format!("/dev/urandom: {e}"))?;
            seed
        }
    };
    let time_floor = match args.get("time-floor") {
        Some(s) => s.parse().map_err(|e| format!("--time-floor {s}: {e}"))?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    };
    let ip = parse("ip")?;
    let (addr, prefix) = ip
        .split_once('/')
        .ok_or_else(|| format!("--ip {ip}: address/prefix"))?;
    let hub = match (args.get("hub"), args.get("dns"), args.get("hub-port")) {
        (Some(hub), None, None) => {
            HubAt::Address(hub.parse().map_err(|e| format!("--hub {hub}: {e}"))?)
        }
        (None, Some(dns), Some(port)) => HubAt::Dns {
            dns: dns.parse().map_err(|e| format!("--dns {dns}: {e}"))?,
            port: port
                .parse()
                .map_err(|e| format!("--hub-port {port}: {e}"))?,
            https_port: match args.get("https-port") {
                Some(p) => p.parse().map_err(|e| format!("--https-port {p}: {e}"))?,
                None => device_mcu_rig::prov::provfmt::DEFAULT_HTTPS_PORT,
            },
        },
        _ => {
            return Err(
                "give either --dns IP and --hub-port PORT (record v2) or --hub ADDR:PORT (v1)"
                    .into(),
            )
        }
    };
    let record = pack(&Provision {
        ca: read("ca")?,
        cert: read("cert")?,
        key: read("key")?,
        seed,
        device_id: parse("device-id")?,
        hub_name: parse("hub-name")?,
        hub,
        sntp: parse("sntp")?.parse().map_err(|e| format!("--sntp: {e}"))?,
        time_floor,
        ip: addr.parse().map_err(|e| format!("--ip: {e}"))?,
        prefix: prefix.parse().map_err(|e| format!("--ip prefix: {e}"))?,
        gateway: parse("gateway")?
            .parse()
            .map_err(|e| format!("--gateway: {e}"))?,
    })?;
    let out = get("out")?;
    std::fs::write(out, &record).map_err(|e| format!("{out}: {e}"))?;
    println!(
        "{out}: provisioning record v{}, {} B, for -device loader,file={out},addr={PROVISION_ADDR:#x}",
        hub.version(),
        record.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devmcu-prov: {e}");
            ExitCode::FAILURE
        }
    }
}
