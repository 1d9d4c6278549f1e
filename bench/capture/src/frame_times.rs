//! Each frame's capture time, by frame number: what places a frame a
//! verdict cites, or an MQTT packet read from a decrypted flow (which knows
//! only its frame), on a time axis. One pass over the blocks, numbering
//! frames as [`crate::analysis`] and tshark do (every packet block, from 1).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

use crate::analysis::{short_block, to_ns, AnalysisError};

/// The capture time (ns since the Unix epoch) of every frame of the capture
/// at `path`: index 0 is frame 1. A Simple Packet Block has no time: 0.
pub fn frame_times_file(path: impl AsRef<Path>) -> Result<Vec<u64>, AnalysisError> {
    frame_times(File::open(path)?)
}

/// [`frame_times_file`] of a pcapng (or pcap) stream.
pub fn frame_times<R: Read + Send>(reader: R) -> Result<Vec<u64>, AnalysisError> {
    let bad = |offset: usize, reason: String| AnalysisError::Malformed { offset, reason };
    let mut reader = create_reader(1 << 20, reader).map_err(|e| bad(0, format!("{e:?}")))?;
    // Per interface of the current section: (units per second, offset in seconds).
    let mut interfaces: Vec<(u64, i64)> = Vec::new();
    let mut legacy_units = 1_000_000;
    let mut big_endian: Option<bool> = None;
    let mut times = Vec::new();
    loop {
        if let Some(len) = big_endian.and_then(|be| short_block(reader.data(), be)) {
            return Err(bad(reader.consumed(), format!("block total length {len}")));
        }
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        big_endian = Some(shb.big_endian());
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let units = idb.ts_resolution().unwrap_or(1_000_000);
                        interfaces.push((units, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (units, offset_s) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((1_000_000, 0));
                        let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        times
                            .push(to_ns(ts, units).saturating_add_signed(offset_s * 1_000_000_000));
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(_)) => times.push(0),
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_units = if h.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                    }
                    PcapBlockOwned::Legacy(b) => times.push(
                        u64::from(b.ts_sec) * 1_000_000_000
                            + to_ns(u64::from(b.ts_usec), legacy_units),
                    ),
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(consumed);
            }
            Err(PcapError::Eof) => return Ok(times),
            Err(PcapError::Incomplete(_)) => {
                let at = reader.consumed();
                reader.refill().map_err(|e| bad(at, format!("{e:?}")))?;
            }
            Err(PcapError::BufferTooSmall) => {
                let bigger = reader.data().len().max(1 << 20) * 2;
                let at = reader.consumed();
                if !reader.grow(bigger) {
                    return Err(bad(at, "block larger than the read buffer".into()));
                }
                reader.refill().map_err(|e| bad(at, format!("{e:?}")))?;
            }
            Err(e) => {
                let reason = format!("{e:?}");
                return Err(bad(reader.consumed(), reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcapng::{write_pcapng, InterfaceDescription, Packet, LINKTYPE_ETHERNET};

    #[test]
    fn every_frame_gets_its_time_in_file_order() {
        let t0 = 1_700_000_000_123_456_789u64;
        let data = [0u8; 60];
        let packets = (0..5u64).map(|i| Packet {
            timestamp_ns: t0 + i * 1_000_001,
            data: &data,
            original_len: 60,
        });
        let iface = InterfaceDescription {
            name: "veth".into(),
            description: "test".into(),
            link_type: LINKTYPE_ETHERNET,
            snap_len: 65535,
        };
        let file = write_pcapng(Vec::new(), &iface, Some(b"CLIENT_RANDOM x y\n"), packets).unwrap();
        let times = frame_times(&file[..]).unwrap();
        assert_eq!(
            times,
            (0..5).map(|i| t0 + i * 1_000_001).collect::<Vec<_>>()
        );
        assert!(frame_times(&b"not a capture"[..]).is_err());
    }
}
