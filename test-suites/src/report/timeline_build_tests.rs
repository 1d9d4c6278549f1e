use hub_fixture::journal::{Event, HandshakeFailure, JournalEntry, Listener};
use sacbench_capture::analysis::FlowOpening;
use sacbench_capture::analysis::{
    ClientHello, FrameSpan, ServerHello, TcpDirection, TlsAlert, TlsHandshake, TlsRecords,
};
use sacbench_capture::{Analysis, FrameRef, TcpFlow};

use super::*;

const ORIGIN: u64 = 1_700_000_000_000_000_000;

fn fr(number: u64, ms: u64) -> FrameRef {
    FrameRef {
        number,
        time_ns: ORIGIN + ms * 1_000_000,
    }
}

fn dir(packets: u64) -> TcpDirection {
    TcpDirection {
        packets,
        payload_bytes: packets * 100,
        first_payload: None,
        fin: None,
        rst: None,
        gap: None,
        tls: TlsRecords::default(),
    }
}

/// A TLS 1.3 flow, frames 1–8 at 100..800 ms, whose hub alerts (frame 6).
fn flow() -> TcpFlow {
    let mut to_client = dir(4);
    to_client.tls.cleartext_alerts.push(TlsAlert {
        frame: fr(6, 600),
        level: 2,
        description: 48,
    });
    to_client.fin = Some(fr(7, 700));
    TcpFlow {
        client: "10.0.0.2:40000".parse().unwrap(),
        server: "10.0.0.1:8883".parse().unwrap(),
        opening: FlowOpening::Syn,
        syns: vec![fr(1, 100)],
        syn_ack: Some(fr(2, 200)),
        first_frame: fr(1, 100),
        last_frame: fr(8, 800),
        to_server: dir(4),
        to_client,
        tls: TlsHandshake {
            client_hellos: vec![ClientHello {
                frames: FrameSpan {
                    first: fr(4, 400),
                    last: fr(4, 400),
                },
                legacy_version: 0x0303,
                supported_versions: vec![0x0304],
                cipher_suites: vec![0x1301],
                sni: Some("hub.<test>".into()),
                alpn: vec![],
                extensions: vec![],
            }],
            server_hello: Some(ServerHello {
                frames: FrameSpan {
                    first: fr(5, 500),
                    last: fr(5, 500),
                },
                legacy_version: 0x0303,
                selected_version: Some(0x0304),
                cipher_suite: 0x1301,
                hello_retry_request: false,
            }),
            hello_retry_request: None,
        },
    }
}

fn entry(seq: u64, mono_ms: u64, event: Event) -> JournalEntry {
    JournalEntry {
        seq,
        at_ms: 1_000_000,
        mono_us: mono_ms * 1000,
        device_id: Some("dut-1".into()),
        peer: None,
        event,
    }
}

fn sources<'a>(
    journal: &'a [JournalEntry],
    analysis: &'a Analysis,
    times: &'a [u64],
    mqtt: &'a [MqttPacket],
    rig: &'a [RigAction],
    dut: &'a [StampedLine],
    evidence: &'a [Evidence],
) -> Sources<'a> {
    Sources {
        origin_unix_ns: ORIGIN,
        duration_us: 2_000_000,
        journal,
        // The hub started 50 ms into the case.
        journal_offset_us: 50_000,
        analysis: Some(analysis),
        frame_times_ns: times,
        mqtt,
        rig,
        rig_notes: &[],
        dut,
        evidence,
    }
}

#[test]
fn every_source_lands_on_its_lane_on_one_axis_with_the_cited_ones_marked() {
    let journal = [
        entry(
            3,
            500,
            Event::HandshakeFailed {
                listener: Listener::Mqtt,
                reason: HandshakeFailure::UnknownIssuer,
                detail: "<b>bad</b>".into(),
            },
        ),
        entry(
            4,
            900,
            Event::Subscribed {
                filters: vec!["x".into()],
            },
        ),
    ];
    let analysis = Analysis {
        frames: 9,
        other_frames: 0,
        tcp_flows: vec![flow()],
        udp_exchanges: vec![],
    };
    let times: Vec<u64> = (1..=9).map(|n| ORIGIN + n * 100_000_000).collect();
    let mqtt = [MqttPacket {
        frame: 8,
        to_server: true,
        name: "CONNECT".into(),
        detail: "client id dut-1".into(),
    }];
    let rig = [
        RigAction {
            at_us: 10_000,
            end_us: 20_000,
            what: "power on".into(),
            error: None,
        },
        RigAction {
            at_us: 1_000_000,
            end_us: 1_000_100,
            what: "link down".into(),
            error: Some("no such interface".into()),
        },
    ];
    let dut = [StampedLine {
        at_ns: ORIGIN + 1_500_000_000,
        name: "command_applied".into(),
        text: "applied mid=7".into(),
    }];
    let evidence = [
        Evidence::frames("the hub's alert", [6]),
        Evidence::journal("refused", [3]),
        Evidence::frames("a frame nothing else stands for", [9]),
        Evidence::note("a remark"),
    ];
    let t = build(&sources(
        &journal, &analysis, &times, &mqtt, &rig, &dut, &evidence,
    ));

    // The journal's mono_us is moved by its offset: 500 ms + 50 ms.
    let refused = t.lane(Lane::Hub).find(|e| e.seqs == Some((3, 3))).unwrap();
    assert_eq!(refused.at_us, 550_000);
    assert!(refused.alarm && refused.label == "TLS refused: unknown_issuer");
    assert!(
        refused.detail.contains("<b>bad</b>"),
        "raw text: the SVG escapes"
    );
    assert_eq!(refused.cites, vec![1]);

    // Capture times are wall clock, moved by the origin.
    let labels: Vec<&str> = t.lane(Lane::Network).map(|e| e.label.as_str()).collect();
    for want in [
        "flow",
        "SYN",
        "SYN-ACK",
        "ClientHello",
        "ServerHello",
        "alert 48",
        "FIN",
        "CONNECT",
        "frame 9",
    ] {
        assert!(labels.contains(&want), "{want} missing from {labels:?}");
    }
    let alert = t
        .lane(Lane::Network)
        .find(|e| e.label == "alert 48")
        .unwrap();
    assert_eq!(
        (alert.at_us, alert.alarm, alert.cites.clone()),
        (600_000, true, vec![0])
    );
    let flow = t.lane(Lane::Network).find(|e| e.label == "flow").unwrap();
    assert_eq!(
        (flow.at_us, flow.end_us, flow.frames),
        (100_000, Some(800_000), None)
    );
    assert!(
        flow.cites.is_empty(),
        "the flow span is not what frame 6 is"
    );
    let hello = t
        .lane(Lane::Network)
        .find(|e| e.label == "ClientHello")
        .unwrap();
    assert!(hello.detail.contains("SNI hub.<test>") && hello.detail.contains("TLS 1.3"));
    let server = t
        .lane(Lane::Network)
        .find(|e| e.label == "ServerHello")
        .unwrap();
    assert!(
        server.detail.contains("TLS_AES_128_GCM_SHA256"),
        "{}",
        server.detail
    );
    let connect = t
        .lane(Lane::Network)
        .find(|e| e.label == "CONNECT")
        .unwrap();
    assert_eq!(connect.at_us, 800_000);
    assert!(connect.detail.contains("device → hub"));
    let extra = t
        .lane(Lane::Network)
        .find(|e| e.label == "frame 9")
        .unwrap();
    assert_eq!((extra.at_us, extra.cites.clone()), (900_000, vec![2]));

    let rig: Vec<_> = t.lane(Lane::Rig).collect();
    assert_eq!(rig.len(), 2);
    assert_eq!(
        (rig[0].at_us, rig[0].end_us, rig[0].alarm),
        (10_000, Some(20_000), false)
    );
    assert!(rig[1].alarm && rig[1].detail.contains("no such interface"));
    let dut: Vec<_> = t.lane(Lane::Dut).collect();
    assert_eq!(
        (dut[0].at_us, dut[0].label.as_str()),
        (1_500_000, "command_applied")
    );

    // Nothing cites the note: it has no place on the axis.
    assert!(t.events.iter().all(|e| !e.cites.contains(&3)));
    assert!(t.events.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    assert_eq!(t.duration_us, 2_000_000);
}

#[test]
fn a_flood_of_journal_entries_is_compacted_and_long_details_cut() {
    let journal: Vec<JournalEntry> = (1..=5_000)
        .map(|i| {
            entry(
                i,
                i / 10,
                Event::Telemetry {
                    topic: "devices/dut-1/messages/events/".into(),
                    qos: 1,
                    size: 2000,
                    properties: vec![],
                    payload: "x".repeat(2000),
                },
            )
        })
        .collect();
    let analysis = Analysis {
        frames: 0,
        other_frames: 0,
        tcp_flows: vec![],
        udp_exchanges: vec![],
    };
    let evidence = [Evidence::journal("the 4000th", [4000])];
    let t = build(&sources(&journal, &analysis, &[], &[], &[], &[], &evidence));
    let hub: Vec<_> = t.lane(Lane::Hub).collect();
    assert!(hub.len() <= 81, "{}", hub.len());
    assert_eq!(hub.iter().map(|e| e.count).sum::<u64>(), 5_000);
    let cited = hub.iter().find(|e| e.cites == vec![0]).unwrap();
    assert_eq!((cited.seqs, cited.count), (Some((4000, 4000)), 1));
    assert!(t.events.iter().all(|e| e.detail.chars().count() <= 241));
}
