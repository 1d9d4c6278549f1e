//! A case's second board of the DUT ([`Rig::second_board`]): added with a
//! provisioning record (the first board's identity, or another the hub
//! issued), captured on its own link into `capture-b.pcapng`, its console
//! kept in `device-b.log`. Cases read its console only through the DUT
//! file's events ([`Which::Second`] in `events.rs`).
//!
//! [`Rig::second_board`]: sacbench_rig::Rig::second_board

use std::net::Ipv4Addr;
use std::path::PathBuf;

use hub_fixture::hub::DeviceCredentials;
use sacbench_capture::{Capture, CaptureConfig};
use sacbench_provisioning::Provisioning;
use sacbench_rig::{LogLine, SecondBoard};

use crate::case::{Case, Fail};

/// The file the second board's capture is written to, in the case's directory.
pub const CAPTURE_B: &str = "capture-b.pcapng";
/// The file the second board's console is written to, in the case's directory.
pub const DEVICE_LOG_B: &str = "device-b.log";

/// Which board of the case a console read is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The DUT every case runs (the rig's board).
    First,
    /// The second board a case added ([`Case::add_second_board`]).
    Second,
}

/// The second board of a case, its capture and the lines read of it.
pub struct BoardB {
    /// The board; dropped, it is powered off.
    pub board: Box<dyn SecondBoard>,
    capture: Option<Capture>,
    log: Vec<LogLine>,
}

impl Case {
    /// The first board's provisioning record with `credentials` instead of
    /// its identity: what a second unit of the same product is handed.
    pub fn record_for(&self, credentials: &DeviceCredentials) -> Result<Provisioning, Fail> {
        let mut record = self
            .records
            .first()
            .cloned()
            .ok_or_else(|| Fail::bench("the DUT was provisioned with no record"))?;
        record.device.device_id = credentials.device_id.clone();
        record.certificate_pem = credentials.cert_pem.clone();
        record.private_key_pem = credentials.key_pem.clone();
        record.hub_ca_pem = credentials.ca_pem.clone();
        Ok(record)
    }

    /// Adds the DUT's second board, handed `record`, powered off, and starts
    /// capturing its link; returns its address. A rig without one is the
    /// bench's limit (cases that need it say so in their `needs`).
    pub async fn add_second_board(&mut self, record: &Provisioning) -> Result<Ipv4Addr, Fail> {
        if self.second.is_some() {
            return Err(Fail::bench("the case has its second board already"));
        }
        let board = self
            .rig
            .second_board(record)
            .await
            .map_err(|e| Fail::bench(format!("adding the second board: {e}")))?;
        let target = board
            .capture_target()
            .map_err(|e| Fail::bench(format!("the second board's capture: {e}")))?;
        let mut cc = CaptureConfig::new(target.interface, self.dir.join(CAPTURE_B));
        cc.netns = target.netns;
        let capture = Capture::start(cc).map_err(|e| Fail::bench(e.to_string()))?;
        let ip = board.ipv4();
        self.second = Some(BoardB {
            board,
            capture: Some(capture),
            log: Vec::new(),
        });
        Ok(ip)
    }

    /// The second board ([`Case::add_second_board`]).
    pub fn second_board(&mut self) -> Result<&mut dyn SecondBoard, Fail> {
        match self.second.as_mut() {
            Some(b) => Ok(b.board.as_mut()),
            None => Err(Fail::bench("the case has no second board")),
        }
    }

    /// The second board's address, if the case has one.
    pub fn second_board_ipv4(&self) -> Option<Ipv4Addr> {
        self.second.as_ref().map(|b| b.board.ipv4())
    }

    /// Stops the second board's capture (the hub's TLS key log embedded)
    /// and returns its file; again, the file as it was stopped.
    pub fn second_capture(&mut self) -> Result<PathBuf, Fail> {
        let path = self.dir.join(CAPTURE_B);
        let b = self
            .second
            .as_mut()
            .ok_or_else(|| Fail::bench("the case has no second board"))?;
        if let Some(capture) = b.capture.take() {
            let key_log =
                std::fs::read(self.dir.join("rig").join("tls-keys.log")).unwrap_or_default();
            capture
                .stop(Some(&key_log))
                .map_err(|e| Fail::bench(format!("stopping {CAPTURE_B}: {e}")))?;
        }
        Ok(path)
    }

    /// Waits (at most `guard`) for a console line of `which` board matching
    /// `pred` (any since it came up). `None` without the board too.
    pub async fn wait_console_of(
        &self,
        which: Which,
        guard: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        match which {
            Which::First => self.wait_console(guard, pred).await,
            Which::Second => {
                let b = self.second.as_ref()?;
                b.board
                    .wait_console_from(0, guard, &pred)
                    .await
                    .map(|(_, l)| l)
            }
        }
    }

    /// Writes the second board's console to `device-b.log`, powers it off
    /// and stops its capture (when the case ends).
    pub(crate) async fn save_second_board(&mut self) {
        let Some(b) = self.second.as_mut() else {
            return;
        };
        let _ = b.board.power(false).await;
        let new = b.board.logs().await.unwrap_or_default();
        b.log.extend(new);
        let text: String = b
            .log
            .iter()
            .map(|l| format!("{:?}\t{}\n", l.source, l.text))
            .collect();
        let _ = std::fs::write(self.dir.join(DEVICE_LOG_B), text);
        let _ = self.second_capture();
    }
}
