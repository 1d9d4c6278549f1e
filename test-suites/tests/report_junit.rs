//! junit.xml, checked with an XML parser independent of the writer
//! (roxmltree): well-formed, one suite per group, right counts, failures
//! carrying what was seen and the evidence.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod report_fixture;

use std::fs;

use report_fixture::{sample, HOSTILE};
use roxmltree::{Document, Node};
use sacbench_suites::report::{self, JUNIT_XML};

fn attr<'a>(node: Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()))
}

fn children<'a, 'i>(node: Node<'a, 'i>, tag: &str) -> Vec<Node<'a, 'i>> {
    node.children().filter(|n| n.has_tag_name(tag)).collect()
}

fn written_junit() -> String {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    fs::read_to_string(dir.path().join(JUNIT_XML)).unwrap()
}

#[test]
fn one_suite_per_group_in_catalogue_order_with_counts() {
    let xml = written_junit();
    let doc = Document::parse(&xml).expect("junit.xml is not well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(attr(root, "tests"), "6");
    assert_eq!(attr(root, "failures"), "2");
    assert_eq!(attr(root, "errors"), "0");
    // Wall clock of the run: 10:00:00 → 10:02:00.
    assert_eq!(attr(root, "time").parse::<f64>().unwrap(), 120.0);

    let suites = children(root, "testsuite");
    let names: Vec<&str> = suites.iter().map(|s| attr(*s, "name")).collect();
    // The fixture lists CD before OTA; the catalogue order wins.
    assert_eq!(names, ["NI", "MT", "KR", "OTA", "CD"]);

    let counts: Vec<(&str, &str, &str)> = suites
        .iter()
        .map(|s| (attr(*s, "tests"), attr(*s, "failures"), attr(*s, "skipped")))
        .collect();
    assert_eq!(
        counts,
        [
            ("2", "1", "0"),
            ("1", "0", "0"),
            ("1", "0", "1"),
            ("1", "1", "0"),
            ("1", "0", "0")
        ]
    );

    // The NI suite's time is the sum of its cases: 61.25 s + 4.2 s.
    assert!((attr(suites[0], "time").parse::<f64>().unwrap() - 65.45).abs() < 1e-6);
    let props: Vec<(&str, &str)> = suites[0]
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .filter(|n| n.parent().is_some_and(|p| p.parent() == Some(suites[0])))
        .map(|n| (attr(n, "name"), attr(n, "value")))
        .collect();
    assert!(props.contains(&("fault", "listen-debug")), "{props:?}");
    assert!(props.contains(&("rig.name", "ci <runner>")), "{props:?}");
}

#[test]
fn cases_are_named_by_test_name_with_their_outcome() {
    let xml = written_junit();
    let doc = Document::parse(&xml).unwrap();
    let cases: Vec<Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| attr(*c, "name")).collect();
    assert_eq!(
        names,
        [
            "ni::NI-01_tcp_scan",
            "ni::NI-02_udp_probes",
            "mt::MT-03_aead_only",
            "kr::KR-04_power_loss_rotation",
            "ota::OTA-04_crash_revert",
            "cd::CD-01_offline_commands",
        ]
    );
    assert_eq!(attr(cases[0], "classname"), "sacbench.NI");
    assert_eq!(attr(cases[0], "time").parse::<f64>().unwrap(), 61.25);

    // NI-01 failed: the message is exactly what was seen (markup is text in XML).
    let failure = children(cases[0], "failure");
    assert_eq!(failure.len(), 1, "NI-01 must have one <failure>");
    assert_eq!(attr(failure[0], "message"), HOSTILE);
    let description = failure[0].text().unwrap_or_default();
    for part in [
        "expected: a TCP scan",
        "look at: frames 12 and 15",
        "(frames 12, 15)",
        "capture: cases/NI-01/capture.pcapng",
    ] {
        assert!(
            description.contains(part),
            "failure text lacks {part:?}:\n{description}"
        );
    }

    // A passed case has no failure and carries its evidence in system-out.
    assert!(children(cases[1], "failure").is_empty());
    let out = children(cases[1], "system-out");
    assert!(out[0].text().unwrap().contains("(frames 3, 4, 5)"), "{xml}");

    // The ignored case is skipped, with its reason.
    let skipped = children(cases[3], "skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(attr(skipped[0], "message"), "rig lacks capability: power");
    assert!(children(cases[3], "failure").is_empty());

    // OTA-04's multi-line `seen` is one line in the message, whole in the text.
    let failure = children(cases[4], "failure");
    assert_eq!(
        attr(failure[0], "message"),
        "device stayed on 2.0.0 after the crash: no revert"
    );
    let text = failure[0].text().unwrap_or_default();
    assert!(
        text.contains("seen: device stayed on 2.0.0 after the crash:\nno revert"),
        "{text}"
    );
}

#[test]
fn an_empty_run_is_still_valid_junit() {
    let mut empty = sample();
    empty.cases.clear();
    empty.summary = report::tally(&empty.cases);
    let xml = report::render_junit(&empty).unwrap();
    let doc = Document::parse(&xml).unwrap();
    assert_eq!(attr(doc.root_element(), "tests"), "0");
    assert!(children(doc.root_element(), "testsuite").is_empty());
}

#[test]
fn bench_errors_are_errors_and_not_applicable_cases_are_skipped_with_the_reason() {
    use sacbench_suites::model::Outcome;
    let mut r = sample();
    r.cases[0].outcome = Outcome::Error;
    r.cases[0].seen = "setup error: running tshark: No such file".into();
    r.cases[1].outcome = Outcome::NotApplicable;
    r.cases[1].seen = "X does not implement `ota`".into();
    r.summary = report::tally(&r.cases);
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &r).unwrap();
    let xml = fs::read_to_string(dir.path().join(JUNIT_XML)).unwrap();
    let doc = Document::parse(&xml).unwrap();
    let cases: Vec<Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let by_name = |name: &str| {
        *cases
            .iter()
            .find(|c| attr(**c, "name") == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let err = by_name(&r.cases[0].name);
    assert_eq!(
        children(err, "error").len(),
        1,
        "an <error>, not a <failure>"
    );
    assert!(children(err, "failure").is_empty());
    assert!(attr(children(err, "error")[0], "message").contains("tshark"));
    let na = by_name(&r.cases[1].name);
    let skipped = children(na, "skipped");
    assert_eq!(skipped.len(), 1);
    assert!(attr(skipped[0], "message").starts_with("not applicable: X does not implement"));
    assert_eq!(attr(doc.root_element(), "errors"), "1");
    // The page shows them apart, and the summary counts them.
    let html = fs::read_to_string(dir.path().join(report::INDEX_HTML)).unwrap();
    assert!(html.contains("badge error") && html.contains("badge not_applicable"));
    let text = report::summarise(&r);
    assert!(text.contains("1 error, 1 not applicable"), "{text}");
    assert!(
        text.contains(&format!("ERROR   {}", r.cases[0].id)),
        "{text}"
    );
}
