//! `hub-fixture`: run the fixture hub, or drive a running one through its admin API.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hub_fixture::admin::AdminClient;
use hub_fixture::hub::{HubConfig, HubFixture};
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
    },
    /// Start a hub on loopback and check it end to end; exit 1 on any failure.
    Selfcheck {
        /// Keep the hub's data here (default: a temporary directory).
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
    Status { device_id: String, status: String },
    /// Queue a cloud-to-device message.
    Send {
        device_id: String,
        payload: String,
        #[arg(long)]
        ttl_seconds: Option<i64>,
        /// A user property, k=v (repeatable).
        #[arg(long = "prop")]
        props: Vec<String>,
    },
    /// Call a direct method.
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
    },
    /// Print C2D feedback records.
    Feedback { device_id: Option<String> },
    /// Publish a firmware image at https://{hub}/firmware/NAME.
    Firmware { name: String, file: PathBuf },
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
        Err(e) => {
            eprintln!("hub-fixture: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let admin = AdminClient::new(cli.admin);
    let print = |v: Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
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
                ..HubConfig::default()
            };
            let hub = HubFixture::start(config).await?;
            println!(
                "{}",
                json!({ "mqtt": hub.mqtt_addr(), "https": hub.https_addr(), "admin": hub.admin_addr(), "host_name": hub.host_name() })
            );
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            hub.shutdown();
        }
        Command::Selfcheck { data } => {
            let tmp = tempfile::tempdir()?;
            let dir = data.unwrap_or_else(|| tmp.path().to_path_buf());
            let results = hub_fixture::selfcheck::run(&dir)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let failed = results.iter().filter(|r| r.outcome.is_err()).count();
            for r in &results {
                match &r.outcome {
                    Ok(detail) => println!("ok    {:<36} {detail}", r.name),
                    Err(why) => println!("FAIL  {:<36} {why}", r.name),
                }
            }
            println!("{} passed, {failed} failed", results.len() - failed);
            println!("hub data (store, CA, journal.jsonl): {}", dir.display());
            if failed > 0 {
                anyhow::bail!("{failed} self-check(s) failed");
            }
        }
        Command::Register { device_id, out } => {
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
            std::fs::create_dir_all(&out)?;
            for (name, key) in [
                (format!("{device_id}.pem"), "cert_pem"),
                (format!("{device_id}.key"), "key_pem"),
                ("ca.pem".into(), "ca_pem"),
            ] {
                let path = out.join(name);
                std::fs::write(&path, field(key))
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            print(
                json!({ "device_id": device_id, "serial": field("serial"), "thumbprint": field("thumbprint") }),
            );
        }
        Command::Revoke { serial } => print(
            admin
                .call("POST", &format!("/certificates/{serial}/revoke"), None)
                .await?,
        ),
        Command::Status { device_id, status } => print(
            admin
                .call(
                    "PUT",
                    &format!("/devices/{device_id}/status"),
                    Some(json!({ "status": status })),
                )
                .await?,
        ),
        Command::Send {
            device_id,
            payload,
            ttl_seconds,
            props,
        } => {
            let properties = props
                .iter()
                .map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| anyhow::anyhow!("--prop takes k=v"))?;
            let body =
                json!({ "payload": payload, "ttl_seconds": ttl_seconds, "properties": properties });
            print(
                admin
                    .call(
                        "POST",
                        &format!("/devices/{device_id}/messages"),
                        Some(body),
                    )
                    .await?,
            )
        }
        Command::Method {
            device_id,
            name,
            payload,
            timeout_seconds,
        } => {
            let payload: Value = serde_json::from_str(&payload)
                .map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?;
            let body = json!({ "payload": payload, "timeout_seconds": timeout_seconds });
            print(
                admin
                    .call(
                        "POST",
                        &format!("/devices/{device_id}/methods/{name}"),
                        Some(body),
                    )
                    .await?,
            )
        }
        Command::Twin { device_id, desired } => match desired {
            Some(d) => {
                let patch: Value = serde_json::from_str(&d)
                    .map_err(|e| anyhow::anyhow!("--desired is not JSON: {e}"))?;
                print(
                    admin
                        .call(
                            "PATCH",
                            &format!("/devices/{device_id}/twin/desired"),
                            Some(patch),
                        )
                        .await?,
                )
            }
            None => print(
                admin
                    .call("GET", &format!("/devices/{device_id}/twin"), None)
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
        Command::Journal { after } => {
            let entries = admin
                .call("GET", &format!("/journal?after={after}"), None)
                .await?;
            for e in entries.as_array().into_iter().flatten() {
                println!("{e}");
            }
        }
        Command::Feedback { device_id } => {
            let path = match device_id {
                Some(d) => format!("/feedback?device={d}"),
                None => "/feedback".into(),
            };
            print(admin.call("GET", &path, None).await?)
        }
        Command::Firmware { name, file } => {
            let image = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            print(
                admin
                    .call_raw(
                        "PUT",
                        &format!("/firmware/{name}"),
                        "application/octet-stream",
                        image,
                    )
                    .await?,
            )
        }
    }
    Ok(())
}
