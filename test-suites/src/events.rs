//! What cases may read of the device's console: only the named events its
//! DUT file declares ([`EventName`]), never the reference firmware's own
//! text. A case that needs an event lists it in its `CaseDef`, so a DUT
//! without it gets `not_applicable` before the case runs.

use std::cell::Cell;
use std::time::Duration;

use regex::{Captures, Regex};
use sacbench_rig::dut::EventName;

use crate::case::{Case, Fail};
use crate::case_board::Which;

/// Any occurrence of the event.
pub fn any(_: &Captures<'_>) -> bool {
    true
}

/// The named group `group` of the event is `value`.
pub fn group_is<'v>(group: &'v str, value: &'v str) -> impl Fn(&Captures<'_>) -> bool + 'v {
    move |c| c.name(group).map(|m| m.as_str()) == Some(value)
}

impl Case {
    /// The DUT file's pattern for `event`.
    pub fn event_pattern(&self, event: EventName) -> Result<Regex, Fail> {
        self.dut.event(event).cloned().ok_or_else(|| {
            Fail::bench(format!(
                "the case waits on the `{event}` event, which {} does not declare (the case should have been not_applicable)",
                self.dut.file.display()
            ))
        })
    }

    fn matcher<'a>(
        &self,
        event: EventName,
        pred: impl Fn(&Captures<'_>) -> bool + 'a,
    ) -> Result<impl Fn(&str) -> bool + 'a, Fail> {
        let re = self.event_pattern(event)?;
        Ok(move |l: &str| re.captures(l).is_some_and(|c| pred(&c)))
    }

    /// Waits (at most `guard`) for a console line that is `event` with
    /// captures satisfying `pred`, among every line since the case began.
    pub async fn wait_event(
        &self,
        event: EventName,
        guard: Duration,
        pred: impl Fn(&Captures<'_>) -> bool,
    ) -> Result<Option<String>, Fail> {
        self.wait_event_on(Which::First, event, guard, pred).await
    }

    /// [`Case::wait_event`] on the console of `which` board.
    pub async fn wait_event_on(
        &self,
        which: Which,
        event: EventName,
        guard: Duration,
        pred: impl Fn(&Captures<'_>) -> bool,
    ) -> Result<Option<String>, Fail> {
        let m = self.matcher(event, pred)?;
        Ok(self.wait_console_of(which, guard, m).await)
    }

    /// How many times `event` (satisfying `pred`) occurred so far.
    pub async fn count_events(
        &self,
        event: EventName,
        pred: impl Fn(&Captures<'_>) -> bool,
    ) -> Result<usize, Fail> {
        self.count_events_on(Which::First, event, pred).await
    }

    /// [`Case::count_events`] on the console of `which` board.
    pub async fn count_events_on(
        &self,
        which: Which,
        event: EventName,
        pred: impl Fn(&Captures<'_>) -> bool,
    ) -> Result<usize, Fail> {
        let m = self.matcher(event, pred)?;
        let n = Cell::new(0);
        self.wait_console_of(which, Duration::ZERO, |l| {
            if m(l) {
                n.set(n.get() + 1);
            }
            false
        })
        .await;
        Ok(n.get())
    }

    /// Waits for an occurrence of `event` (satisfying `pred`) beyond the
    /// first `skip` ones.
    pub async fn event_after(
        &self,
        event: EventName,
        skip: usize,
        guard: Duration,
        pred: impl Fn(&Captures<'_>) -> bool,
    ) -> Result<Option<String>, Fail> {
        let m = self.matcher(event, pred)?;
        let n = Cell::new(0);
        Ok(self
            .wait_console(guard, |l| {
                m(l) && {
                    n.set(n.get() + 1);
                    n.get() > skip
                }
            })
            .await)
    }

    /// The distinct values of `group` in occurrences of `event`, in the
    /// order of their first occurrence.
    pub async fn event_order(&self, event: EventName, group: &str) -> Result<Vec<String>, Fail> {
        let re = self.event_pattern(event)?;
        let seen = std::sync::Mutex::new(Vec::<String>::new());
        self.wait_console(Duration::ZERO, |l| {
            if let Some(v) = re
                .captures(l)
                .and_then(|c| c.name(group).map(|m| m.as_str().to_owned()))
            {
                let mut s = seen.lock().expect("lock");
                if !s.contains(&v) {
                    s.push(v);
                }
            }
            false
        })
        .await;
        Ok(seen.into_inner().expect("lock"))
    }
}
