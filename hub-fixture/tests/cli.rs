//! The `hub-fixture` command line against a running `hub-fixture serve`:
//! what a QA engineer types, with a third-party device (mosquitto_sub) on the
//! other end, and one clear error with a non-zero exit for bad input.

mod common;

use common::*;
use tokio::process::Command;

fn cli(admin: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hub-fixture"));
    c.args(["--admin", admin]);
    c
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_send_and_journal_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, ready) = spawn_hub(&dir.path().join("hub")).await;
    let admin = ready["admin"].as_str().unwrap().to_owned();
    let port = addr(&ready, "mqtt").port().to_string();
    let creds = dir.path().join("creds");

    let out = run(cli(&admin).args(["register", "dev-9", "--out"]).arg(&creds)).await;
    assert!(out.status.success(), "{:?}", text(&out));
    for f in ["dev-9.pem", "dev-9.key", "ca.pem"] {
        assert!(
            std::fs::metadata(creds.join(f)).unwrap().len() > 0,
            "{f} written"
        );
    }
    let out = run(cli(&admin).args(["send", "dev-9", "reboot", "--prop", "reason=test"])).await;
    assert!(out.status.success(), "{:?}", text(&out));

    // The credentials the CLI wrote work for a third-party client.
    let out = run(Command::new("mosquitto_sub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port,
            "-V",
            "mqttv311",
            "-i",
            "dev-9",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "15",
        ])
        .args([
            "-u",
            "localhost/dev-9/?api-version=2021-04-12",
            "-t",
            "devices/dev-9/messages/devicebound/#",
        ])
        .arg("--cafile")
        .arg(creds.join("ca.pem"))
        .arg("--cert")
        .arg(creds.join("dev-9.pem"))
        .arg("--key")
        .arg(creds.join("dev-9.key")))
    .await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0.trim(), "reboot");

    let out = run(cli(&admin).args(["journal"])).await;
    let (journal, _) = text(&out);
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("journal lines are JSON")["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for kind in [
        "device_registered",
        "c2d_enqueued",
        "connected",
        "c2d_delivered",
        "c2d_acked",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_one_clear_error_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, ready) = spawn_hub(dir.path()).await;
    let admin = ready["admin"].as_str().unwrap().to_owned();

    let cases: [(&[&str], &str); 4] = [
        (&["send", "no-such-device", "x"], "no-such-device"),
        (&["status", "no-such-device", "enabled"], "no-such-device"),
        (&["send", "d", "x", "--prop", "novalue"], "k=v"),
        (&["advance-clock", "soon"], "soon"),
    ];
    for (args, named) in cases {
        let out = run(cli(&admin).args(args)).await;
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            stderr.contains(named),
            "{args:?}: the error names {named:?}: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout: {stdout}");
    }
    let out = run(Command::new(env!("CARGO_BIN_EXE_hub-fixture")).args([
        "--admin",
        "not-an-address",
        "journal",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not-an-address"));
}
