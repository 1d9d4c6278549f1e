use super::*;
use crate::report::timeline::TimelineEvent;

const SVG_NS: &str = "http://www.w3.org/2000/svg";

fn sample() -> (Timeline, Vec<Evidence>) {
    let mut alert = TimelineEvent::new(
        Lane::Network,
        600_000,
        "alert 48",
        "hub said <unknown_ca> & \"left\"",
    )
    .frames(6, 6)
    .alarm(true);
    alert.cites = vec![0];
    let mut refused = TimelineEvent::new(Lane::Hub, 550_000, "TLS refused", "journal seq 3").seq(3);
    refused.cites = vec![1];
    let events = vec![
        refused,
        TimelineEvent::new(Lane::Hub, 900_000, "subscribed", "x").seq(4),
        alert,
        TimelineEvent::new(Lane::Network, 100_000, "flow", "TCP").until(800_000),
        TimelineEvent::new(Lane::Rig, 10_000, "power on", "took 10 ms").until(20_000),
        TimelineEvent::new(
            Lane::Dut,
            1_500_000,
            "command_applied",
            "applied mid=<7>\u{1}",
        ),
    ];
    let evidence = vec![
        Evidence::frames("the hub's alert </svg><script>alert(1)</script>", [6]),
        Evidence::journal("refused", [3]),
        Evidence::note("a remark"),
    ];
    (Timeline::new(0, 2_000_000, events), evidence)
}

fn parse(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
}

fn classes<'a>(n: &roxmltree::Node<'a, '_>) -> Vec<&'a str> {
    n.attribute("class").unwrap_or("").split(' ').collect()
}

#[test]
fn lanes_events_axis_and_cited_evidence_are_all_there() {
    let (t, evidence) = sample();
    let svg = render_svg(&t, &evidence);
    let doc = parse(&svg);
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some(SVG_NS));
    assert_eq!(root.tag_name().name(), "svg");

    let lanes: Vec<&str> = root
        .children()
        .filter(|n| n.has_tag_name((SVG_NS, "g")) && classes(n) == ["lane"])
        .map(|n| n.attribute("data-lane").unwrap())
        .collect();
    assert_eq!(lanes, ["hub", "network", "rig", "dut"]);

    let events: Vec<_> = root
        .descendants()
        .filter(|n| classes(n).contains(&"ev"))
        .collect();
    assert_eq!(events.len(), 6);
    for e in &events {
        let title = e
            .children()
            .find(|c| c.has_tag_name((SVG_NS, "title")))
            .unwrap();
        assert!(
            !title.text().unwrap().is_empty(),
            "every event has a tooltip"
        );
    }
    let cited: Vec<_> = events
        .iter()
        .filter(|n| classes(n).contains(&"cited"))
        .collect();
    assert_eq!(cited.len(), 2);
    let alert = cited
        .iter()
        .find(|n| n.attribute("data-frames") == Some("6-6"))
        .unwrap();
    assert_eq!(alert.attribute("data-cites"), Some("1"));
    assert!(classes(alert).contains(&"alarm"));
    assert_eq!(
        alert.parent().unwrap().attribute("data-lane"),
        Some("network")
    );
    let label = alert
        .descendants()
        .find(|n| classes(n) == ["cite-label"])
        .unwrap();
    assert_eq!(label.text(), Some("E1"));
    assert!(alert.descendants().any(|n| classes(&n) == ["ring"]));
    let refused = cited
        .iter()
        .find(|n| n.attribute("data-seqs") == Some("3-3"))
        .unwrap();
    assert_eq!(refused.attribute("data-cites"), Some("2"));

    // Spans are bars as wide as they last; points are dots.
    let flow = events
        .iter()
        .find(|n| n.attribute("data-at-us") == Some("100000"))
        .unwrap();
    let bar = flow
        .children()
        .find(|c| c.has_tag_name((SVG_NS, "rect")))
        .unwrap();
    let w: f64 = bar.attribute("width").unwrap().parse().unwrap();
    assert!((w - 0.35 * (960.0 - 78.0 - 14.0)).abs() < 1.0, "{w}");

    // The rig's actions are named on the picture; other lanes' marks only
    // in their tooltips.
    let named: Vec<&str> = root
        .descendants()
        .filter(|n| classes(n) == ["ev-label"])
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(named, ["power on"]);

    // The axis has labelled ticks from 0 to the end.
    let ticks: Vec<&str> = root
        .descendants()
        .filter(|n| classes(n) == ["tick"])
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(ticks.first(), Some(&"0"));
    assert_eq!(ticks.last(), Some(&"2 s"));
    assert!(ticks.len() >= 5 && ticks.len() <= 11, "{ticks:?}");

    // The legend names every piece of evidence, placed or not.
    let legend: Vec<String> = root
        .descendants()
        .filter(|n| classes(n) == ["legend"])
        .map(|n| n.text().unwrap().to_string())
        .collect();
    assert_eq!(legend.len(), 3);
    assert!(
        legend[0].starts_with("E1 capture (frame 6): the hub's alert </svg><script>"),
        "{}",
        legend[0]
    );
    assert!(legend[2].contains("no time of its own"), "{}", legend[2]);
}

#[test]
fn device_text_stays_text_and_nothing_external_or_active_is_emitted() {
    let (t, evidence) = sample();
    let svg = render_svg(&t, &evidence);
    let doc = parse(&svg);
    assert!(!doc
        .descendants()
        .any(|n| n.has_tag_name((SVG_NS, "script"))));
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes() {
            assert!(!a.name().starts_with("on"), "event handler {}", a.name());
            assert!(a.name() != "href", "link in {svg}");
        }
    }
    assert!(!svg.contains("url("), "external reference");
    let dut = doc
        .descendants()
        .find(|n| n.attribute("data-at-us") == Some("1500000"))
        .unwrap();
    let title = dut
        .children()
        .find(|c| c.has_tag_name((SVG_NS, "title")))
        .unwrap();
    assert_eq!(
        title.text(),
        Some("1.5 s: command_applied — applied mid=<7>\u{fffd}")
    );
}

#[test]
fn ten_thousand_events_draw_a_small_picture() {
    let mut events: Vec<TimelineEvent> = (0..10_000u64)
        .map(|i| {
            let lane = Lane::ALL[(i % 4) as usize];
            TimelineEvent::new(lane, i * 1_000, "PUBLISH", "x".repeat(200)).frames(i + 1, i + 1)
        })
        .collect();
    events[4242].cites = vec![0];
    let t = Timeline::new(0, 10_000_000, events);
    let svg = render_svg(&t, &[Evidence::frames("that one", [4243])]);
    assert!(svg.len() < 200_000, "{} bytes", svg.len());
    let doc = parse(&svg);
    let cited: Vec<_> = doc
        .descendants()
        .filter(|n| classes(n).contains(&"cited"))
        .collect();
    assert_eq!(cited.len(), 1);
    assert_eq!(cited[0].attribute("data-frames"), Some("4243-4243"));
    let folded = doc
        .descendants()
        .filter(|n| classes(n).contains(&"span"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name((SVG_NS, "title"))))
        .filter(|t| t.text().unwrap().contains("× PUBLISH"))
        .count();
    assert!(folded >= 4 * 70, "{folded}");
}

#[test]
fn an_empty_timeline_still_draws_its_lanes_and_axis() {
    let svg = render_svg(&Timeline::new(0, 0, vec![]), &[]);
    let doc = parse(&svg);
    assert_eq!(
        doc.descendants().filter(|n| classes(n) == ["lane"]).count(),
        4
    );
    assert!(doc.descendants().any(|n| classes(&n) == ["tick"]));
}

#[test]
fn times_read_naturally_and_ticks_are_round() {
    assert_eq!(time_label(0), "0");
    assert_eq!(time_label(500), "500 µs");
    assert_eq!(time_label(850_000), "850 ms");
    assert_eq!(time_label(12_500_000), "12.5 s");
    assert_eq!(time_label(245_000_000), "4:05");
    assert_eq!(tick_step(2_000_000), 200_000);
    assert_eq!(tick_step(7_300_000), 1_000_000);
    assert_eq!(tick_step(0), 1);
}
