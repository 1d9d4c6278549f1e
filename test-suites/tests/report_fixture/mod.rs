//! A run report shaped like a real fault run, shared by the `report_*`
//! tests: two failures with frame and journal evidence, passes, an ignored
//! case, and text a hostile device could have put in a verdict.

#![allow(dead_code)] // each test crate uses a different part of it

use sacbench_suites::model::{
    Artifacts, CaseKind, CaseResult, DutInfo, Evidence, Outcome, RigInfo, RunReport, Summary,
    Tally, SCHEMA,
};
use sacbench_suites::report;
use sacbench_suites::report::timeline::{Lane, Timeline, TimelineEvent, TIMELINE_JSON};
use sacbench_suites::standards;

/// Markup in the `seen` text of NI-01: it must reach every report as text.
pub const HOSTILE: &str =
    "port 23 open: banner <script>document.body.setAttribute('data-pwned','yes')</script> \"><img src=x onerror=alert(1)>";

/// The frames NI-01's evidence cites.
pub const NI01_FRAMES: [u64; 2] = [12, 15];

fn artifacts(id: &str) -> Artifacts {
    Artifacts {
        capture: Some(format!("cases/{id}/capture.pcapng")),
        journal: Some(format!("cases/{id}/journal.jsonl")),
        device_log: Some(format!("cases/{id}/device.log")),
        timeline: None,
    }
}

fn case(id: &str, name: &str, title: &str, outcome: Outcome, ms: u64) -> CaseResult {
    CaseResult {
        kind: CaseKind::Device,
        id: id.into(),
        name: name.into(),
        title: title.into(),
        outcome,
        duration_ms: ms,
        expected: format!("{id} holds"),
        seen: format!("{id} held"),
        look_at: String::new(),
        evidence: Vec::new(),
        artifacts: artifacts(id),
        // The ids are the catalogue's: the requirements of the real mapping.
        standards: standards::for_case(id),
    }
}

/// The sample run: NI-01 failed (hostile text), NI-02 passed, MT-03 passed,
/// KR-04 ignored, OTA-04 failed, CD-01 passed — listed out of catalogue
/// order on purpose (CD before OTA) so that grouping is exercised.
pub fn sample() -> RunReport {
    let mut ni01 = case(
        "NI-01",
        "ni::NI-01_tcp_scan",
        "No TCP port open",
        Outcome::Failed,
        61_250,
    );
    ni01.expected = "a TCP scan of all 65535 ports finds none open".into();
    ni01.seen = HOSTILE.into();
    ni01.look_at = "frames 12 and 15 of the capture: the SYN/ACK from the DUT".into();
    ni01.evidence = vec![
        Evidence::frames("SYN to DUT port 23 answered with SYN/ACK", NI01_FRAMES),
        Evidence::scan("open: 23/tcp"),
        Evidence::note("fault listen-debug is on"),
    ];

    let mut ni02 = case(
        "NI-02",
        "ni::NI-02_udp_probes",
        "No UDP service answers",
        Outcome::Passed,
        4_200,
    );
    ni02.evidence = vec![Evidence::frames("probes sent, no reply", [3, 4, 5])];

    let mut mt03 = case(
        "MT-03",
        "mt::MT-03_aead_only",
        "AEAD suites only & no RC4",
        Outcome::Passed,
        900,
    );
    mt03.evidence = vec![Evidence::frames("ClientHello", [7])];

    let mut kr04 = case(
        "KR-04",
        "kr::KR-04_power_loss_rotation",
        "Rotation survives power loss",
        Outcome::Ignored,
        0,
    );
    kr04.seen = "rig lacks capability: power".into();
    kr04.artifacts = Artifacts::default();

    let mut cd01 = case(
        "CD-01",
        "cd::CD-01_offline_commands",
        "Commands while offline",
        Outcome::Passed,
        15_000,
    );
    cd01.evidence = vec![Evidence::journal(
        "5 commands delivered in order",
        [40, 41, 42, 43, 44],
    )];

    let mut ota04 = case(
        "OTA-04",
        "ota::OTA-04_crash_revert",
        "Crashing image reverts",
        Outcome::Failed,
        30_500,
    );
    ota04.seen = "device stayed on 2.0.0 after the crash:\nno revert".into();
    ota04.look_at = "device.log around the second boot".into();
    ota04.evidence = vec![
        Evidence::journal("reconnect reported version 2.0.0", [77]),
        Evidence::log("boot: slot 1 confirmed at boot"),
    ];
    // A file name that needs percent-encoding in a link.
    ota04.artifacts.device_log = Some("cases/OTA-04/device log #2.txt".into());

    let cases = vec![ni01, ni02, mt03, kr04, cd01, ota04];
    let summary = Summary {
        total: 6,
        passed: 3,
        failed: 2,
        error: 0,
        not_applicable: 0,
        ignored: 1,
        device: Tally {
            total: 6,
            passed: 3,
            failed: 2,
            ignored: 1,
            ..Tally::default()
        },
        self_test: Tally::default(),
    };
    RunReport {
        schema: SCHEMA.into(),
        started_at: "2026-04-02T10:00:00Z".into(),
        finished_at: "2026-04-02T10:02:00Z".into(),
        rig: RigInfo {
            kind: "emulated".into(),
            name: "ci <runner>".into(),
        },
        dut: None,
        interrupted: None,
        fault: Some("listen-debug".into()),
        commit: None,
        summary,
        cases,
        documentation_review: standards::documentation_review(),
    }
}

/// Markup, both quote kinds and `&`: what [`hostile_everywhere`] puts in
/// every text field of a run.
pub const EVERYWHERE: &str = "<script>alert('x')</script> \"q\" & <b>bold</b>";

/// Places [`EVERYWHERE`] fills in [`hostile_everywhere`], each one escaped
/// whole on the page: rig kind and name, the DUT's name, file and one
/// contract part, fault, interruption, start, finish, schema (10); the
/// first case's name, title (table and heading), expected, seen, look at,
/// five pieces of evidence (one per kind: a device log line among them)
/// and three file paths (14); the second case's id (row attribute, link
/// target and text; section id and heading: 5).
pub const EVERYWHERE_PLACES: usize = 10 + 14 + 5;

/// A run whose every free-text field a device, a DUT file or a rig file
/// could fill holds [`EVERYWHERE`] (with `text` in its place instead, the
/// same run for comparison).
pub fn hostile_everywhere(text: &str) -> RunReport {
    let mut run = sample();
    run.cases.truncate(2);
    run.rig = RigInfo {
        kind: text.into(),
        name: text.into(),
    };
    run.dut = Some(DutInfo {
        name: text.into(),
        file: text.into(),
        implements: vec![text.into()],
        sha256: None,
    });
    run.fault = Some(text.into());
    run.interrupted = Some(text.into());
    run.started_at = text.into();
    run.finished_at = text.into();
    run.schema = text.into();
    let first = &mut run.cases[0];
    first.name = text.into();
    first.title = text.into();
    first.expected = text.into();
    first.seen = text.into();
    first.look_at = text.into();
    first.evidence = vec![
        Evidence::frames(text, [1, 2]),
        Evidence::journal(text, [3]),
        Evidence::log(text),
        Evidence::scan(text),
        Evidence::note(text),
    ];
    first.artifacts = Artifacts {
        capture: Some(text.into()),
        journal: Some(text.into()),
        device_log: Some(text.into()),
        timeline: None,
    };
    run.cases[1].id = text.into();
    // The Standards view repeats case ids, titles and evidence: its own
    // hostile test (report_html.rs) keeps these counts to the case sections.
    for case in &mut run.cases {
        case.standards.clear();
    }
    run.documentation_review.clear();
    run.summary = report::tally(&run.cases);
    run
}

/// The part of `html` that is the section of case `id`.
pub fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"case-{id}\""))
        .unwrap_or_else(|| panic!("no section for case {id}"));
    let end = html[start..]
        .find("</section>")
        .expect("section not closed");
    &html[start..start + end]
}

/// The cases [`with_timelines`] gives a timeline: a failed and a passed one.
pub const TIMELINE_CASES: [&str; 2] = ["NI-01", "NI-02"];

/// Writes a timeline for NI-01 (failed: the SYN/ACKs of frames 12 and 15
/// its evidence cites, one tooltip with [`HOSTILE`] text) and NI-02
/// (passed: its probes cited) under run directory `dir`, and names them in
/// the cases' artifacts.
pub fn with_timelines(dir: &std::path::Path, run: &mut RunReport) {
    let cited = |lane, at, label: &str, frame, cites: Vec<usize>| {
        let mut e =
            TimelineEvent::new(lane, at, label, format!("{label} {HOSTILE}")).frames(frame, frame);
        e.cites = cites;
        e
    };
    let ni01 = Timeline::new(
        1_775_124_000_000_000_000,
        3_000_000,
        vec![
            TimelineEvent::new(Lane::Rig, 20_000, "power on", "took 5 ms").until(25_000),
            TimelineEvent::new(Lane::Hub, 400_000, "connected", "journal seq 4").seq(4),
            cited(Lane::Network, 1_200_000, "SYN-ACK", 12, vec![0]).alarm(true),
            cited(Lane::Network, 1_900_000, "SYN-ACK", 15, vec![0]).alarm(true),
            TimelineEvent::new(Lane::Dut, 300_000, "booted", "boot line"),
        ],
    );
    let ni02 = Timeline::new(
        1_775_124_000_000_000_000,
        1_000_000,
        vec![
            cited(Lane::Network, 100_000, "UDP", 3, vec![0]),
            cited(Lane::Network, 200_000, "UDP", 4, vec![0]),
            cited(Lane::Network, 300_000, "UDP", 5, vec![0]),
        ],
    );
    for (id, t) in TIMELINE_CASES.iter().zip([ni01, ni02]) {
        let rel = format!("cases/{id}/{TIMELINE_JSON}");
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();
        let case = run.cases.iter_mut().find(|c| c.id == *id).unwrap();
        case.artifacts.timeline = Some(rel);
    }
}
