//! `device-native`: the emulated board's executable.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use device_core::faults::CATALOGUE;

#[derive(Parser)]
#[command(
    name = "device-native",
    version,
    about = "sacbench reference device, emulated board"
)]
struct Cli {
    /// Print the fault switches (name, cases that must catch it, effect) and exit.
    #[arg(long)]
    list_faults: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_faults {
        for f in CATALOGUE {
            println!("{:<20} {:<24} {}", f.name, f.cases.join(","), f.effect);
        }
        return ExitCode::SUCCESS;
    }
    eprintln!("device-native: nothing to do (see --help)");
    ExitCode::from(2)
}
