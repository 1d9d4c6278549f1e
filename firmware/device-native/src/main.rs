//! `device-native`: the emulated board's executable.
//!
//! - `boot`: the bootloader and reset loop (power-on = start it; power-off =
//!   kill its process group).
//! - `app`: the device firmware proper; the bootloader runs it from the
//!   payload of the primary slot (this same executable, signed into an image).
//! - `make-flash`, `write-image`, `sign`: the bench's flashing tools.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use device_core::boot::BootConfig;
use device_core::faults::{Fault, CATALOGUE};
use device_native::bootloader::{self, Board};
use device_native::flash::{FlashFile, Layout, Region};
use device_native::provisioning::Provisioning;
use mcuboot_image::{ImageVersion, SignOptions, SigningKey};

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
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Slot {
    Primary,
    Secondary,
}

#[derive(Subcommand)]
enum Cmd {
    /// Power on the board: bootloader, then the primary image's payload, in a reset loop.
    Boot {
        #[arg(long)]
        flash: PathBuf,
        /// Provisioning file passed to the payload.
        #[arg(long)]
        provisioning: PathBuf,
        /// Where payloads are unpacked to run.
        #[arg(long)]
        run_dir: PathBuf,
        /// Stop after this many power-ons (default: run until killed).
        #[arg(long)]
        max_boots: Option<u64>,
    },
    /// The firmware (run by the bootloader from the primary slot).
    App {
        #[arg(long)]
        flash: PathBuf,
        #[arg(long)]
        provisioning: PathBuf,
    },
    /// Create an erased flash file.
    MakeFlash {
        path: PathBuf,
        /// Slot size in bytes (a multiple of the 128 KiB sector).
        #[arg(long, default_value_t = Layout::default().slot_size)]
        slot_size: u32,
    },
    /// Write a signed image into a slot (erasing it first); `--test` requests a test boot of the secondary.
    WriteImage {
        #[arg(long)]
        flash: PathBuf,
        #[arg(long, value_enum)]
        slot: Slot,
        image: PathBuf,
        #[arg(long)]
        test: bool,
        /// Create the flash file with this slot size first if it does not
        /// exist (a board's first flashing).
        #[arg(long)]
        create_slot_size: Option<u32>,
    },
    /// Sign a payload into an MCUboot image.
    Sign {
        /// PKCS#8 PEM signing key (imgtool keygen format).
        #[arg(long)]
        key: PathBuf,
        /// major.minor.revision[+build]
        #[arg(long)]
        version: String,
        #[arg(long)]
        security_counter: Option<u32>,
        payload: PathBuf,
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_faults {
        for f in CATALOGUE {
            println!("{f}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("device-native: give a command or --list-faults (see --help)");
        return ExitCode::from(2);
    };
    match run(command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("device-native: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Cmd) -> anyhow::Result<u8> {
    match command {
        Cmd::Boot {
            flash,
            provisioning,
            run_dir,
            max_boots,
        } => {
            // The unsafe-swap fault lives in the bootloader: read it from the
            // provisioning file, as the factory would have built it in.
            let prov = Provisioning::load(&provisioning)?;
            let config = BootConfig {
                unsafe_swap: prov.faults.has(Fault::UnsafeSwap),
            };
            let board = Board {
                flash,
                run_dir,
                payload_args: vec!["--provisioning".into(), provisioning.display().to_string()],
                config,
                max_boots,
            };
            bootloader::run(&board)
        }
        Cmd::App {
            flash,
            provisioning,
        } => device_native::app::main(&flash, &provisioning),
        Cmd::MakeFlash { path, slot_size } => {
            FlashFile::create(
                &path,
                Layout {
                    slot_size,
                    ..Layout::default()
                },
            )?;
            Ok(0)
        }
        Cmd::WriteImage {
            flash,
            slot,
            image,
            test,
            create_slot_size,
        } => {
            if let (Some(slot_size), false) = (create_slot_size, flash.exists()) {
                FlashFile::create(
                    &flash,
                    Layout {
                        slot_size,
                        ..Layout::default()
                    },
                )?;
            }
            let mut f = FlashFile::open(&flash)?;
            let bytes =
                std::fs::read(&image).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
            let parsed = mcuboot_image::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
            let bytes = &bytes[..parsed.len()];
            let region = match slot {
                Slot::Primary => Region::Primary,
                Slot::Secondary => Region::Secondary,
            };
            let max = f.size(region) - u64::from(f.layout().sector_size);
            if bytes.len() as u64 > max {
                anyhow::bail!(
                    "{}: {} bytes, the slot holds at most {max}",
                    image.display(),
                    bytes.len()
                );
            }
            f.erase(region, 0, f.size(region))?;
            f.write(region, 0, bytes)?;
            if test {
                device_core::boot::request_test(&mut f)?;
            }
            Ok(0)
        }
        Cmd::Sign {
            key,
            version,
            security_counter,
            payload,
            out,
        } => {
            let pem = std::fs::read_to_string(&key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
            let key = SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e:?}", key.display()))?;
            let version = parse_version(&version)?;
            let data = std::fs::read(&payload)
                .map_err(|e| anyhow::anyhow!("{}: {e}", payload.display()))?;
            let opts = SignOptions {
                version,
                security_counter,
                header_size: 0x200,
                ..SignOptions::default()
            };
            let image = mcuboot_image::sign(&data, &key, &opts)
                .map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
            std::fs::write(&out, image).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
            Ok(0)
        }
    }
}

fn parse_version(s: &str) -> anyhow::Result<ImageVersion> {
    let bad =
        || anyhow::anyhow!("--version {s:?}: expected major.minor.revision[+build], e.g. 1.4.0+2");
    let (main, build) = s.split_once('+').unwrap_or((s, "0"));
    let parts: Vec<&str> = main.split('.').collect();
    let [major, minor, revision] = parts.as_slice() else {
        return Err(bad());
    };
    Ok(ImageVersion {
        major: major.parse().map_err(|_| bad())?,
        minor: minor.parse().map_err(|_| bad())?,
        revision: revision.parse().map_err(|_| bad())?,
        build_num: build.parse().map_err(|_| bad())?,
    })
}
