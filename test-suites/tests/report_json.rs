//! report.json: written, read back unchanged, versioned, validated; the
//! terminal summary; regenerating the page from the JSON alone.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod report_fixture;

use std::fs;

use report_fixture::{sample, HOSTILE};
use sacbench_suites::model::{CaseKind, Outcome, Summary, Tally};
use sacbench_suites::report::{self, INDEX_HTML, JUNIT_XML, REPORT_JSON, STANDARDS_CSV};

#[test]
fn a_written_run_reads_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-1"); // not yet existing: write_run creates it
    let original = sample();
    report::write_run(&run, &original).unwrap();

    for file in [REPORT_JSON, JUNIT_XML, INDEX_HTML, STANDARDS_CSV] {
        assert!(run.join(file).is_file(), "{file} not written");
    }
    assert_eq!(report::read_run(&run).unwrap(), original);
    // No temporary file of the atomic writes is left behind.
    let names: Vec<_> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "unexpected files in the run directory: {names:?}"
    );
}

#[test]
fn the_json_uses_the_documented_names() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join(REPORT_JSON)).unwrap()).unwrap();
    // The spellings REPORT.md promises; a rename in model.rs would break readers.
    assert_eq!(v["schema"], "sacbench-report/2");
    assert_eq!(v["summary"]["failed"], 2);
    assert_eq!(v["fault"], "listen-debug");
    let ni01 = &v["cases"][0];
    assert_eq!(ni01["id"], "NI-01");
    assert_eq!(ni01["outcome"], "failed");
    assert_eq!(ni01["duration_ms"], 61_250);
    assert_eq!(ni01["seen"], HOSTILE);
    assert_eq!(ni01["evidence"][0]["kind"], "frames");
    assert_eq!(ni01["evidence"][0]["refs"], serde_json::json!([12, 15]));
    assert_eq!(ni01["artifacts"]["capture"], "cases/NI-01/capture.pcapng");
    assert_eq!(v["cases"][3]["outcome"], "ignored");
    assert!(v["cases"][3]["artifacts"]["capture"].is_null());
}

#[test]
fn readers_ignore_fields_added_later_and_default_missing_refs() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let path = dir.path().join(REPORT_JSON);
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    v["added_in_a_later_revision"] = serde_json::json!({"x": 1});
    v["cases"][0]["also_new"] = serde_json::json!(true);
    v["cases"][0]["evidence"][1]
        .as_object_mut()
        .unwrap()
        .remove("refs");
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();

    let back = report::read_run(dir.path()).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn another_major_schema_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let path = dir.path().join(REPORT_JSON);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("sacbench-report/2", "sacbench-report/3");
    fs::write(&path, text).unwrap();
    let err = format!("{:#}", report::read_run(dir.path()).unwrap_err());
    assert!(
        err.contains("sacbench-report/3") && err.contains("major version"),
        "{err}"
    );

    fs::write(&path, r#"{"schema": "something-else", "cases": []}"#).unwrap();
    let err = format!("{:#}", report::read_run(dir.path()).unwrap_err());
    assert!(err.contains("not a sacbench report"), "{err}");
}

#[test]
fn a_missing_report_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!("{:#}", report::read_run(dir.path()).unwrap_err());
    assert!(err.contains("report.json"), "{err}");
}

#[test]
fn a_self_contradicting_report_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong_counts = sample();
    wrong_counts.summary.failed = 0;
    let err = report::write_run(dir.path(), &wrong_counts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match its cases"), "{err}");

    let mut twice = sample();
    let dup = twice.cases[1].clone();
    twice.cases.push(dup);
    twice.summary = report::tally(&twice.cases);
    let err = report::write_run(dir.path(), &twice)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NI-02 appears twice"), "{err}");

    let mut old = sample();
    old.schema = "sacbench-report/0".into();
    assert!(report::write_run(dir.path(), &old).is_err());
    assert!(
        !dir.path().join(REPORT_JSON).exists(),
        "a refused report left a file"
    );
}

#[test]
fn tally_counts_outcomes() {
    let s = sample();
    assert_eq!(
        report::tally(&s.cases),
        Summary {
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
        }
    );
    assert_eq!(report::tally(&[]), Summary::default());
}

#[test]
fn the_page_is_regenerated_from_the_json_alone() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    // Edit the JSON (as an older run's JSON would differ) and lose the page:
    // the new page must follow the JSON, not any cached state.
    let path = dir.path().join(REPORT_JSON);
    let mut edited = report::read_run(dir.path()).unwrap();
    edited.cases[1].title = "Renamed after the run".into();
    fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    fs::remove_file(dir.path().join(INDEX_HTML)).unwrap();

    let page = report::regenerate(dir.path()).unwrap();
    assert_eq!(page, dir.path().join(INDEX_HTML));
    let html = fs::read_to_string(&page).unwrap();
    assert_eq!(html, report::render_html(&edited));
    assert!(html.contains("Renamed after the run"));
}

#[test]
fn the_terminal_summary_lists_failures_with_where_to_look() {
    let text = report::summarise(&sample());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("6 cases: 3 passed, 2 failed, 0 error, 0 not applicable, 1 ignored"),
        "{text}"
    );
    assert!(
        lines[0].contains("emulated") && lines[0].contains("listen-debug"),
        "{text}"
    );

    let failed: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 2, "{text}");
    assert!(
        failed[0].contains("NI-01") && failed[0].contains("port 23 open"),
        "{text}"
    );
    assert!(failed[0].contains("look at: frames 12 and 15"), "{text}");
    // A multi-line `seen` stays on its one line.
    assert!(
        failed[1].contains("OTA-04") && failed[1].contains("after the crash: no revert"),
        "{text}"
    );
    assert!(
        text.contains("ignored KR-04  rig lacks capability: power"),
        "{text}"
    );

    let mut green = sample();
    green.cases.retain(|c| c.outcome == Outcome::Passed);
    green.summary = report::tally(&green.cases);
    green.fault = None;
    let text = report::summarise(&green);
    // The counts, and the device's verdicts apart from the self-tests.
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("fault none"), "{text}");
}

#[test]
fn a_version_1_report_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &sample()).unwrap();
    let path = dir.path().join(REPORT_JSON);
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    // What version 1 wrote: no dut, no error / not_applicable counts.
    v["schema"] = "sacbench-report/1".into();
    v.as_object_mut().unwrap().remove("dut");
    let s = v["summary"].as_object_mut().unwrap();
    s.remove("error");
    s.remove("not_applicable");
    fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let back = report::read_run(dir.path()).unwrap();
    assert_eq!(back.summary, sample().summary);
    assert_eq!(back.dut, None);
}

#[test]
fn device_verdicts_and_self_tests_are_counted_apart() {
    let mut r = sample();
    r.cases[1].kind = CaseKind::SelfTest;
    r.summary = report::tally(&r.cases);
    assert_eq!(r.summary.device.total, 5);
    assert_eq!(r.summary.self_test.total, 1);
    assert_eq!(r.summary.self_test.passed, 1);
    assert_eq!(
        r.summary.device.passed + r.summary.self_test.passed,
        r.summary.passed
    );
    let dir = tempfile::tempdir().unwrap();
    report::write_run(dir.path(), &r).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join(REPORT_JSON)).unwrap()).unwrap();
    assert_eq!(v["cases"][1]["kind"], "self_test");
    assert_eq!(v["cases"][0]["kind"], "device");
    assert_eq!(v["summary"]["device"]["failed"], 2);
    assert_eq!(v["summary"]["self_test"]["passed"], 1);
    let text = report::summarise(&r);
    assert!(
        text.contains("5 device cases: 2 passed, 2 failed, 0 error, 0 not applicable, 1 ignored; 1 bench self-tests: 1 passed"),
        "{text}"
    );
}
