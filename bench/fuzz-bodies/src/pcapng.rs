//! The capture reader and analysis (`sacbench_capture::analyze`), on a
//! file's bytes and on packets written by the crate's own pcapng writer.

use sacbench_capture::analysis::{analyze_with_buffer, Analysis};
use sacbench_capture::pcapng::{write_pcapng, InterfaceDescription, Packet};
use sacbench_capture::FrameRef;

/// The reader's buffer: small, so each input does not allocate the 8 MiB
/// that `analyze` uses for real captures (a block larger than it makes the
/// reader grow it, a path the fuzzer reaches too).
const BUFFER: usize = 16 * 1024;

/// Link types the analysis decodes (and one it does not).
const LINK_TYPES: [u16; 6] = [1, 101, 113, 228, 229, 147];

/// Every fact must cite frames that exist, in order.
fn check(analysis: &Analysis) {
    let frames = analysis.frames;
    assert!(analysis.other_frames <= frames);
    let cited = |f: &FrameRef| assert!((1..=frames).contains(&f.number), "frame {f:?} cited");
    for flow in &analysis.tcp_flows {
        cited(&flow.first_frame);
        cited(&flow.last_frame);
        assert!(flow.first_frame.number <= flow.last_frame.number);
        flow.syns.iter().for_each(cited);
        flow.syn_ack.iter().for_each(cited);
        for dir in [&flow.to_server, &flow.to_client] {
            for f in [&dir.first_payload, &dir.fin, &dir.rst, &dir.gap]
                .into_iter()
                .flatten()
            {
                cited(f);
            }
        }
        let _ = (flow.tls_throughout(), flow.tls.version());
        for hello in &flow.tls.client_hellos {
            let _ = (hello.max_version(), hello.non_aead_suites());
        }
    }
    for udp in &analysis.udp_exchanges {
        cited(&udp.first_request);
        udp.first_reply.iter().for_each(cited);
        assert!(udp.requests >= 1);
    }
    for attempts in analysis.connection_attempts() {
        assert!(!attempts.syns.is_empty());
        assert!(attempts
            .syns
            .windows(2)
            .all(|w| w[0].frame.number <= w[1].frame.number));
        let _ = attempts.attempt_intervals_ns();
    }
}

/// The capture reader and streaming analysis (`sacbench_capture::analyze`,
/// with a 16 KiB read buffer:
/// pcapng and pcap blocks, Ethernet/SLL/raw IP, TCP flow tracking and
/// reassembly, TLS record walking and hello parsing, UDP exchanges), twice:
///
/// 1. the input as a capture file;
/// 2. the input as packets: byte 0 picks the link type, then each packet is
///    a length byte and that many bytes; they are written with the crate's
///    pcapng writer (`write_pcapng`, with a key log) and analysed — this
///    reaches the dissectors with any packet bytes, without the fuzzer
///    having to keep the pcapng framing valid.
///
/// Asserts: no panic; every frame an analysis cites exists (1..=frames), a
/// flow's first frame is not after its last, SYN attempts are in frame
/// order; for 2., the analysis reads back exactly the packets written.
pub fn pcapng_analysis(data: &[u8]) {
    match analyze_with_buffer(data, BUFFER) {
        Ok(analysis) => check(&analysis),
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    let (&link, mut rest) = data.split_first().unwrap_or((&0, &[]));
    let mut packets = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let (bytes, tail) = tail.split_at(usize::from(len).min(tail.len()));
        packets.push(Packet {
            timestamp_ns: 1_700_000_000_000_000_000 + packets.len() as u64 * 1_000_000,
            data: bytes,
            original_len: bytes.len() as u32,
        });
        rest = tail;
    }
    let iface = InterfaceDescription {
        name: "fuzz0".into(),
        description: "fuzz".into(),
        link_type: LINK_TYPES[usize::from(link) % LINK_TYPES.len()],
        snap_len: 65535,
    };
    let file = write_pcapng(
        Vec::new(),
        &iface,
        Some(b"CLIENT_RANDOM 00 00\n"),
        packets.iter().copied(),
    )
    .expect("writing to memory");
    let analysis =
        analyze_with_buffer(&file[..], BUFFER).expect("the writer's own file reads back");
    assert_eq!(
        analysis.frames,
        packets.len() as u64,
        "frames lost or added"
    );
    check(&analysis);
}
