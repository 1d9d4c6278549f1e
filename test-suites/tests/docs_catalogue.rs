//! `docs/CASES.md` is generated from the catalogue itself (ids, criteria,
//! what each case needs of the rig and of the DUT, the faults that must fail
//! it), so the document cannot drift from the code. A change to the
//! catalogue fails this test until the file is regenerated:
//! `SACBENCH_BLESS=1 cargo test -p sacbench-suites --test docs_catalogue`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::fmt::Write as _;
use std::path::PathBuf;

use sacbench_suites::cases;

fn render() -> String {
    let mut out = String::from(
        "# The case catalogue\n\n\
         Generated from `test-suites/src/cases/` by `test-suites/tests/docs_catalogue.rs`; do not edit.\n\n\
         Each case has a stable id, a pass criterion, what it needs of the rig (a rig without it\n\
         reports the case `ignored`) and of the device under test (a DUT file without it gets\n\
         `not_applicable`, with the reason), and the reference device's fault switches that must\n\
         make it fail (its negative control, proven by `cargo xtask faults`). Self-tests check the\n\
         fixture hub itself, whatever the device does. See [DUT.md](DUT.md) for the contract parts\n\
         and events.\n",
    );
    let mut group = String::new();
    for c in cases::all() {
        if c.group() != group {
            group = c.group();
            let _ = write!(
                out,
                "\n## {}\n\n| id | title | pass criterion | rig needs | DUT needs | faults that must fail it |\n|---|---|---|---|---|---|\n",
                group.to_uppercase()
            );
        }
        let rig: Vec<String> = c.needs.iter().map(|n| format!("{n:?}")).collect();
        let mut dut: Vec<String> = c.dut.implements.iter().map(|p| format!("`{p}`")).collect();
        dut.extend(c.dut.events.iter().map(|e| format!("event `{e}`")));
        if c.dut.native_board {
            dut.push("native board".into());
        }
        match c.clock {
            sacbench_suites::case::ClockNeed::Real => {}
            sacbench_suites::case::ClockNeed::ScaledIfOffered { .. } => {
                dut.push("`clock_scale` (else judged in real time)".into())
            }
            sacbench_suites::case::ClockNeed::Scaled { .. } => dut.push("`clock_scale`".into()),
        }
        if c.self_test {
            dut.push("self-test (none)".into());
        }
        let mut faults: Vec<String> = device_core::faults::CATALOGUE
            .iter()
            .filter(|f| f.cases.contains(&c.id))
            .map(|f| format!("`{}`", f.name))
            .collect();
        faults.extend(
            field_gateway::FAULTS
                .iter()
                .filter(|f| f.cases.contains(&c.id))
                .map(|f| format!("`{}` (gateway)", f.name)),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            c.id,
            c.title,
            c.expected.replace('|', "\\|"),
            rig.join(", "),
            if dut.is_empty() {
                "—".into()
            } else {
                dut.join(", ")
            },
            if faults.is_empty() {
                "—".into()
            } else {
                faults.join(", ")
            },
        );
    }
    out
}

#[test]
fn docs_cases_md_is_the_catalogue() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/CASES.md");
    let want = render();
    if std::env::var_os("SACBENCH_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write docs/CASES.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/CASES.md is out of date: SACBENCH_BLESS=1 cargo test -p sacbench-suites --test docs_catalogue"
    );
}

/// A sharded run (nextest's `conformance` profile, one case per process)
/// starts the long cases first as `sacbench-suite` does: the profile's
/// priority filters name exactly the cases marked `long`.
#[test]
fn the_conformance_profile_starts_exactly_the_long_cases_first() {
    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.config/nextest.toml"),
    )
    .unwrap();
    let pattern = regex::Regex::new(r"binary\(conformance\) & test\(/([^/]+)/\)").unwrap();
    let filters: Vec<regex::Regex> = pattern
        .captures_iter(&config)
        .map(|c| regex::Regex::new(&c[1]).unwrap())
        .collect();
    assert!(
        !filters.is_empty(),
        "no priority filters in .config/nextest.toml"
    );
    for def in sacbench_suites::cases::all() {
        let first = filters.iter().any(|f| f.is_match(&def.name()));
        assert_eq!(
            first,
            def.long,
            "{}: long = {}, but the conformance profile {} it first",
            def.name(),
            def.long,
            if first { "starts" } else { "does not start" }
        );
    }
}

/// Issue 16: a plain `cargo nextest list` shows the case ids. nextest's
/// default filter would hide them from `list` as well as from `run`, so the
/// default profile has none (`cargo xtask test` filters on its command line).
#[test]
fn a_plain_nextest_list_shows_the_cases() {
    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.config/nextest.toml"),
    )
    .unwrap();
    let config: toml::Table = config.parse().unwrap();
    let default = config["profile"]["default"].as_table().unwrap();
    assert!(
        !default.contains_key("default-filter"),
        "the default profile's default-filter hides tests from `cargo nextest list`: {:?}",
        default.get("default-filter")
    );
}
