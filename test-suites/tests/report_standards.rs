//! The run by requirement: `cases[].standards` and `documentation_review`
//! in report.json, and `standards.csv` (requirement, standard, case,
//! outcome, evidence), written with every run and regenerated from the
//! JSON alone. (The Standards view of the page: report_html.rs and
//! report_browser.rs.)
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod report_fixture;

use std::fs;

use report_fixture::sample;
use sacbench_suites::report::{self, NEEDS_REVIEW, REPORT_JSON, STANDARDS_CSV};
use sacbench_suites::standards;

/// `standards.csv` of `dir`, read with an independent reader: header, rows.
fn read_csv(dir: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(dir.join(STANDARDS_CSV)).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

#[test]
fn report_json_carries_each_cases_requirements() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join(REPORT_JSON)).unwrap()).unwrap();
    let ni01 = v["cases"][0]["standards"].as_array().unwrap();
    assert_eq!(ni01.len(), standards::for_case("NI-01").len());
    assert!(ni01.iter().any(|r| r["standard"] == "ETSI EN 303 645"
        && r["requirement"] == "5.6-1"
        && r["title"] == "Unused network and logical interfaces disabled"
        && r["source"] == "ETSI EN 303 645 V2.1.1 §5.6 provision 5.6-1"));
    assert!(ni01
        .iter()
        .any(|r| r["standard"] == "ETSI TS 103 701" && r["requirement"] == "5.6-1-2c"));
    let review = v["documentation_review"].as_array().unwrap();
    assert!(review
        .iter()
        .any(|r| r["standard"] == "EN 18031-1" && r["requirement"] == "GEC-1"));
}

#[test]
fn reports_from_before_the_mapping_read_with_no_standards() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let path = dir.path().join(REPORT_JSON);
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("documentation_review");
    for case in v["cases"].as_array_mut().unwrap() {
        case.as_object_mut().unwrap().remove("standards");
    }
    fs::write(&path, v.to_string()).unwrap();
    let old = report::read_run(dir.path()).unwrap();
    assert!(old.cases.iter().all(|c| c.standards.is_empty()));
    assert!(old.documentation_review.is_empty());
    // Its CSV is the header alone.
    report::regenerate(dir.path()).unwrap();
    let (header, rows) = read_csv(dir.path());
    assert_eq!(header.len(), 5);
    assert!(rows.is_empty(), "{rows:?}");
}

#[test]
fn standards_csv_has_one_line_per_requirement_and_case_then_the_review_list() {
    let dir = tempfile::tempdir().unwrap();
    let run = sample();
    report::write_run(dir.path(), &run).unwrap();
    let (header, rows) = read_csv(dir.path());
    assert_eq!(
        header,
        ["requirement", "standard", "case", "outcome", "evidence"]
    );

    let mapped: usize = run.cases.iter().map(|c| c.standards.len()).sum();
    assert_eq!(rows.len(), mapped + run.documentation_review.len());
    let find = |req: &str, case: &str| {
        rows.iter()
            .find(|r| r[0] == req && r[2] == case)
            .unwrap_or_else(|| panic!("no line {req} {case}: {rows:?}"))
    };

    // NI-01 failed: its evidence, each fact with the file it is in.
    let ni01 = find("5.6-1", "NI-01");
    assert_eq!(ni01[1], "ETSI EN 303 645");
    assert_eq!(ni01[3], "failed");
    assert_eq!(
        ni01[4],
        "cases/NI-01/capture.pcapng frames 12, 15: SYN to DUT port 23 answered with SYN/ACK \
         | scan: open: 23/tcp | note: fault listen-debug is on"
    );
    assert_eq!(find("5.6-1", "NI-02")[3], "passed");
    assert_eq!(
        find("Annex I Part I (2)(h)", "CD-01")[4],
        "cases/CD-01/journal.jsonl journal seqs 40, 41, 42, 43, 44: 5 commands delivered in order"
    );
    // A case that cites nothing (here: not run) gives its reason.
    let kr04 = find("5.9-2", "KR-04");
    assert_eq!(kr04[3], "ignored");
    assert_eq!(kr04[4], "seen: rig lacks capability: power");
    // A device log line names the log file.
    assert!(find("5.3-2", "OTA-04")[4]
        .contains("cases/OTA-04/device log #2.txt: boot: slot 1 confirmed at boot"));

    // The mapped lines come by standard, the review list last.
    let ranks: Vec<usize> = rows[..mapped]
        .iter()
        .map(|r| standards::standard_rank(&r[1]))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    for row in &rows[mapped..] {
        assert_eq!(row[2], "", "{row:?}");
        assert_eq!(row[3], NEEDS_REVIEW, "{row:?}");
    }
    assert!(rows[mapped..]
        .iter()
        .any(|r| r[0] == "5.2-1" && r[1] == "ETSI EN 303 645"));
}

#[test]
fn standards_csv_quotes_what_needs_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = sample();
    run.cases[3].seen = "a \"quoted\", multi-line\nreason".into();
    report::write_run(dir.path(), &run).unwrap();
    let (_, rows) = read_csv(dir.path());
    let kr04 = rows.iter().find(|r| r[2] == "KR-04").unwrap();
    assert_eq!(kr04[4], "seen: a \"quoted\", multi-line\nreason");
    // Requirement ids with commas-free parentheses and spaces survive too.
    assert!(rows.iter().any(|r| r[0] == "Annex I Part I (2)(j)"));
}

#[test]
fn standards_csv_is_regenerated_from_the_json_alone() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let path = dir.path().join(REPORT_JSON);
    let mut edited = report::read_run(dir.path()).unwrap();
    edited.cases[1].outcome = sacbench_suites::model::Outcome::Failed;
    edited.summary = report::tally(&edited.cases);
    fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    fs::remove_file(dir.path().join(STANDARDS_CSV)).unwrap();

    report::regenerate(dir.path()).unwrap();
    let text = fs::read_to_string(dir.path().join(STANDARDS_CSV)).unwrap();
    assert_eq!(text, report::render_standards_csv(&edited).unwrap());
    let (_, rows) = read_csv(dir.path());
    assert!(rows
        .iter()
        .any(|r| r[0] == "5.6-1" && r[2] == "NI-02" && r[3] == "failed"));
}
