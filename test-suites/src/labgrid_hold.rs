//! A lab run on a labgrid place (`[labgrid]` in the rig file): the place is
//! acquired once, before any case, and held for the whole run; it is
//! released before the process exits, whichever way it exits: at the end,
//! after SIGINT/SIGTERM (the interrupted run's report is written first),
//! on a usage error after the acquisition (every `exit_usage` releases), and
//! when the holder is dropped. A SIGKILLed run cannot release: the next run
//! on this host recovers the place (see `sacbench_rig::lab::labgrid`).

use std::sync::Mutex;

use sacbench_rig::lab::labgrid::{self, Acquisition};
use sacbench_rig::lab::RigConfig;

static HELD: Mutex<Option<Acquisition>> = Mutex::new(None);

/// Reserves and acquires the place `config` names (waiting while others
/// hold it, progress on stderr), and returns the rig on it; a failure is one
/// line saying whether the coordinator, an exporter or the place was at fault.
pub fn acquire(config: &RigConfig) -> Result<RigConfig, String> {
    let Some(lg) = &config.labgrid else {
        return Ok(config.clone());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("labgrid: a runtime: {e}"))?;
    let user = labgrid::session::user_name();
    let dir = labgrid::record::default_dir();
    let mut say = |line: String| eprintln!("sacbench-suite: {line}");
    let interrupted = || crate::interrupt::interrupted().is_some();
    let acq = runtime
        .block_on(labgrid::acquire(lg, &user, &dir, &mut say, &interrupted))
        .map_err(|e| format!("{}: {e}", config.file.display()))?;
    eprintln!(
        "sacbench-suite: labgrid: acquired place {} on {} as {} (exporters: {})",
        acq.place,
        acq.coordinator,
        acq.user,
        acq.resolved.exporters.join(", ")
    );
    let provider = format!(
        "labgrid exporter {} (place {} on {})",
        acq.resolved.exporters.join(", "),
        acq.place,
        acq.coordinator
    );
    let on_place = match config.on_place(&acq.resolved, provider) {
        Ok(c) => c,
        // Dropping the acquisition releases the place.
        Err(e) => {
            return Err(format!(
                "{}: labgrid place {}: {e}",
                config.file.display(),
                acq.place
            ))
        }
    };
    *HELD.lock().unwrap_or_else(|p| p.into_inner()) = Some(acq);
    Ok(on_place)
}

/// The place held, as `place on coordinator`, for the report's rig name.
pub fn describe() -> Option<String> {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|a| format!("labgrid place {} on {}", a.place, a.coordinator))
}

/// A problem with the rig on the place held (its relay does not answer, its
/// console does not open) is the exporter's side of the farm: say so, and
/// which place and exporters. Other problems pass unchanged.
pub fn blame(config: &RigConfig, problem: String) -> String {
    match &config.provider {
        Some(by) => format!("{by}: {problem}"),
        None => problem,
    }
}

/// Releases the place held, if any; the error says how to release it by hand.
pub fn release() -> Result<(), String> {
    let Some(acq) = HELD.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return Ok(());
    };
    let place = acq.place.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("labgrid: a runtime: {e}"))?;
    runtime.block_on(acq.release()).map_err(|e| e.to_string())?;
    eprintln!("sacbench-suite: labgrid: released place {place}");
    Ok(())
}
