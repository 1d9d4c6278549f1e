//! `hub-fixture`: run the fixture hub, or drive a running one through its admin API.
//!
//! Exit codes: 0 done; 2 the command could not run as asked (bad input, a
//! device or serial the hub does not know, no hub, the hub cannot start);
//! 1 it ran and the outcome is a failure (a self-check failed, a method
//! answered non-2xx, an error inside the hub). Every failure is one line on
//! stderr.
#![forbid(unsafe_code)]

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use hub_fixture::admin::{AdminClient, AdminError};
use hub_fixture::hub::{HubConfig, HubError, HubFixture};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "hub-fixture",
    version,
    about = "sacbench fixture hub (IoT Hub MQTT surface, EST, firmware, admin API)"
)]
struct Cli {
    /// Admin endpoint of a running hub (for every command but `serve`).
    #[arg(
        long,
        global = true,
        env = "HUB_FIXTURE_ADMIN",
        default_value = "127.0.0.1:8884"
    )]
    admin: SocketAddr,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub until SIGINT/SIGTERM. Prints one JSON line with its addresses when ready.
    Serve {
        /// Data directory (store, CA, journal, firmware); kept across restarts.
        #[arg(long, default_value = "hub-data")]
        data: PathBuf,
        /// Host name(s) in the server certificate; the first is the hub's name.
        #[arg(long = "host-name", default_value = "hub.sacbench.test")]
        host_names: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:8883")]
        mqtt: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:443")]
        https: SocketAddr,
        /// Admin endpoint to listen on (loopback only).
        #[arg(long = "listen-admin", default_value = "127.0.0.1:8884")]
        listen_admin: SocketAddr,
        /// Write TLS secrets here (NSS key log format).
        #[arg(long)]
        key_log: Option<PathBuf>,
        /// Largest MQTT packet accepted, bytes.
        #[arg(long, default_value_t = 256 * 1024)]
        max_packet_size: usize,
        /// Seconds a client may take to finish its TLS handshake.
        #[arg(long, default_value_t = 10)]
        handshake_timeout: u64,
        /// Seconds an HTTPS client may take to send a whole request head.
        #[arg(long, default_value_t = 10)]
        https_header_timeout: u64,
        /// Seconds an HTTPS keep-alive connection may stay idle between requests.
        #[arg(long, default_value_t = 10)]
        https_idle_timeout: u64,
    },
    /// Start a hub on loopback and check it end to end; exit 1 on any failure.
    Selfcheck {
        /// Keep the hub's data here (default: a temporary directory, removed
        /// after a clean run and kept, with its path printed, after a failure).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Register a device; writes DIR/<id>.pem, DIR/<id>.key and DIR/ca.pem.
    Register {
        device_id: String,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Revoke a certificate by serial (hex): its live session closes at once.
    Revoke { serial: String },
    /// Enable or disable a device.
    Status {
        device_id: String,
        status: StatusArg,
    },
    /// Queue a cloud-to-device message.
    Send {
        device_id: String,
        payload: String,
        /// PAYLOAD is hex: a binary payload.
        #[arg(long)]
        hex: bool,
        #[arg(long)]
        ttl_seconds: Option<i64>,
        /// A user property, k=v (repeatable).
        #[arg(long = "prop")]
        props: Vec<String>,
    },
    /// Call a direct method; prints the answer, and exits 1 unless its status is 2xx.
    Method {
        device_id: String,
        name: String,
        #[arg(long, default_value = "{}")]
        payload: String,
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u64,
    },
    /// Show a twin, or patch its desired properties with --desired JSON.
    Twin {
        device_id: String,
        #[arg(long)]
        desired: Option<String>,
    },
    /// Move the hub's virtual clock forward.
    AdvanceClock { seconds: u64 },
    /// Print journal entries (JSON lines) after entry N.
    Journal {
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Wait until an entry of this kind (e.g. `c2d_acked`) follows
        /// `--after`, then print (exit 1 if none comes within `--timeout`).
        #[arg(long)]
        wait_for: Option<String>,
        /// Seconds `--wait-for` waits.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Print C2D feedback records.
    Feedback { device_id: Option<String> },
    /// Publish a firmware image at https://{hub}/firmware/NAME.
    Firmware { name: String, file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Enabled,
    Disabled,
}

/// Why a command failed: its one line, and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad input or setup: the command could not run as asked (exit 2).
    fn usage(message: impl Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The command ran and its outcome is a failure (exit 1).
    fn failed(message: impl Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NoHub { .. } => Self::usage(e),
            // The API's message names what was wrong; its status adds nothing.
            AdminError::Api { status, message } if (400..500).contains(&status) => {
                Self::usage(message)
            }
            AdminError::Api { message, .. } => Self::failed(format!("error in the hub: {message}")),
            AdminError::Transport { .. } => Self::failed(e),
        }
    }
}

/// A hub that cannot start: one line, with the flag to change for a taken address.
fn not_started(e: HubError) -> Failure {
    let flag = match &e {
        HubError::Bind {
            listener: "mqtt", ..
        } => Some("--mqtt"),
        HubError::Bind {
            listener: "https", ..
        } => Some("--https"),
        HubError::Bind { .. } => Some("--listen-admin"),
        _ => None,
    };
    match flag {
        Some(flag) => Failure::usage(format!("{e} (choose another address with {flag})")),
        None => Failure::usage(e),
    }
}

/// One path segment of an admin URL, percent-encoded: a method named
/// `diag/state` stays one segment (the admin API decodes it back).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A message's `payload` (bytes, a JSON array of numbers in the API's
/// answer) as text when it is UTF-8, else as `payload_hex`.
fn readable_payload(mut message: Value) -> Value {
    let bytes: Option<Vec<u8>> = message
        .get("payload")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect()
        });
    if let (Some(bytes), Some(object)) = (bytes, message.as_object_mut()) {
        match String::from_utf8(bytes) {
            Ok(text) => {
                object.insert("payload".into(), Value::String(text));
            }
            Err(e) => {
                object.remove("payload");
                object.insert("payload_hex".into(), hex::encode(e.into_bytes()).into());
            }
        }
    }
    message
}

/// Prints a line on stdout. A reader that has gone away (`journal | head`)
/// ends the command quietly and successfully, as it would `cat`; println!
/// would panic there instead.
fn say(line: impl Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("hub-fixture: writing to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub-fixture: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hub-fixture: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let admin = AdminClient::new(cli.admin);
    let print = |v: Value| say(serde_json::to_string_pretty(&v).unwrap_or_default());
    match cli.command {
        Command::Serve {
            data,
            host_names,
            mqtt,
            https,
            listen_admin,
            key_log,
            max_packet_size,
            handshake_timeout,
            https_header_timeout,
            https_idle_timeout,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
            let config = HubConfig {
                data_dir: data,
                host_names,
                mqtt_addr: mqtt,
                https_addr: https,
                admin_addr: Some(listen_admin),
                key_log,
                max_packet_size,
                handshake_timeout: Duration::from_secs(handshake_timeout),
                https_header_timeout: Duration::from_secs(https_header_timeout),
                https_idle_timeout: Duration::from_secs(https_idle_timeout),
                ..HubConfig::default()
            };
            let hub = HubFixture::start(config).await.map_err(not_started)?;
            say(
                json!({ "mqtt": hub.mqtt_addr(), "https": hub.https_addr(), "admin": hub.admin_addr(), "host_name": hub.host_name() }),
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| Failure::failed(format!("cannot wait for SIGTERM: {e}")))?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            hub.shutdown();
        }
        Command::Selfcheck { data } => {
            // Without --data the hub's data is a temporary directory: removed
            // after a clean run (so its path is not printed), kept after a
            // failure, when its journal is what explains it.
            let (dir, tmp) = match data {
                Some(d) => (d, None),
                None => {
                    let tmp = tempfile::tempdir().map_err(|e| {
                        Failure::failed(format!("cannot make a temporary directory: {e}"))
                    })?;
                    (tmp.path().to_path_buf(), Some(tmp))
                }
            };
            let results = hub_fixture::selfcheck::run(&dir)
                .await
                .map_err(Failure::usage)?;
            let failed = results.iter().filter(|r| r.outcome.is_err()).count();
            for r in &results {
                match &r.outcome {
                    Ok(detail) => say(format!("ok    {:<36} {detail}", r.name)),
                    Err(why) => say(format!("FAIL  {:<36} {why}", r.name)),
                }
            }
            say(format!(
                "{} passed, {failed} failed",
                results.len() - failed
            ));
            let kept = match tmp {
                Some(tmp) if failed > 0 => Some(tmp.keep()),
                Some(_) => None,
                None => Some(dir),
            };
            if let Some(dir) = kept {
                say(format!(
                    "hub data (store, CA, journal.jsonl): {}",
                    dir.display()
                ));
            }
            if failed > 0 {
                return Err(Failure::failed(format!("{failed} self-check(s) failed")));
            }
        }
        Command::Register { device_id, out } => {
            // Before registering: the key exists only in this answer, so a
            // directory that cannot be written must not cost a registration.
            std::fs::create_dir_all(&out)
                .map_err(|e| Failure::usage(format!("--out {}: {e}", out.display())))?;
            let creds = admin
                .call("POST", "/devices", Some(json!({ "device_id": device_id })))
                .await?;
            let field = |k: &str| {
                creds
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let written = |path: PathBuf, e: &dyn Display| {
                Failure::failed(format!("writing {}: {e}", path.display()))
            };
            for (name, key) in [
                (format!("{device_id}.pem"), "cert_pem"),
                ("ca.pem".into(), "ca_pem"),
            ] {
                let path = out.join(name);
                std::fs::write(&path, field(key)).map_err(|e| written(path, &e))?;
            }
            // The private key owner-only from its creation.
            let path = out.join(format!("{device_id}.key"));
            hub_fixture::pki::write_private(&path, &field("key_pem")).map_err(Failure::failed)?;
            print(
                json!({ "device_id": device_id, "serial": field("serial"), "thumbprint": field("thumbprint") }),
            );
        }
        Command::Revoke { serial } => print(
            admin
                .call(
                    "POST",
                    &format!("/certificates/{}/revoke", seg(&serial)),
                    None,
                )
                .await?,
        ),
        Command::Status { device_id, status } => {
            let status = match status {
                StatusArg::Enabled => "enabled",
                StatusArg::Disabled => "disabled",
            };
            print(
                admin
                    .call(
                        "PUT",
                        &format!("/devices/{}/status", seg(&device_id)),
                        Some(json!({ "status": status })),
                    )
                    .await?,
            )
        }
        Command::Send {
            device_id,
            payload,
            hex,
            ttl_seconds,
            props,
        } => {
            let properties = props
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| Failure::usage(format!("--prop takes k=v, not {p:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut body = json!({ "ttl_seconds": ttl_seconds, "properties": properties });
            if hex {
                use base64::Engine as _;
                let bytes = hex::decode(&payload)
                    .map_err(|e| Failure::usage(format!("PAYLOAD {payload:?} is not hex: {e}")))?;
                body["payload_base64"] = base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .into();
            } else {
                body["payload"] = payload.into();
            }
            let queued = admin
                .call(
                    "POST",
                    &format!("/devices/{}/messages", seg(&device_id)),
                    Some(body),
                )
                .await?;
            print(readable_payload(queued))
        }
        Command::Method {
            device_id,
            name,
            payload,
            timeout_seconds,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .map_err(|e| Failure::usage(format!("--payload is not JSON: {e}")))?;
            let body = json!({ "payload": payload, "timeout_seconds": timeout_seconds });
            let answer = admin
                .call(
                    "POST",
                    &format!("/devices/{}/methods/{}", seg(&device_id), seg(&name)),
                    Some(body),
                )
                .await?;
            let status = answer.get("status").and_then(Value::as_u64).unwrap_or(0);
            print(answer);
            if !(200..300).contains(&status) {
                // The hub's own answers: 404 at once when the device cannot
                // take the call, 504 when it did not answer in time.
                let why = match status {
                    404 => {
                        " (the device is offline, not subscribed to methods, or has no such method)"
                            .to_owned()
                    }
                    504 => format!(" (no answer within {timeout_seconds} s)"),
                    _ => String::new(),
                };
                return Err(Failure::failed(format!(
                    "method {name} on {device_id} answered {status}{why}"
                )));
            }
        }
        Command::Twin { device_id, desired } => match desired {
            Some(d) => {
                let patch: Value = serde_json::from_str(&d)
                    .map_err(|e| Failure::usage(format!("--desired is not JSON: {e}")))?;
                print(
                    admin
                        .call(
                            "PATCH",
                            &format!("/devices/{}/twin/desired", seg(&device_id)),
                            Some(patch),
                        )
                        .await?,
                )
            }
            None => print(
                admin
                    .call("GET", &format!("/devices/{}/twin", seg(&device_id)), None)
                    .await?,
            ),
        },
        Command::AdvanceClock { seconds } => print(
            admin
                .call(
                    "POST",
                    "/clock/advance",
                    Some(json!({ "seconds": seconds })),
                )
                .await?,
        ),
        Command::Journal {
            after,
            wait_for,
            timeout,
        } => {
            let mut path = format!("/journal?after={after}");
            if let Some(kind) = wait_for {
                path.push('&');
                path.push_str(
                    &form_urlencoded::Serializer::new(String::new())
                        .append_pair("wait_for", &kind)
                        .append_pair("wait_seconds", &timeout.to_string())
                        .finish(),
                );
            }
            let entries = admin.call("GET", &path, None).await?;
            for e in entries.as_array().into_iter().flatten() {
                say(e);
            }
        }
        Command::Feedback { device_id } => {
            let path = match device_id {
                Some(d) => format!(
                    "/feedback?{}",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("device", &d)
                        .finish()
                ),
                None => "/feedback".into(),
            };
            print(admin.call("GET", &path, None).await?)
        }
        Command::Firmware { name, file } => {
            let image = std::fs::read(&file)
                .map_err(|e| Failure::usage(format!("reading {}: {e}", file.display())))?;
            print(
                admin
                    .call_raw(
                        "PUT",
                        &format!("/firmware/{}", seg(&name)),
                        "application/octet-stream",
                        image,
                    )
                    .await?,
            )
        }
    }
    Ok(())
}
