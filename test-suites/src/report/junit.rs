//! `junit.xml`: the run as JUnit XML (Jenkins flavour), for CI systems.
//!
//! One `<testsuite>` per group of the catalogue (NI, MT, KR, OTA, CD, ...),
//! one `<testcase>` per case named by its test name, so CI history lines up
//! with `cargo test` names. A failure's `message` is what was seen (the one
//! line CI systems show in lists) and its text is the full detail block
//! with the evidence; ignored cases are `<skipped>` with their reason.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::model::{CaseResult, Outcome, RunReport};

use super::groups;
use super::summary::{case_text, one_line};

/// Renders the JUnit XML of `report`.
pub fn render_junit(report: &RunReport) -> Result<String> {
    let started = parse_time(&report.started_at);
    let mut junit = Report::new("sacbench");
    if let Some(t) = started {
        junit.set_timestamp(t);
    }
    // The wall-clock time of the run when both ends are known; the sum of
    // the cases otherwise (cases may have run in parallel, so the two differ).
    let wall = started
        .zip(parse_time(&report.finished_at))
        .and_then(|(s, f)| (f - s).to_std().ok());
    let sum = Duration::from_millis(report.cases.iter().map(|c| c.duration_ms).sum());
    junit.set_time(wall.unwrap_or(sum));

    for (group, cases) in groups(report) {
        let mut suite = TestSuite::new(group);
        if let Some(t) = started {
            suite.set_timestamp(t);
        }
        suite.set_time(Duration::from_millis(
            cases.iter().map(|c| c.duration_ms).sum(),
        ));
        // Properties repeat the run's context in every suite because many CI
        // viewers show one suite at a time.
        suite.add_property(Property::new("rig.kind", &report.rig.kind));
        suite.add_property(Property::new("rig.name", &report.rig.name));
        suite.add_property(Property::new(
            "fault",
            report.fault.as_deref().unwrap_or("none"),
        ));
        suite.add_test_cases(cases.into_iter().map(|c| test_case(group, c)));
        junit.add_test_suite(suite);
    }
    junit.to_string().context("serialising junit.xml")
}

fn test_case(group: &str, case: &CaseResult) -> TestCase {
    let detail = case_text(case);
    let status = match case.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::Failed => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(one_line(&case.seen))
                .set_type("verdict")
                .set_description(&detail);
            s
        }
        Outcome::Error => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(one_line(&case.seen))
                .set_type("bench")
                .set_description(&detail);
            s
        }
        Outcome::NotApplicable => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("not applicable: {}", one_line(&case.seen)))
                .set_description(&detail);
            s
        }
        Outcome::Ignored => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(one_line(&case.seen)).set_description(&detail);
            s
        }
    };
    let mut tc = TestCase::new(&case.name, status);
    tc.set_classname(format!("sacbench.{group}"));
    tc.set_time(Duration::from_millis(case.duration_ms));
    tc.add_property(Property::new("id", &case.id));
    tc.add_property(Property::new("title", &case.title));
    if case.outcome == Outcome::Passed {
        // A pass is backed by evidence too; system-out is where JUnit
        // viewers show it for a passed test.
        tc.set_system_out(detail);
    }
    tc
}

/// Parses an RFC 3339 time; `None` if the report holds something else,
/// because a malformed timestamp must not cost the whole JUnit file.
fn parse_time(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}
