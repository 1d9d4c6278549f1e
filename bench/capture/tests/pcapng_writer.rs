//! The pcapng writer checked three ways: byte for byte against the layout the pcapng
//! specification gives (independent of the library that serialises the blocks), read back
//! by pcap-parser's reader over every padding case, and read by Wireshark's own tools
//! (`capinfos`, `tshark`; Debian package `tshark`), which must see the interface, the
//! nanosecond timestamps, the lengths and the embedded key log.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::io::Cursor;
use std::process::Command;

use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use sacbench_capture::pcapng::{
    write_enhanced_packet, write_interface_description, write_pcapng, write_section_header,
    write_tls_key_log, InterfaceDescription, Packet, LINKTYPE_ETHERNET,
};

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// Concatenates byte pieces, so an expected block reads as its fields.
fn bytes(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn section_header_block_is_laid_out_as_specified() {
    let mut out = Vec::new();
    write_section_header(&mut out, "abc").unwrap();
    // 28 fixed bytes + shb_userappl (4 + 3 + 1 padding) + opt_endofopt (4).
    let expected = bytes(&[
        &le32(0x0A0D_0D0A),
        &le32(40),
        &le32(0x1A2B_3C4D),
        &1u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &(-1i64).to_le_bytes(),
        &[4, 0, 3, 0, b'a', b'b', b'c', 0],
        &[0, 0, 0, 0],
        &le32(40),
    ]);
    assert_eq!(out, expected);
}

#[test]
fn interface_description_block_is_laid_out_as_specified() {
    let mut out = Vec::new();
    let iface = InterfaceDescription {
        name: "g0".into(),
        description: "hub".into(),
        link_type: LINKTYPE_ETHERNET,
        snap_len: 262_144,
    };
    write_interface_description(&mut out, &iface).unwrap();
    // 20 fixed bytes + if_name (8) + if_description (8) + if_tsresol (8)
    // + if_tsoffset (4 + 8) + opt_endofopt (4) = 60.
    let expected = bytes(&[
        &le32(1),
        &le32(60),
        &1u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &le32(262_144),
        &[2, 0, 2, 0, b'g', b'0', 0, 0],
        &[3, 0, 3, 0, b'h', b'u', b'b', 0],
        &[9, 0, 1, 0, 9, 0, 0, 0],
        &[14, 0, 8, 0],
        &0i64.to_le_bytes(),
        &[0, 0, 0, 0],
        &le32(60),
    ]);
    assert_eq!(out, expected);
}

#[test]
fn decryption_secrets_block_is_laid_out_as_specified() {
    let mut out = Vec::new();
    write_tls_key_log(&mut out, b"KEYS\n!").unwrap();
    let expected = bytes(&[
        &le32(0x0000_000A),
        &le32(28),
        b"KSLT", // 0x544c534b little-endian
        &le32(6),
        b"KEYS\n!",
        &[0, 0],
        &le32(28),
    ]);
    assert_eq!(out, expected);
}

#[test]
fn enhanced_packet_block_is_laid_out_as_specified() {
    let mut out = Vec::new();
    let packet = Packet {
        timestamp_ns: (7 << 32) | 5,
        data: &[0xAA, 0xBB, 0xCC, 0xDD, 0xEE],
        original_len: 1500,
    };
    write_enhanced_packet(&mut out, 3, &packet).unwrap();
    let expected = bytes(&[
        &le32(6),
        &le32(40),
        &le32(3),
        &le32(7),
        &le32(5),
        &le32(5),
        &le32(1500),
        &[0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0, 0, 0],
        &le32(40),
    ]);
    assert_eq!(out, expected);

    // A wire length below the captured one is raised to it.
    let mut out = Vec::new();
    let short = Packet {
        original_len: 1,
        ..packet
    };
    write_enhanced_packet(&mut out, 0, &short).unwrap();
    assert_eq!(&out[24..28], &le32(5));
}

#[test]
fn an_option_too_long_for_its_length_field_is_refused() {
    let iface = InterfaceDescription {
        name: "x".repeat(70_000),
        description: String::new(),
        link_type: LINKTYPE_ETHERNET,
        snap_len: 65_535,
    };
    let err = write_interface_description(&mut Vec::new(), &iface).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

const T0: u64 = 1_700_000_000_123_456_789;

fn iface() -> InterfaceDescription {
    InterfaceDescription {
        name: "veth-x".into(),
        description: "odd lengths".into(),
        link_type: LINKTYPE_ETHERNET,
        snap_len: 262_144,
    }
}

/// Payloads of every length from 0 to 9: each padding case, twice.
fn payloads() -> Vec<Vec<u8>> {
    (0..10u8)
        .map(|n| (0..n).map(|i| i ^ 0x5A).collect())
        .collect()
}

fn file_with(key_log: &[u8], payloads: &[Vec<u8>]) -> Vec<u8> {
    let packets = payloads.iter().enumerate().map(|(i, d)| Packet {
        timestamp_ns: T0 + i as u64 * 1_000_000_001,
        data: d,
        original_len: d.len() as u32 + (i as u32 % 2) * 100,
    });
    write_pcapng(Vec::new(), &iface(), Some(key_log), packets).unwrap()
}

#[test]
fn every_padding_case_reads_back_through_pcap_parser() {
    let payloads = payloads();
    for key_log_len in 1..=4usize {
        let key_log: Vec<u8> = (0..key_log_len as u8).map(|i| b'a' + i).collect();
        let file = file_with(&key_log, &payloads);
        assert_eq!(file.len() % 4, 0);

        // Walk the blocks by their own lengths: both copies agree, every block is
        // 32-bit aligned, and they tile the file exactly.
        let mut at = 0;
        let mut lengths = Vec::new();
        while at < file.len() {
            let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0, "block at {at} has length {len}");
            let trailer = u32::from_le_bytes(file[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(
                trailer as usize, len,
                "block at {at}: trailing length differs"
            );
            lengths.push(len);
            at += len;
        }
        assert_eq!(at, file.len());
        assert_eq!(lengths.len(), 3 + payloads.len());

        let mut reader = PcapNGReader::new(65_536, Cursor::new(file)).unwrap();
        let mut packets = Vec::new();
        let mut secrets = Vec::new();
        loop {
            match reader.next() {
                Ok((offset, block)) => {
                    match block {
                        PcapBlockOwned::NG(Block::DecryptionSecrets(dsb)) => {
                            assert_eq!(dsb.secrets_type, SecretsType::TlsKeyLog);
                            // The reader hands back the secrets with their padding.
                            assert_eq!(dsb.data.len() % 4, 0);
                            secrets.push(dsb.data[..dsb.secrets_len as usize].to_vec());
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            packets.push((ts, epb.caplen, epb.origlen, epb.data.to_vec()));
                        }
                        _ => {}
                    }
                    reader.consume(offset);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
                Err(e) => panic!("pcapng error: {e:?}"),
            }
        }
        assert_eq!(secrets, [key_log]);
        assert_eq!(packets.len(), payloads.len());
        for (i, ((ts, caplen, origlen, data), payload)) in packets.iter().zip(&payloads).enumerate()
        {
            assert_eq!(*ts, T0 + i as u64 * 1_000_000_001);
            assert_eq!(*caplen as usize, payload.len());
            assert_eq!(*origlen, payload.len() as u32 + (i as u32 % 2) * 100);
            // The reader hands back the captured bytes without their padding.
            assert_eq!(&data[..*caplen as usize], &payload[..]);
        }
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (apt-get install tshark): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn wiresharks_tools_read_the_file_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.pcapng");
    let payloads = payloads();
    std::fs::write(&path, file_with(b"CLIENT_RANDOM 00 11\n", &payloads)).unwrap();
    let path = path.to_str().unwrap();

    let info = run("capinfos", &[path]);
    for line in [
        "File encapsulation:  Ethernet",
        "Number of packets:   10",
        "Capture application: sacbench-capture",
        "Number of interfaces in file: 1",
        "Name = veth-x",
        "Description = odd lengths",
        "Time precision = nanoseconds (9)",
        "Number of decryption secrets in file: 1",
    ] {
        assert!(info.contains(line), "capinfos lacks {line:?}:\n{info}");
    }

    let frames = run(
        "tshark",
        &[
            "-r",
            path,
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ],
    );
    let rows: Vec<Vec<&str>> = frames.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), payloads.len(), "{frames}");
    for (i, row) in rows.iter().enumerate() {
        let ts = T0 + i as u64 * 1_000_000_001;
        let epoch = format!("{}.{:09}", ts / 1_000_000_000, ts % 1_000_000_000);
        let cap = payloads[i].len();
        let wire = cap + (i % 2) * 100;
        assert_eq!(
            row,
            &[
                (i + 1).to_string().as_str(),
                epoch.as_str(),
                cap.to_string().as_str(),
                wire.to_string().as_str()
            ],
            "frame {}",
            i + 1
        );
    }
}
