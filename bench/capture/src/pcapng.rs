//! A minimal pcapng writer: the five block kinds the bench needs.
//!
//! Written by hand against the pcapng specification (draft-ietf-opsawg-pcapng, sections
//! referenced per block) because no maintained Rust writer supports the Decryption Secrets
//! Block. Every block is written little-endian; readers detect the byte order from the
//! Section Header Block's byte-order magic.
//!
//! Layout of the files this crate produces, and why:
//!
//! ```text
//! SHB | IDB (if_name, if_description, if_tsresol=9) | DSB (TLSK key log) | EPB | EPB | ...
//! ```
//!
//! Wireshark/tshark apply the secrets of a DSB only to packets dissected *after* the DSB
//! was read (tshark dissects in one sequential pass), so a DSB appended at the end of the
//! file would decrypt nothing. The DSB therefore goes before the first packet; the capture
//! spools its packets to a side file and assembles the final file at stop time, when the
//! key log is complete (see [`crate::capture`]).

use std::io::{self, Write};

/// LINKTYPE_ETHERNET: frames as seen on an Ethernet or veth interface.
pub const LINKTYPE_ETHERNET: u16 = 1;

/// Secrets type of a Decryption Secrets Block holding an NSS TLS key log ("TLSK").
pub const SECRETS_TYPE_TLS_KEY_LOG: u32 = 0x544c_534b;

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BLOCK_DSB: u32 = 0x0000_000A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_DESCRIPTION: u16 = 3;
const OPT_IF_TSRESOL: u16 = 9;

/// What the Interface Description Block says about the captured interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceDescription {
    /// `if_name`: the interface name, e.g. `veth-dut`.
    pub name: String,
    /// `if_description`: free text, e.g. which side of the rig the interface faces.
    pub description: String,
    /// LINKTYPE_* value; [`LINKTYPE_ETHERNET`] for AF_PACKET captures of Ethernet/veth.
    pub link_type: u16,
    /// Maximum number of bytes stored per packet.
    pub snap_len: u32,
}

/// One packet to write: nanoseconds since the Unix epoch, the captured bytes and the length
/// the packet had on the wire (greater than `data.len()` when truncated by the snap length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since 1970-01-01T00:00:00Z.
    pub timestamp_ns: u64,
    /// Captured bytes, starting with the link-layer header.
    pub data: &'a [u8],
    /// Length on the wire.
    pub original_len: u32,
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Length of an option (header + value + padding) as it appears in a block.
fn option_len(value_len: usize) -> usize {
    4 + value_len + pad4(value_len)
}

fn write_option<W: Write>(w: &mut W, code: u16, value: &[u8]) -> io::Result<()> {
    let len = u16::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng option too long"))?;
    w.write_all(&code.to_le_bytes())?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(value)?;
    w.write_all(&[0u8; 3][..pad4(value.len())])
}

fn block_total_len(body_len: usize) -> io::Result<u32> {
    // Block type + total length at the start, total length again at the end.
    u32::try_from(12 + body_len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too long"))
}

/// Writes a Section Header Block (spec section 4.1), version 1.0, section length unknown
/// (-1, so the file can be concatenated or streamed), with `shb_userappl`.
pub fn write_section_header<W: Write>(w: &mut W, user_application: &str) -> io::Result<()> {
    let body = 4 + 2 + 2 + 8 + option_len(user_application.len()) + 4;
    let total = block_total_len(body)?;
    w.write_all(&BLOCK_SHB.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(&BYTE_ORDER_MAGIC.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&(-1i64).to_le_bytes())?;
    write_option(w, OPT_SHB_USERAPPL, user_application.as_bytes())?;
    write_option(w, OPT_ENDOFOPT, &[])?;
    w.write_all(&total.to_le_bytes())
}

/// Writes an Interface Description Block (spec section 4.2) with `if_name`,
/// `if_description` and `if_tsresol` = 9, so every Enhanced Packet Block timestamp of this
/// interface counts nanoseconds.
pub fn write_interface_description<W: Write>(
    w: &mut W,
    iface: &InterfaceDescription,
) -> io::Result<()> {
    let body = 2
        + 2
        + 4
        + option_len(iface.name.len())
        + option_len(iface.description.len())
        + option_len(1)
        + 4;
    let total = block_total_len(body)?;
    w.write_all(&BLOCK_IDB.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(&iface.link_type.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&iface.snap_len.to_le_bytes())?;
    write_option(w, OPT_IF_NAME, iface.name.as_bytes())?;
    write_option(w, OPT_IF_DESCRIPTION, iface.description.as_bytes())?;
    // 9 = 10^-9 s (the high bit clear means a power of ten).
    write_option(w, OPT_IF_TSRESOL, &[9])?;
    write_option(w, OPT_ENDOFOPT, &[])?;
    w.write_all(&total.to_le_bytes())
}

/// Writes a Decryption Secrets Block (spec section 4.7) of type `TLSK` holding an NSS key
/// log (`CLIENT_RANDOM ...`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...` lines) verbatim.
pub fn write_tls_key_log<W: Write>(w: &mut W, key_log: &[u8]) -> io::Result<()> {
    let secrets_len = u32::try_from(key_log.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "key log too long"))?;
    let body = 4 + 4 + key_log.len() + pad4(key_log.len());
    let total = block_total_len(body)?;
    w.write_all(&BLOCK_DSB.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(&SECRETS_TYPE_TLS_KEY_LOG.to_le_bytes())?;
    w.write_all(&secrets_len.to_le_bytes())?;
    w.write_all(key_log)?;
    w.write_all(&[0u8; 3][..pad4(key_log.len())])?;
    w.write_all(&total.to_le_bytes())
}

/// Writes an Enhanced Packet Block (spec section 4.3) for interface `interface_id`, with
/// the timestamp in nanoseconds (matching the `if_tsresol` = 9 this module writes).
pub fn write_enhanced_packet<W: Write>(
    w: &mut W,
    interface_id: u32,
    packet: &Packet<'_>,
) -> io::Result<()> {
    let captured = u32::try_from(packet.data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet too long"))?;
    let padding = pad4(packet.data.len());
    let total = block_total_len(4 + 4 + 4 + 4 + 4 + packet.data.len() + padding)?;
    let ts = packet.timestamp_ns;
    // One 28-byte header write instead of seven small ones: this runs per packet.
    let mut header = [0u8; 28];
    header[0..4].copy_from_slice(&BLOCK_EPB.to_le_bytes());
    header[4..8].copy_from_slice(&total.to_le_bytes());
    header[8..12].copy_from_slice(&interface_id.to_le_bytes());
    header[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
    header[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
    header[20..24].copy_from_slice(&captured.to_le_bytes());
    header[24..28].copy_from_slice(&packet.original_len.max(captured).to_le_bytes());
    w.write_all(&header)?;
    w.write_all(packet.data)?;
    w.write_all(&[0u8; 3][..padding])?;
    w.write_all(&total.to_le_bytes())
}

/// Writes the head of a capture file: Section Header, the Interface Description (interface
/// id 0) and, when `key_log` is non-empty, the Decryption Secrets Block. Packets written
/// after this with [`write_enhanced_packet`] and interface id 0 complete the file.
pub fn write_file_head<W: Write>(
    w: &mut W,
    iface: &InterfaceDescription,
    key_log: Option<&[u8]>,
) -> io::Result<()> {
    write_section_header(w, concat!("sacbench-capture ", env!("CARGO_PKG_VERSION")))?;
    write_interface_description(w, iface)?;
    match key_log {
        Some(log) if !log.is_empty() => write_tls_key_log(w, log),
        _ => Ok(()),
    }
}

/// Writes a complete pcapng file from given packets (one interface, optional embedded key
/// log before the packets). Used for captures made elsewhere and for tests without
/// AF_PACKET.
pub fn write_pcapng<'a, W, I>(
    mut w: W,
    iface: &InterfaceDescription,
    key_log: Option<&[u8]>,
    packets: I,
) -> io::Result<W>
where
    W: Write,
    I: IntoIterator<Item = Packet<'a>>,
{
    write_file_head(&mut w, iface, key_log)?;
    for packet in packets {
        write_enhanced_packet(&mut w, 0, &packet)?;
    }
    w.flush()?;
    Ok(w)
}
