//! A deliberately failing run (MT-01 against the `plaintext-hello` device)
//! produces a report whose evidence points at the right frames: tshark,
//! opening the case's capture at those frame numbers, finds the cleartext
//! the device sent before its TLS ClientHello.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::process::Command;

use sacbench_suites::model::{EvidenceKind, Outcome};
use sacbench_suites::report::timeline::{Lane, Timeline};

#[test]
fn the_failing_case_cites_the_frames_that_show_the_fault() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_sacbench-suite"))
        .env("SACBENCH_OUT", out.path())
        .env("SACBENCH_FAULT", "plaintext-hello")
        .env("SACBENCH_ONLY", "MT-01")
        .output()
        .expect("the suite runs");
    assert_eq!(
        status.status.code(),
        Some(101),
        "the run must fail: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let report = sacbench_suites::report::read_run(out.path()).expect("a report was written");
    assert_eq!(report.fault.as_deref(), Some("plaintext-hello"));
    let case = report
        .cases
        .iter()
        .find(|c| c.id == "MT-01")
        .expect("MT-01 in the report");
    assert_eq!(case.outcome, Outcome::Failed);
    let capture = out
        .path()
        .join(case.artifacts.capture.as_ref().expect("a capture"));
    // Every frame the evidence cites for the failure must show cleartext.
    let cited: Vec<u64> = case
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Frames && e.text.contains("not TLS"))
        .flat_map(|e| e.refs.clone())
        .collect();
    assert!(
        !cited.is_empty(),
        "no frames cited for the failure: {:?}",
        case.evidence
    );
    for frame in cited {
        let tshark = Command::new("tshark")
            .arg("-r")
            .arg(&capture)
            .args([
                "-Y",
                &format!("frame.number=={frame}"),
                "-T",
                "fields",
                "-e",
                "tcp.payload",
            ])
            .output()
            .expect("tshark (apt-get install tshark)");
        let hex = String::from_utf8_lossy(&tshark.stdout)
            .trim()
            .replace(':', "");
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        assert!(
            String::from_utf8_lossy(&bytes).contains("HELLO"),
            "frame {frame} should carry the cleartext hello, has {hex:?}"
        );
    }
    // The page names the case and its frames.
    let html = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    assert!(html.contains("case-MT-01") && html.contains("data-frames"));
    // The run says which requirements the failure is evidence against, in
    // report.json and standards.csv, citing the same frames.
    assert_eq!(
        case.standards,
        sacbench_suites::standards::for_case("MT-01")
    );
    assert!(!case.standards.is_empty());
    assert!(!report.documentation_review.is_empty());
    let mut csv = csv::Reader::from_path(out.path().join("standards.csv")).unwrap();
    let row = csv
        .records()
        .map(Result::unwrap)
        .find(|r| &r[0] == "5.5-1-2a" && &r[2] == "MT-01")
        .expect("a standards.csv line for TS 103 701 5.5-1-2a and MT-01");
    assert_eq!(&row[1], "ETSI TS 103 701");
    assert_eq!(&row[3], "failed");
    assert!(
        row[4].contains(&format!(
            "{} frame",
            case.artifacts.capture.as_deref().unwrap()
        )),
        "{:?}",
        &row[4]
    );
    assert!(html.contains("data-requirement=\"5.5-1-2a\""));
    // Its timeline, made from what the run recorded, marks the cited
    // frames on the network lane, as the failure they are, and draws them.
    let timeline: Timeline = serde_json::from_slice(
        &std::fs::read(
            out.path()
                .join(case.artifacts.timeline.as_ref().expect("a timeline")),
        )
        .unwrap(),
    )
    .unwrap();
    let fault_ev = case
        .evidence
        .iter()
        .position(|e| e.text.contains("not TLS"))
        .unwrap();
    for frame in &case.evidence[fault_ev].refs {
        let marked = timeline
            .lane(Lane::Network)
            .find(|e| {
                e.frames.is_some_and(|(a, b)| (a..=b).contains(frame))
                    && e.cites.contains(&fault_ev)
            })
            .unwrap_or_else(|| panic!("frame {frame} not marked: {timeline:#?}"));
        assert!(marked.alarm, "{marked:?}");
        let drawn = html
            .split("<g class=\"ev")
            .skip(1)
            .map(|g| &g[..g.find('>').unwrap()])
            .find(|g| g.contains(&format!("data-frames=\"{frame}-{frame}\"")))
            .unwrap_or_else(|| panic!("frame {frame} not drawn"));
        let cites = drawn.split("data-cites=\"").nth(1).unwrap_or("");
        let cites = &cites[..cites.find('"').unwrap_or(0)];
        assert!(
            cites.split(' ').any(|c| c == (fault_ev + 1).to_string()),
            "frame {frame} not drawn as cited by E{}: {drawn}",
            fault_ev + 1
        );
    }
    for lane in [Lane::Hub, Lane::Rig, Lane::Dut] {
        assert!(
            timeline.lane(lane).next().is_some(),
            "{lane:?} lane empty: {timeline:#?}"
        );
    }
    // Every tshark command the page prints runs as printed, from the run
    // directory, and shows exactly the frames it names.
    // The page's escaper writes numeric character references (`&#39;`);
    // the named ones are undone too, so the check does not hang on a style.
    let unescape = |t: &str| {
        t.replace("&#39;", "'")
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#60;", "<")
            .replace("&lt;", "<")
            .replace("&#62;", ">")
            .replace("&gt;", ">")
            .replace("&#38;", "&")
            .replace("&amp;", "&")
    };
    let cmds: Vec<String> = html
        .split("<code class=\"cmd\">")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next())
        .map(unescape)
        .filter(|c| c.starts_with("tshark "))
        .collect();
    assert!(!cmds.is_empty(), "no tshark command on the page");
    for cmd in cmds {
        let o = Command::new("sh")
            .args(["-c", &format!("{cmd} -T fields -e frame.number")])
            .current_dir(out.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let shown: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let named: Vec<String> = cmd
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        assert!(
            !shown.is_empty() && shown.iter().all(|f| named.contains(f)),
            "{cmd}: {shown:?}"
        );
    }
}

/// The journal evidence a case cites is found by the README's own recipe,
/// `jq -c 'select(.seq == N)' cases/<ID>/journal.jsonl`: exactly one entry
/// per cited number (one `seq` key per entry), the one the text names.
#[test]
fn cited_journal_entries_are_found_with_the_readmes_jq_recipe() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_sacbench-suite"))
        .env("SACBENCH_OUT", out.path())
        .env("SACBENCH_ONLY", "CD-06")
        .env_remove("SACBENCH_FAULT")
        .env_remove("SACBENCH_DUT")
        .output()
        .expect("the suite runs");
    let report = sacbench_suites::report::read_run(out.path())
        .unwrap_or_else(|e| panic!("{e:#}: {}", String::from_utf8_lossy(&run.stdout)));
    let case = &report.cases[0];
    assert_eq!(case.outcome, Outcome::Passed, "{}", case.seen);
    let journal = out
        .path()
        .join(case.artifacts.journal.as_ref().expect("a journal"));
    let cited: Vec<u64> = case
        .evidence
        .iter()
        .filter(|e| e.kind == EvidenceKind::Journal)
        .flat_map(|e| e.refs.clone())
        .collect();
    assert!(!cited.is_empty(), "{:?}", case.evidence);
    for seq in cited {
        let jq = Command::new("jq")
            .arg("-c")
            .arg(format!("select(.seq == {seq})"))
            .arg(&journal)
            .output()
            .expect("jq (apt-get install jq)");
        let text = String::from_utf8_lossy(&jq.stdout);
        assert_eq!(text.lines().count(), 1, "seq {seq}: {text:?}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert!(
            ["c2d_delivered", "c2d_acked"].contains(&v["kind"].as_str().unwrap_or("")),
            "seq {seq} is {v}"
        );
    }
    // The same entries are the hub lane's cited marks on the case's timeline.
    let timeline: Timeline = serde_json::from_slice(
        &std::fs::read(
            out.path()
                .join(case.artifacts.timeline.as_ref().expect("a timeline")),
        )
        .unwrap(),
    )
    .unwrap();
    for (i, ev) in case
        .evidence
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EvidenceKind::Journal)
    {
        for seq in &ev.refs {
            assert!(
                timeline
                    .lane(Lane::Hub)
                    .any(|e| e.seqs.is_some_and(|(a, b)| (a..=b).contains(seq))
                        && e.cites.contains(&i)),
                "seq {seq} not marked: {timeline:#?}"
            );
        }
    }
}
