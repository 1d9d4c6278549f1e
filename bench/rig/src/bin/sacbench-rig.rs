//! `sacbench-rig`: lab-rig chores from the command line.
//!
//! `sacbench-rig flash --rig rig.toml [--image FILE]` writes the image (the
//! rig file's `[image]` by default) with the debug probe and boots the board;
//! it prints the first log lines so you see it came up. Build with
//! `--features probe-rs` on a lab machine (`cargo xtask flash` does).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sacbench_rig::lab::LabRig;
use sacbench_rig::Rig;

#[derive(Parser)]
#[command(name = "sacbench-rig", about = "lab rig chores")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Flash the DUT and boot it.
    Flash {
        #[arg(long)]
        rig: PathBuf,
        /// Image to write (default: the rig file's `[image] path`).
        #[arg(long)]
        image: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cmd::Flash { rig, image } = Cli::parse().command;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(flash(&rig, image)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sacbench-rig: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn flash(
    rig_file: &std::path::Path,
    image: Option<PathBuf>,
) -> Result<(), sacbench_rig::RigError> {
    let config = sacbench_rig::lab::RigConfig::load(rig_file)?;
    let Some(lg) = config.labgrid.clone() else {
        return flash_on(LabRig::from_config(config)?, rig_file, image).await;
    };
    // A labgrid place: acquired for the flashing, released after (also on failure).
    use sacbench_rig::lab::labgrid;
    let labgrid_err = |e: labgrid::LabgridError| {
        sacbench_rig::RigError::Setup(format!("{}: {e}", rig_file.display()))
    };
    let acq = labgrid::acquire(
        &lg,
        &labgrid::session::user_name(),
        &labgrid::record::default_dir(),
        &mut |line| eprintln!("sacbench-rig: {line}"),
        &|| false,
    )
    .await
    .map_err(labgrid_err)?;
    let provider = format!(
        "labgrid exporter {} (place {} on {})",
        acq.resolved.exporters.join(", "),
        acq.place,
        acq.coordinator
    );
    let flashed = match config.on_place(&acq.resolved, provider) {
        Ok(c) => match LabRig::from_config(c) {
            Ok(rig) => flash_on(rig, rig_file, image).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(sacbench_rig::RigError::Setup(format!(
            "{}: labgrid place {}: {e}",
            rig_file.display(),
            acq.place
        ))),
    };
    let released = acq.release().await.map_err(labgrid_err);
    match (flashed, released) {
        (Err(e), Err(r)) => {
            eprintln!("sacbench-rig: {r}");
            Err(e)
        }
        (flashed, released) => flashed.and(released),
    }
}

async fn flash_on(
    mut rig: LabRig,
    rig_file: &std::path::Path,
    image: Option<PathBuf>,
) -> Result<(), sacbench_rig::RigError> {
    let image = match image {
        Some(i) => i,
        None => rig.configured_image().map(|i| i.path).ok_or_else(|| {
            sacbench_rig::RigError::Setup(format!(
                "{}: no [image] path and no --image given",
                rig_file.display()
            ))
        })?,
    };
    rig.flash(&image).await?;
    println!("flashed {} on {}", image.display(), rig.name());
    if rig.wait_for_logs(Duration::from_secs(10)).await {
        for line in rig.logs().await? {
            println!("{:?}: {}", line.source, line.text);
        }
    }
    Ok(())
}
