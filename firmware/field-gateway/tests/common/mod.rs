//! Shared test support: the fixture hub on loopback in a temp dir (the
//! tests' hub only: a dev-dependency), and waiting on its journal.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use hub_fixture::hub::{HubConfig, HubFixture};
use hub_fixture::journal::JournalEntry;

/// Guards against a hung test; never a synchronisation point.
pub const GUARD: Duration = Duration::from_secs(20);

/// A hub on loopback (names `localhost` and `127.0.0.1`).
pub async fn start_hub(dir: &Path) -> HubFixture {
    start_hub_with(HubConfig::for_tests(dir)).await
}

/// A hub with `config`.
pub async fn start_hub_with(config: HubConfig) -> HubFixture {
    HubFixture::start(config).await.expect("hub starts")
}

/// Waits for a journal entry after `after` matching `pred`; panics with the journal if none comes.
pub async fn expect_entry(
    hub: &HubFixture,
    after: u64,
    what: &str,
    pred: impl FnMut(&JournalEntry) -> bool,
) -> JournalEntry {
    match hub.journal().wait_for(after, GUARD, pred).await {
        Some(e) => e,
        None => panic!(
            "no journal entry for {what}; journal:\n{}",
            hub.journal()
                .since(after)
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}
