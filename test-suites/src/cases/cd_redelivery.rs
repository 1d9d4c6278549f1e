//! CD-22: a command whose PUBACK never reached the hub is delivered again
//! on the device's next session, and applied once.
//!
//! CD-06 makes the same redelivery from the device's side: it holds the
//! firmware's flash writes to cut the link between the application and the
//! PUBACK, which only sacbench's native board can. Here the hub loses the
//! PUBACK instead (a fixture switch: `puback_lost`, then a reset of the
//! connection) — what a link that drops between the device's acknowledgement
//! and the hub does — so the case judges any device that de-duplicates
//! commands by `$.mid` (device contract), on any board.

use hub_fixture::journal::Event;

use super::selftest::c2d;
use super::{applied_then_quiet, check_once_in_order, seen_through, COMMANDS, NEEDS};
use crate::case::{Case, Fail, DEVICE_ID};
use crate::cases::{case_def, Def};
use crate::model::Evidence;

/// CD-22, after the hub-side trouble cases.
pub const CASES: &[Def] = &[case_def!(
    "CD-22",
    "puback_lost_redelivered_once",
    "Redelivery after a PUBACK the hub never got",
    "a command the device applied and acknowledged, whose PUBACK the hub lost before the connection dropped, is delivered again on the next session and applied once; the next command is applied after it",
    NEEDS,
    COMMANDS,
    cd22
)];

async fn cd22(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let (first, then) = ("cd22-puback-lost", "cd22-after");
    let mark = case.hub.journal().len();
    case.hub.lose_next_puback(DEVICE_ID);
    case.hub.send_c2d(DEVICE_ID, c2d(first, None))?;
    let lost = case
        .journal(
            mark,
            &format!("the device to acknowledge {first} (the hub then loses the PUBACK)"),
            |e| matches!(&e.event, Event::PubackLost { message_id, .. } if message_id == first),
        )
        .await?;
    let again = case
        .journal(
            lost.seq,
            &format!("{first} to be delivered again on the device's next session"),
            |e| matches!(&e.event, Event::C2dDelivered { message_id, .. } if message_id == first),
        )
        .await?;
    case.note(Evidence::journal(
        format!("the hub lost the device's PUBACK of {first} and reset the connection; {first} delivered again on the next session"),
        [lost.seq, again.seq],
    ));
    case.hub.send_c2d(DEVICE_ID, c2d(then, None))?;
    let mids = [first.to_string(), then.to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids).await.map(|s| {
        format!("the hub lost the PUBACK of {first} and reset the connection; delivered again and acknowledged; {s}")
    })
}
