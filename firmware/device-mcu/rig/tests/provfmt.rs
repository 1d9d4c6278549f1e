//! Host tests of the provisioning record (the firmware's src/provfmt.rs,
//! through the rig's packer): what the packer writes parses back field for
//! field, and every kind of damage is refused with its reason. (The MQTT
//! packets are device-core's session's, tested there.)
#![allow(clippy::unwrap_used)]

use device_mcu_rig::prov::provfmt::{self, Refused};
use device_mcu_rig::prov::{pack, HubAt, Provision, PROVISION_LEN};
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddrV4};

fn sample() -> Provision {
    Provision {
        ca: vec![0x30, 0x82, 1, 2, 3],
        cert: vec![0x30, 0x82, 4, 5],
        key: vec![0x30, 0x81, 6],
        seed: [7; 32],
        device_id: "device-mcu-0001".into(),
        hub_name: "hub.sacbench.test".into(),
        hub: HubAt::Dns {
            dns: Ipv4Addr::new(10, 0, 17, 53),
            port: 8883,
            https_port: 8443,
        },
        sntp: SocketAddrV4::new(Ipv4Addr::new(10, 0, 17, 3), 123),
        time_floor: 1_796_000_000,
        ip: Ipv4Addr::new(10, 0, 17, 2),
        prefix: 24,
        gateway: Ipv4Addr::new(10, 0, 17, 254),
    }
}

/// Re-seals `record` (a new digest) after it was edited.
fn reseal(record: &mut [u8]) {
    let end = record.len() - provfmt::DIGEST_LEN;
    let digest = Sha256::digest(&record[..end]);
    record[end..].copy_from_slice(&digest);
}

#[test]
fn what_the_packer_writes_parses_back() {
    let p = sample();
    let mut region = pack(&p).unwrap();
    // The region is longer than the record; what follows is not read.
    region.resize(PROVISION_LEN, 0xff);
    let r = provfmt::parse(&region).unwrap();
    assert_eq!(r.ca, &p.ca[..]);
    assert_eq!(r.cert, &p.cert[..]);
    assert_eq!(r.key, &p.key[..]);
    assert_eq!(r.seed, &p.seed);
    assert_eq!(r.device_id, p.device_id);
    assert_eq!(r.hub_name, p.hub_name);
    assert_eq!(r.version, 2);
    assert_eq!(
        r.hub,
        provfmt::Hub::Dns {
            server: [10, 0, 17, 53],
            port: 8883
        }
    );
    assert_eq!(r.https_port, 8443);
    assert_eq!(r.sntp, ([10, 0, 17, 3], 123));
    assert_eq!(r.time_floor, p.time_floor);
    assert_eq!(r.ip, [10, 0, 17, 2]);
    assert_eq!(r.prefix, 24);
    assert_eq!(r.gateway, [10, 0, 17, 254]);
}

#[test]
fn a_v1_record_with_the_hubs_address_stays_readable() {
    let mut p = sample();
    p.hub = HubAt::Address(SocketAddrV4::new(Ipv4Addr::new(10, 0, 17, 1), 8883));
    let v1 = pack(&p).unwrap();
    assert_eq!(&v1[4..6], &1u16.to_le_bytes(), "packed as version 1");
    let r = provfmt::parse(&v1).unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.hub, provfmt::Hub::Address([10, 0, 17, 1], 8883));
    assert_eq!(r.https_port, 443, "a v1 record's device re-enrols on 443");
    assert_eq!(r.hub_name, p.hub_name);
    // Relabelled v2, the same bytes are not a v2 record's (no https_port).
    let mut v2 = v1.clone();
    v2[4..6].copy_from_slice(&2u16.to_le_bytes());
    reseal(&mut v2);
    assert_ne!(
        provfmt::parse(&v2).map(|r| (r.hub, r.sntp)),
        Ok((
            provfmt::Hub::Dns {
                server: [10, 0, 17, 1],
                port: 8883
            },
            ([10, 0, 17, 3], 123)
        ))
    );
}

#[test]
fn a_v2_record_without_a_dns_server_is_refused() {
    let mut p = sample();
    p.hub = HubAt::Dns {
        dns: Ipv4Addr::UNSPECIFIED,
        port: 8883,
        https_port: 443,
    };
    assert!(
        pack(&p).unwrap_err().contains("0.0.0.0"),
        "the packer says so"
    );
    // Written anyway (a v1 record of address 0.0.0.0 relabelled v2).
    p.hub = HubAt::Address(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8883));
    let mut record = pack(&p).unwrap();
    record[4..6].copy_from_slice(&2u16.to_le_bytes());
    reseal(&mut record);
    assert_eq!(provfmt::parse(&record), Err(Refused::NoDnsServer));
}

#[test]
fn an_empty_region_has_no_record() {
    assert_eq!(provfmt::parse(&[0u8; 4096]), Err(Refused::NoRecord));
    assert_eq!(provfmt::parse(&[]), Err(Refused::NoRecord));
}

#[test]
fn any_flipped_bit_is_caught_by_the_digest() {
    let record = pack(&sample()).unwrap();
    // Every byte after the header's length field, digest included.
    for i in provfmt::HEADER_LEN..record.len() {
        let mut bad = record.clone();
        bad[i] ^= 0x01;
        assert_eq!(provfmt::parse(&bad), Err(Refused::Digest), "byte {i}");
    }
}

#[test]
fn header_damage_is_refused() {
    let record = pack(&sample()).unwrap();
    let mut magic = record.clone();
    magic[0] = b'X';
    assert_eq!(provfmt::parse(&magic), Err(Refused::NoRecord));
    for v in [0u16, 3, 0x0100] {
        let mut version = record.clone();
        version[4..6].copy_from_slice(&v.to_le_bytes());
        assert_eq!(provfmt::parse(&version), Err(Refused::Version(v)), "{v}");
    }
    let mut long = record.clone();
    long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(provfmt::parse(&long), Err(Refused::TooLong));
    // Cut short: the digest would run past the end.
    assert_eq!(
        provfmt::parse(&record[..record.len() - 1]),
        Err(Refused::TooLong)
    );
    // A shorter length: the digest is read from the wrong place.
    let mut short = record.clone();
    let body = u32::from_le_bytes(short[8..12].try_into().unwrap());
    short[8..12].copy_from_slice(&(body - 1).to_le_bytes());
    assert_eq!(provfmt::parse(&short), Err(Refused::Digest));
}

#[test]
fn well_sealed_but_malformed_bodies_are_refused() {
    // A zero seed.
    let mut p = sample();
    p.seed = [0; 32];
    assert_eq!(provfmt::parse(&pack(&p).unwrap()), Err(Refused::ZeroSeed));
    // An empty certificate.
    let mut p = sample();
    p.cert.clear();
    assert_eq!(
        provfmt::parse(&pack(&p).unwrap()),
        Err(Refused::Empty("cert"))
    );
    // A prefix over 32.
    let mut p = sample();
    p.prefix = 33;
    assert_eq!(provfmt::parse(&pack(&p).unwrap()), Err(Refused::Prefix(33)));
    // A device id that is not UTF-8 (edited in, then resealed).
    let p = sample();
    let mut record = pack(&p).unwrap();
    let at = record
        .windows(p.device_id.len())
        .position(|w| w == p.device_id.as_bytes())
        .unwrap();
    record[at] = 0xff;
    reseal(&mut record);
    assert_eq!(provfmt::parse(&record), Err(Refused::NotUtf8("device_id")));
    // A field length running past the body.
    let mut record = pack(&p).unwrap();
    let ca_len_at = provfmt::HEADER_LEN + provfmt::FIXED_LEN_V2;
    record[ca_len_at..ca_len_at + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
    reseal(&mut record);
    assert_eq!(provfmt::parse(&record), Err(Refused::Truncated));
    // Bytes after the last field (body length grown by one, resealed).
    let mut record = pack(&p).unwrap();
    let end = record.len() - provfmt::DIGEST_LEN;
    record.insert(end, 0);
    let body = u32::from_le_bytes(record[8..12].try_into().unwrap());
    record[8..12].copy_from_slice(&(body + 1).to_le_bytes());
    reseal(&mut record);
    assert_eq!(provfmt::parse(&record), Err(Refused::Trailing));
    // A body shorter than the fixed part.
    let mut tiny = Vec::new();
    tiny.extend_from_slice(&provfmt::MAGIC);
    tiny.extend_from_slice(&1u16.to_le_bytes());
    tiny.extend_from_slice(&0u16.to_le_bytes());
    tiny.extend_from_slice(&4u32.to_le_bytes());
    tiny.extend_from_slice(&[1, 2, 3, 4]);
    tiny.extend_from_slice(&[0; 32]);
    reseal(&mut tiny);
    assert_eq!(provfmt::parse(&tiny), Err(Refused::Truncated));
}

#[test]
fn the_packer_refuses_what_does_not_fit() {
    let mut p = sample();
    p.ca = vec![0x30; 70_000];
    assert!(pack(&p).is_err());
    let mut p = sample();
    p.ca = vec![0x30; 40_000];
    p.cert = vec![0x30; 30_000];
    assert!(pack(&p).unwrap_err().contains("exceeds"));
}

#[test]
fn the_packer_binary_writes_a_record_the_device_parses() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("devmcu-prov-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = sample();
    for (name, bytes) in [
        ("ca.der", &p.ca),
        ("cert.der", &p.cert),
        ("key.der", &p.key),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("seed.bin"), p.seed).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-prov"))
        .current_dir(&dir)
        .args(["--ca", "ca.der", "--cert", "cert.der", "--key", "key.der"])
        .args([
            "--device-id",
            "device-mcu-0001",
            "--hub-name",
            "hub.sacbench.test",
        ])
        .args([
            "--dns",
            "10.0.17.53",
            "--hub-port",
            "8883",
            "--https-port",
            "8443",
        ])
        .args(["--sntp", "10.0.17.3:123"])
        .args(["--ip", "10.0.17.2/24", "--gateway", "10.0.17.254"])
        .args(["--time-floor", "1796000000", "--seed", "seed.bin"])
        .args(["--out", "prov.bin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(dir.join("prov.bin")).unwrap();
    assert_eq!(
        written,
        pack(&p).unwrap(),
        "the binary packs as the library does"
    );
    assert_eq!(
        provfmt::parse(&written).unwrap().device_id,
        "device-mcu-0001"
    );
    // A flag it does not know, and a seed of the wrong size, are errors.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-prov"))
        .args(["--bogus", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    std::fs::write(dir.join("short.bin"), [1u8; 31]).unwrap();
    let short = std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-prov"))
        .current_dir(&dir)
        .args(["--seed", "short.bin"])
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("32 bytes"));
    // --hub packs a v1 record; --hub with --dns, or neither, is an error.
    let prov = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_devmcu-prov"))
            .current_dir(&dir)
            .args(["--ca", "ca.der", "--cert", "cert.der", "--key", "key.der"])
            .args(["--device-id", "d", "--hub-name", "hub.sacbench.test"])
            .args(["--sntp", "10.0.17.3:123", "--ip", "10.0.17.2/24"])
            .args(["--gateway", "10.0.17.254", "--out", "v1.bin"])
            .args(extra)
            .output()
            .unwrap()
    };
    let v1 = prov(&["--hub", "10.0.17.1:8883"]);
    assert!(
        v1.status.success(),
        "{}",
        String::from_utf8_lossy(&v1.stderr)
    );
    let r = std::fs::read(dir.join("v1.bin")).unwrap();
    assert_eq!(
        provfmt::parse(&r).unwrap().hub,
        provfmt::Hub::Address([10, 0, 17, 1], 8883)
    );
    for extra in [
        &["--hub", "10.0.17.1:8883", "--dns", "10.0.17.53"][..],
        &["--dns", "10.0.17.53"],
        &[],
    ] {
        let bad = prov(extra);
        assert!(!bad.status.success(), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--dns IP and --hub-port PORT"),
            "{extra:?}: {}",
            String::from_utf8_lossy(&bad.stderr)
        );
    }
}
