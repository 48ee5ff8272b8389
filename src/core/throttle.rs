//! Per-channel throttle with a leading and a trailing edge.
//!
//! The first message of a quiet channel is delivered at once and opens a window. Messages that
//! arrive inside the window are folded: only the newest is kept. When the window closes the
//! newest is delivered (with how many were folded into it) and a new window opens, so there is
//! at most one delivery per window and the last message of a burst is never lost. Channels
//! never throttle each other. A channel whose window closes with nothing pending is forgotten,
//! so memory follows the channels active in the last window, not all channels ever seen.

use super::Millis;
use crate::prelude::*;

/// What to deliver: the message and how many earlier messages were folded into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Release<T> {
    /// The channel.
    pub channel: String,
    /// The newest message.
    pub item: T,
    /// Messages dropped in its favour since the previous delivery on this channel.
    pub coalesced: u32,
}

#[derive(Debug, Clone)]
struct Window<T> {
    channel: String,
    ends: Millis,
    pending: Option<T>,
    /// Messages that arrived in this window (the pending one included).
    arrived: u32,
}

/// The throttle of one subscription.
#[derive(Debug, Clone)]
pub struct Throttle<T> {
    window_ms: Millis,
    windows: Vec<Window<T>>,
}

impl<T> Throttle<T> {
    /// A throttle with windows of `window_ms` (0: every message passes at once).
    pub fn new(window_ms: Millis) -> Self {
        Throttle {
            window_ms,
            windows: Vec::new(),
        }
    }

    /// A message for `channel` at `now`. What is due goes to `out`: this message at once when
    /// the channel is quiet, or the trailing delivery of a window whose end the timer has not
    /// processed yet (then this message is folded into the window that opens).
    pub fn offer(&mut self, channel: &str, item: T, now: Millis, out: &mut Vec<Release<T>>) {
        let window_ms = self.window_ms;
        if window_ms != 0 {
            match self.windows.iter_mut().find(|w| w.channel == channel) {
                None => self.windows.push(Window {
                    channel: channel.to_owned(),
                    ends: now + window_ms,
                    pending: None,
                    arrived: 0,
                }),
                Some(w) => {
                    // A window the timer has not closed yet: closed now. Nothing pending in it
                    // means the channel was quiet, and this message leads the next one.
                    let quiet = now >= w.ends
                        && match Self::close(w, now, window_ms) {
                            Some(late) => {
                                out.push(late);
                                false
                            }
                            None => true,
                        };
                    if !quiet {
                        w.pending = Some(item);
                        w.arrived += 1;
                        return;
                    }
                }
            }
        }
        out.push(Release {
            channel: channel.to_owned(),
            item,
            coalesced: 0,
        });
    }

    /// Ends window `w` at `now`: its pending message, if any, is the trailing delivery, and
    /// the next window opens.
    fn close(w: &mut Window<T>, now: Millis, window_ms: Millis) -> Option<Release<T>> {
        w.ends = now + window_ms;
        let arrived = core::mem::take(&mut w.arrived);
        let item = w.pending.take()?;
        Some(Release {
            channel: w.channel.clone(),
            item,
            coalesced: arrived - 1,
        })
    }

    /// Closes the windows that ended by `now`, returning their trailing deliveries.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<Release<T>> {
        let mut out = Vec::new();
        let window_ms = self.window_ms;
        // A loop over `remove` rather than `retain_mut`, whose code is bigger.
        let mut i = 0;
        while let Some(w) = self.windows.get_mut(i) {
            if now < w.ends {
                i += 1;
                continue;
            }
            match Self::close(w, now, window_ms) {
                Some(r) => {
                    out.push(r);
                    i += 1;
                }
                // Nothing came in the window: the channel is forgotten.
                None => {
                    super::take_at(&mut self.windows, i);
                }
            }
        }
        out
    }

    /// When the next window ends with something to deliver (or a window to forget).
    pub fn poll_timeout(&self) -> Option<Millis> {
        // A loop over `earliest`, shared with the other deadlines, not `map` and `min`.
        let mut t = None;
        for w in &self.windows {
            t = super::earliest(t, Some(w.ends));
        }
        t
    }

    /// Whether nothing is waiting.
    pub fn is_idle(&self) -> bool {
        self.windows.iter().all(|w| w.pending.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(channel: &str, item: u32, coalesced: u32) -> Release<u32> {
        Release {
            channel: channel.into(),
            item,
            coalesced,
        }
    }

    fn offer(t: &mut Throttle<u32>, channel: &str, item: u32, now: Millis) -> Vec<Release<u32>> {
        let mut out = Vec::new();
        t.offer(channel, item, now, &mut out);
        out
    }

    #[test]
    fn leading_edge_then_the_last_of_the_burst() {
        let mut t = Throttle::new(500);
        assert_eq!(offer(&mut t, "/a", 1, 0), vec![rel("/a", 1, 0)]);
        assert_eq!(offer(&mut t, "/a", 2, 100), vec![]);
        assert_eq!(offer(&mut t, "/a", 3, 200), vec![]);
        assert_eq!(offer(&mut t, "/a", 4, 499), vec![]);
        assert_eq!(t.poll_timeout(), Some(500));
        assert_eq!(t.handle_timeout(499), vec![]);
        assert_eq!(t.handle_timeout(500), vec![rel("/a", 4, 2)]);
        // The trailing delivery opened a window: a message now is folded until 1000.
        assert_eq!(offer(&mut t, "/a", 5, 600), vec![]);
        assert_eq!(t.handle_timeout(1000), vec![rel("/a", 5, 0)]);
        // A window with nothing pending is forgotten; the next message leads again.
        assert_eq!(t.handle_timeout(1500), vec![]);
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(offer(&mut t, "/a", 6, 1600), vec![rel("/a", 6, 0)]);
    }

    #[test]
    fn channels_do_not_throttle_each_other() {
        let mut t = Throttle::new(500);
        assert_eq!(offer(&mut t, "/a", 1, 0).len(), 1);
        assert_eq!(offer(&mut t, "/b", 1, 10).len(), 1);
        assert_eq!(offer(&mut t, "/a", 2, 20), vec![]);
        assert_eq!(t.handle_timeout(500), vec![rel("/a", 2, 0)]);
        assert_eq!(t.handle_timeout(510), vec![]);
    }

    #[test]
    fn zero_window_passes_everything() {
        let mut t = Throttle::new(0);
        for i in 0..5 {
            assert_eq!(offer(&mut t, "/a", i, 0), vec![rel("/a", i, 0)]);
        }
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn a_late_timer_still_delivers_in_order() {
        // The timer for the window end did not run before the next message (a busy tab).
        let mut t = Throttle::new(500);
        assert_eq!(offer(&mut t, "/a", 1, 0).len(), 1);
        assert_eq!(offer(&mut t, "/a", 2, 100), vec![]);
        assert_eq!(offer(&mut t, "/a", 3, 200), vec![]);
        // The window ended at 500; at 900 the pending message goes first, the new one waits.
        assert_eq!(offer(&mut t, "/a", 4, 900), vec![rel("/a", 3, 1)]);
        assert_eq!(t.handle_timeout(1400), vec![rel("/a", 4, 0)]);
        // A quiet channel whose window ended unprocessed leads again at once.
        assert_eq!(t.handle_timeout(1900), vec![]);
        assert_eq!(offer(&mut t, "/a", 5, 5000), vec![rel("/a", 5, 0)]);
    }
}
