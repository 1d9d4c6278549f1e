//! `gateway`: the field gateway (see the `field_gateway` library).
//!
//! - `gateway --config gateway.toml`: run it;
//! - `gateway --check-mapping mapping.toml`: check a mapping file and exit;
//! - `gateway --list-faults`: the fault switches and the GW cases each must fail.
//!
//! Exit codes: 0 fine, 2 bad input (one error naming the file, line and field).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use field_gateway::{self as gateway, mapping::Mapping, GatewayConfig};

#[derive(Parser)]
#[command(
    name = "gateway",
    about = "sacbench's field gateway for legacy Modbus devices"
)]
struct Cli {
    /// The gateway's configuration.
    #[arg(long, conflicts_with_all = ["check_mapping", "list_faults"])]
    config: Option<PathBuf>,
    /// Check a mapping file and exit.
    #[arg(long)]
    check_mapping: Option<PathBuf>,
    /// List the fault switches (name, the cases it must fail, its effect).
    #[arg(long)]
    list_faults: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_faults {
        // The reference device's format (`device-native --list-faults`).
        for f in gateway::FAULTS {
            println!("{f}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(path) = cli.check_mapping {
        return match Mapping::load(&path) {
            Ok(m) => {
                println!("{}: {} leaves", path.display(), m.leaves.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gateway: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(path) = cli.config else {
        eprintln!("gateway: give --config FILE, --check-mapping FILE or --list-faults");
        return ExitCode::from(2);
    };
    let result = GatewayConfig::load(&path).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?
            .block_on(gateway::run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::from(2)
        }
    }
}
