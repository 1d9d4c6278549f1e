//! The `hub-fixture` command line against a running `hub-fixture serve`:
//! what a QA engineer types, with a third-party device (mosquitto_sub) on the
//! other end, and one clear error with a non-zero exit for bad input.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

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

    // The hub takes mosquitto_sub's PUBACK after mosquitto_sub has exited:
    // wait on the journal for it.
    let out = run(cli(&admin).args(["journal", "--wait-for", "c2d_acked"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
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
    // A kind that never comes: one message naming it, a non-zero exit.
    let out =
        run(cli(&admin).args(["journal", "--wait-for", "no_such_kind", "--timeout", "1"])).await;
    let (_, err) = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("\"no_such_kind\"") && err.contains("within 1s"),
        "{err}"
    );
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
        if args[0] == "advance-clock" {
            // clap's usage error: several lines, exit 2.
            assert_eq!(out.status.code(), Some(2));
            assert!(text(&out).1.contains(named), "{:?}", text(&out));
        } else {
            one_error(args, &out, 2, &[named]);
        }
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

/// Asserts a failed command: `code`, nothing on stdout, one line on stderr
/// containing each of `named`. Returns that line.
fn one_error(args: &[&str], out: &std::process::Output, code: i32, named: &[&str]) -> String {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: nothing on stdout: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    for n in named {
        assert!(
            stderr.contains(n),
            "{args:?}: the error names {n:?}: {stderr}"
        );
    }
    stderr.trim_end().to_owned()
}

#[tokio::test]
async fn with_no_hub_the_cli_says_so_and_how_to_start_one() {
    // A port nothing listens on: bound, then let go.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for args in [&["journal"][..], &["send", "d", "x"], &["revoke", "00"]] {
        let out = run(cli(&free).args(args)).await;
        let line = one_error(args, &out, 2, &[]);
        assert_eq!(
            line,
            format!("hub-fixture: no hub at {free} (start one with hub-fixture serve)")
        );
    }
}

#[tokio::test]
async fn a_taken_address_is_one_error_naming_the_listener_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, ready) = spawn_hub(&dir.path().join("first")).await;
    for (listener, flag) in [
        ("mqtt", "--mqtt"),
        ("https", "--https"),
        ("admin", "--listen-admin"),
    ] {
        let taken = ready[listener].as_str().unwrap();
        let mut args = vec![
            "--mqtt",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--listen-admin",
            "127.0.0.1:0",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = taken;
        let out = run(Command::new(env!("CARGO_BIN_EXE_hub-fixture"))
            .args(["serve", "--data"])
            .arg(dir.path().join(listener))
            .args(&args))
        .await;
        let line = one_error(&args, &out, 2, &[listener, taken, "in use", flag]);
        assert_eq!(
            line.matches("in use").count(),
            1,
            "the cause once, not twice: {line}"
        );
    }
}

#[tokio::test]
async fn unknown_names_and_bad_values_are_clear_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = hub_fixture::hub::HubConfig::for_tests(dir.path());
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let hub = start_hub_with(config).await;
    hub.register_device("d").unwrap();
    let admin = hub.admin_addr().unwrap().to_string();

    let args = ["revoke", "00ff00ff"];
    let out = run(cli(&admin).args(args)).await;
    let line = one_error(&args, &out, 2, &["no certificate with serial", "ff00ff"]);
    assert!(!line.contains("404"), "the message, not the status: {line}");

    // clap's own usage error, listing the values it takes.
    let out = run(cli(&admin).args(["status", "d", "maybe"])).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty());
    for n in ["maybe", "enabled", "disabled"] {
        assert!(stderr.contains(n), "{stderr}");
    }

    let cases: [(&[&str], &[&str]); 6] = [
        (&["status", "nobody", "disabled"], &["nobody"]),
        (&["send", "d", "zz", "--hex"], &["zz", "hex"]),
        (
            &["method", "d", "m", "--payload", "{"],
            &["--payload", "JSON"],
        ),
        (&["twin", "d", "--desired", "[1"], &["--desired", "JSON"]),
        (&["firmware", "img", "/no/such/file"], &["/no/such/file"]),
        (&["register", "bad id"], &["bad id", "device id"]),
    ];
    for (args, named) in cases {
        let out = run(cli(&admin).args(args)).await;
        one_error(args, &out, 2, named);
    }

    // The admin API itself answers bad values with a message, not serde's or
    // an empty body.
    let api = hub_fixture::admin::AdminClient::new(hub.admin_addr().unwrap());
    let err = api
        .call(
            "PUT",
            "/devices/d/status",
            Some(serde_json::json!({"status": "maybe"})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("enabled or disabled"), "{err}");
    let err = api
        .call("GET", "/nowhere", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no admin endpoint GET /nowhere"), "{err}");
    let err = api
        .call(
            "POST",
            "/clock/advance",
            Some(serde_json::json!({"seconds": "x"})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("400") && err.contains("seconds"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_exits_non_zero_unless_the_device_answers_2xx() {
    use hub_fixture::client::{ConnectOptions, DeviceClient};

    let dir = tempfile::tempdir().unwrap();
    let mut config = hub_fixture::hub::HubConfig::for_tests(dir.path());
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let hub = start_hub_with(config).await;
    let creds = hub.register_device("d").unwrap();
    let admin = hub.admin_addr().unwrap().to_string();
    let answer = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).expect("the answer is printed as JSON")
    };

    // Offline: the hub's 404, at once.
    let out = run(cli(&admin).args(["method", "d", "diag/state"])).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(answer(&out)["status"], 404);
    assert!(text(&out).1.contains("404"), "{:?}", text(&out));

    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .unwrap();
    c.subscribe(&["$iothub/methods/POST/#"]).await.unwrap();

    // Connected, but it does not answer: 504 after the call's timeout.
    let out = run(cli(&admin).args(["method", "d", "slow", "--timeout-seconds", "1"])).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(answer(&out)["status"], 504);
    assert!(text(&out).1.contains("504"), "{:?}", text(&out));
    c.next_publish(GUARD).await.unwrap(); // the unanswered call

    // A method name with a slash reaches the device as one name; 200 is exit 0.
    let mut cmd = cli(&admin);
    cmd.args(["method", "d", "diag/state"]);
    let call = tokio::spawn(async move { run(&mut cmd).await });
    let p = c.next_publish(GUARD).await.unwrap();
    assert!(
        p.topic
            .starts_with("$iothub/methods/POST/diag/state/?$rid="),
        "{}",
        p.topic
    );
    let rid = p.topic.rsplit("$rid=").next().unwrap();
    c.publish(
        &format!("$iothub/methods/res/200/?$rid={rid}"),
        rumqttc::QoS::AtMostOnce,
        br#"{"ok":true}"#,
    )
    .await
    .unwrap();
    let out = call.await.unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(answer(&out)["payload"]["ok"], true);
}

#[tokio::test]
async fn send_prints_the_payload_as_text_or_hex() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = hub_fixture::hub::HubConfig::for_tests(dir.path());
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let hub = start_hub_with(config).await;
    hub.register_device("d").unwrap();
    let admin = hub.admin_addr().unwrap().to_string();

    let out = run(cli(&admin).args(["send", "d", "open-valve"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let queued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queued["payload"], "open-valve");

    let out = run(cli(&admin).args(["send", "d", "00ff10", "--hex"])).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let queued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(queued["payload_hex"], "00ff10");
    assert!(queued.get("payload").is_none(), "{queued}");
    let pending = hub.pending_c2d("d").unwrap();
    assert_eq!(pending[1].payload, vec![0x00, 0xff, 0x10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selfcheck_prints_only_a_data_directory_that_exists() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_hub-fixture")).arg("selfcheck")).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
    // A clean run's temporary directory is gone: no path is printed for it.
    assert!(!stdout.contains("hub data"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kept");
    let out = run(Command::new(env!("CARGO_BIN_EXE_hub-fixture"))
        .args(["selfcheck", "--data"])
        .arg(&data))
    .await;
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&data.display().to_string()), "{stdout}");
    assert!(data.join("journal.jsonl").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_into_a_reader_that_stops_early_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = hub_fixture::hub::HubConfig::for_tests(dir.path());
    config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let hub = start_hub_with(config).await;
    // More journal than a pipe buffers (64 KiB), so the CLI is still writing
    // when `head` has gone.
    for _ in 0..800 {
        hub.advance_clock(std::time::Duration::from_secs(1))
            .unwrap();
    }
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(r#"set -o pipefail; "$0" --admin "$1" journal | head -n 1"#)
        .arg(env!("CARGO_BIN_EXE_hub-fixture"))
        .arg(hub.admin_addr().unwrap().to_string()))
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
}
