//! A deliberately failing run (MT-01 against the `plaintext-hello` device)
//! produces a report whose evidence points at the right frames: tshark,
//! opening the case's capture at those frame numbers, finds the cleartext
//! the device sent before its TLS ClientHello.

use std::process::Command;

use sacbench_suites::model::{EvidenceKind, Outcome};

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
}
