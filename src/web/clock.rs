//! Time for the core: wall-clock milliseconds, never going backwards.
//!
//! Wall-clock (`Date.now()`) rather than `performance.now()` because a laptop's sleep must count
//! as silence for the idle watchdog; the clamp keeps a clock step backwards from confusing the
//! core's deadlines.

use core::cell::Cell;

use crate::core::Millis;

/// A monotonic view of `Date.now()`.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: Cell<Millis>,
}

impl Clock {
    /// The current time in milliseconds.
    pub(crate) fn now(&self) -> Millis {
        let t = (js_sys::Date::now() as Millis).max(self.last.get());
        self.last.set(t);
        t
    }
}
