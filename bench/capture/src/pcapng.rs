//! The pcapng writer: the four block kinds the bench writes, serialised by `pcap-parser`
//! (feature `serialize`), the same crate that reads them back in [`crate::analysis`].
//!
//! pcap-parser's [`ToVec`] fills in what the format derives — block type, both total
//! lengths, option and data padding to 32 bits, the end-of-options option — so this module
//! only says what goes in each block. It does not check that a value fits its length field
//! (it would silently truncate a name longer than 65 535 bytes, or a block over 4 GiB):
//! those checks are made here before a block is built. Every block is little-endian; readers
//! detect the byte order from the Section Header Block's byte-order magic.
//!
//! Layout of the files this crate produces, and why:
//!
//! ```text
//! SHB | IDB (if_name, if_description, if_tsresol=9, if_tsoffset=0) | DSB (TLSK key log) | EPB | EPB | ...
//! ```
//!
//! Wireshark/tshark apply the secrets of a DSB only to packets dissected *after* the DSB
//! was read (tshark dissects in one sequential pass), so a DSB appended at the end of the
//! file would decrypt nothing. The DSB therefore goes before the first packet; the capture
//! spools its packets to a side file and assembles the final file at stop time, when the
//! key log is complete (see [`crate::capture`]).
//!
//! Writing stays streaming: each block is serialised on its own and written to the `Write`
//! it is given, never the file as a whole. pcap-parser builds each block in a `Vec` and
//! copies it once more, so a packet costs a few allocations and two copies of its bytes:
//! 1.5 kB packets through a `BufWriter` went at about 2 GB/s on the 2-core machine, some
//! 150 ns more per packet than the hand-written writer this replaced (same bytes out). Next
//! to the `recvmsg` the capture thread makes per packet that is noise, and `cargo xtask
//! perf` only uses the writer to make the capture it measures the analysis on.

use std::borrow::Cow;
use std::io::{self, Write};

use pcap_parser::pcapng::{
    DecryptionSecretsBlock, EnhancedPacketBlock, InterfaceDescriptionBlock, OptionCode,
    PcapNGOption, SecretsType, SectionHeaderBlock,
};
use pcap_parser::{Linktype, ToVec, BOM_MAGIC, DSB_MAGIC, EPB_MAGIC, IDB_MAGIC, SHB_MAGIC};

/// LINKTYPE_ETHERNET: frames as seen on an Ethernet or veth interface.
pub const LINKTYPE_ETHERNET: u16 = 1;

/// Secrets type of a Decryption Secrets Block holding an NSS TLS key log ("TLSK").
pub const SECRETS_TYPE_TLS_KEY_LOG: u32 = 0x544c_534b;

/// `if_tsresol` = 9: timestamps count 10^-9 s (the high bit clear means a power of ten).
const TSRESOL_NANOSECONDS: u8 = 9;

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

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// A block's bytes, with its lengths and padding fixed by pcap-parser.
fn serialise(block: &mut impl ToVec) -> io::Result<Vec<u8>> {
    block
        .to_vec()
        .map_err(|e| io::Error::other(format!("pcapng serialisation: {e:?}")))
}

/// A text option; refused when its value does not fit the option's 16-bit length.
fn text_option(code: OptionCode, value: &str) -> io::Result<PcapNGOption<'_>> {
    let len = u16::try_from(value.len()).map_err(|_| invalid("pcapng option too long"))?;
    Ok(PcapNGOption {
        code,
        len,
        value: Cow::Borrowed(value.as_bytes()),
    })
}

/// The largest body a block may carry so that its 32-bit total length (body, padding and
/// the 32 bytes of an EPB's fixed fields and options) cannot wrap.
fn check_block_body(len: usize, what: &str) -> io::Result<u32> {
    u32::try_from(len)
        .ok()
        .filter(|l| l.checked_add(64).is_some())
        .ok_or_else(|| invalid(what))
}

/// Writes a Section Header Block (spec section 4.1), version 1.0, section length unknown
/// (-1, so the file can be concatenated or streamed), with `shb_userappl`.
pub fn write_section_header<W: Write>(w: &mut W, user_application: &str) -> io::Result<()> {
    let mut shb = SectionHeaderBlock {
        block_type: SHB_MAGIC,
        block_len1: 0,
        bom: BOM_MAGIC,
        major_version: 1,
        minor_version: 0,
        section_len: -1,
        options: vec![text_option(OptionCode::ShbUserAppl, user_application)?],
        block_len2: 0,
    };
    w.write_all(&serialise(&mut shb)?)
}

/// Writes an Interface Description Block (spec section 4.2) with `if_name`,
/// `if_description` and `if_tsresol` = 9, so every Enhanced Packet Block timestamp of this
/// interface counts nanoseconds (pcap-parser adds `if_tsoffset` = 0 as well).
pub fn write_interface_description<W: Write>(
    w: &mut W,
    iface: &InterfaceDescription,
) -> io::Result<()> {
    let mut idb = InterfaceDescriptionBlock {
        block_type: IDB_MAGIC,
        block_len1: 0,
        linktype: Linktype(i32::from(iface.link_type)),
        reserved: 0,
        snaplen: iface.snap_len,
        options: vec![
            text_option(OptionCode::IfName, &iface.name)?,
            text_option(OptionCode::IfDescription, &iface.description)?,
            PcapNGOption {
                code: OptionCode::IfTsresol,
                len: 1,
                value: Cow::Borrowed(&[TSRESOL_NANOSECONDS]),
            },
        ],
        block_len2: 0,
        if_tsresol: TSRESOL_NANOSECONDS,
        if_tsoffset: 0,
    };
    w.write_all(&serialise(&mut idb)?)
}

/// Writes a Decryption Secrets Block (spec section 4.7) of type `TLSK` holding an NSS key
/// log (`CLIENT_RANDOM ...`, `CLIENT_HANDSHAKE_TRAFFIC_SECRET ...` lines) verbatim.
pub fn write_tls_key_log<W: Write>(w: &mut W, key_log: &[u8]) -> io::Result<()> {
    let secrets_len = check_block_body(key_log.len(), "key log too long")?;
    let mut dsb = DecryptionSecretsBlock {
        block_type: DSB_MAGIC,
        block_len1: 0,
        secrets_type: SecretsType(SECRETS_TYPE_TLS_KEY_LOG),
        secrets_len,
        data: key_log,
        options: Vec::new(),
        block_len2: 0,
    };
    w.write_all(&serialise(&mut dsb)?)
}

/// Writes an Enhanced Packet Block (spec section 4.3) for interface `interface_id`, with
/// the timestamp in nanoseconds (matching the `if_tsresol` = 9 this module writes).
pub fn write_enhanced_packet<W: Write>(
    w: &mut W,
    interface_id: u32,
    packet: &Packet<'_>,
) -> io::Result<()> {
    let captured = check_block_body(packet.data.len(), "packet too long")?;
    let ts = packet.timestamp_ns;
    let mut epb = EnhancedPacketBlock {
        block_type: EPB_MAGIC,
        block_len1: 0,
        if_id: interface_id,
        ts_high: (ts >> 32) as u32,
        ts_low: ts as u32,
        caplen: captured,
        // A wire length below the captured one would contradict the packet itself.
        origlen: packet.original_len.max(captured),
        data: packet.data,
        options: Vec::new(),
        block_len2: 0,
    };
    w.write_all(&serialise(&mut epb)?)
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
