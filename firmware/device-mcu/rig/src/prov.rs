//! The host-side packer of the device's provisioning record (format: the
//! firmware's `src/provfmt.rs`, compiled here too so both sides share one
//! definition and the parser can be tested on the host).

#[path = "../../src/provfmt.rs"]
pub mod provfmt;

use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where the rig lays the record in the emulated board's map (the
/// firmware's `provision::PROVISION_ADDR`, mps2-an385 SSRAM1's last 64 KB).
pub const PROVISION_ADDR: u32 = 0x003f_0000;
/// The region's length: the most a record may take.
pub const PROVISION_LEN: usize = 64 * 1024;

/// Everything a device is provisioned with.
#[derive(Debug, Clone)]
pub struct Provision {
    /// CA certificate (DER): the device's only trust anchor.
    pub ca: Vec<u8>,
    /// The device's certificate (DER).
    pub cert: Vec<u8>,
    /// The device's P-256 key (PKCS#8 DER).
    pub key: Vec<u8>,
    /// Per-unit DRBG secret.
    pub seed: [u8; 32],
    /// Device id (MQTT client id).
    pub device_id: String,
    /// The hub's host name.
    pub hub_name: String,
    /// Where the hub is: its address (a v1 record), or the DNS server the
    /// device asks for `hub_name` (v2).
    pub hub: HubAt,
    /// The SNTP server.
    pub sntp: SocketAddrV4,
    /// Unix seconds before which the device believes no time.
    pub time_floor: u64,
    /// The device's own address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Its default gateway.
    pub gateway: Ipv4Addr,
}

/// How the device reaches its hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubAt {
    /// At this address (record v1: resolved by whoever packed it).
    Address(SocketAddrV4),
    /// `hub_name` looked up at DNS server `dns` (UDP 53), on `port` (record v2).
    Dns {
        /// The DNS server.
        dns: Ipv4Addr,
        /// The hub's MQTT-over-TLS port.
        port: u16,
        /// The hub's HTTPS port (EST re-enrolment).
        https_port: u16,
    },
}

impl HubAt {
    /// The record version that carries it.
    pub fn version(&self) -> u16 {
        match self {
            HubAt::Address(_) => provfmt::VERSION_ADDRESS,
            HubAt::Dns { .. } => provfmt::VERSION,
        }
    }
}

impl std::fmt::Display for HubAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubAt::Address(a) => write!(f, "{a}"),
            HubAt::Dns { dns, port, .. } => write!(f, "port {port}, resolved by dns {dns}"),
        }
    }
}

fn field(body: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u16::try_from(bytes.len()).map_err(|_| format!("field of {} B", bytes.len()))?;
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(bytes);
    Ok(())
}

/// The record for `p`: header, body, SHA-256.
pub fn pack(p: &Provision) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    body.extend_from_slice(&p.seed);
    body.extend_from_slice(&p.time_floor.to_le_bytes());
    body.extend_from_slice(&p.ip.octets());
    body.push(p.prefix);
    body.extend_from_slice(&p.gateway.octets());
    let hub = match p.hub {
        HubAt::Address(a) => a,
        HubAt::Dns { dns, .. } if dns.is_unspecified() => {
            return Err("the DNS server is 0.0.0.0".into())
        }
        HubAt::Dns { dns, port, .. } => SocketAddrV4::new(dns, port),
    };
    body.extend_from_slice(&hub.ip().octets());
    body.extend_from_slice(&hub.port().to_le_bytes());
    if let HubAt::Dns { https_port, .. } = p.hub {
        body.extend_from_slice(&https_port.to_le_bytes());
    }
    body.extend_from_slice(&p.sntp.ip().octets());
    body.extend_from_slice(&p.sntp.port().to_le_bytes());
    debug_assert_eq!(
        body.len(),
        match p.hub {
            HubAt::Address(_) => provfmt::FIXED_LEN,
            HubAt::Dns { .. } => provfmt::FIXED_LEN_V2,
        }
    );
    for bytes in [
        &p.ca[..],
        &p.cert,
        &p.key,
        p.device_id.as_bytes(),
        p.hub_name.as_bytes(),
    ] {
        field(&mut body, bytes)?;
    }
    let mut out = Vec::with_capacity(provfmt::HEADER_LEN + body.len() + provfmt::DIGEST_LEN);
    out.extend_from_slice(&provfmt::MAGIC);
    out.extend_from_slice(&p.hub.version().to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let body_len = u32::try_from(body.len()).map_err(|_| "body over 4 GB".to_owned())?;
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&body);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    if out.len() > PROVISION_LEN {
        return Err(format!(
            "record of {} B exceeds the {PROVISION_LEN} B region",
            out.len()
        ));
    }
    Ok(out)
}
