//! Which messages each channel has delivered: the last id (for replay requests) and enough
//! recent ids to drop a message delivered twice (a replay that overlaps, a resent batch).
//!
//! Numeric ids (tidings-relay's per-channel sequence numbers) are compared by value, so any
//! id at or below the last one is a duplicate. Other ids (Faye's random message ids) are
//! checked against a bounded window of recent ids. Memory is bounded in both directions: a
//! window per channel and a cap on channels (the oldest is forgotten first).

use crate::prelude::*;

const RECENT: usize = 64;
const MAX_CHANNELS: usize = 1024;

#[derive(Debug, Clone, Default)]
struct Channel {
    name: String,
    /// The last id delivered (a channel is only made by delivering an id, so there is one).
    last: String,
    last_num: Option<u64>,
    /// A ring of the last [`RECENT`] other ids: filled by pushing, then each new id overwrites
    /// the oldest, in its buffer (no allocation, nothing moved; `VecDeque`'s code is not in
    /// the build). Only membership is asked, so the order in it does not matter.
    recent: Vec<String>,
    /// Where the next id goes in `recent` (its length until it is full).
    next: usize,
}

/// Per-channel delivery record.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Oldest first (dropped first at the cap).
    channels: Vec<Channel>,
}

impl Seen {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Seen::default()
    }

    /// Records `id` on `channel`; false when it was already delivered (drop the message).
    pub fn first_time(&mut self, channel: &str, id: &str) -> bool {
        let i = match self.channels.iter().position(|c| c.name == channel) {
            Some(i) => i,
            None => {
                if self.channels.len() == MAX_CHANNELS {
                    super::take_at(&mut self.channels, 0);
                }
                self.channels.push(Channel {
                    name: channel.to_owned(),
                    ..Channel::default()
                });
                self.channels.len() - 1
            }
        };
        // `get_mut`, not an index: `i` was just found or made, and no panic path is needed.
        let Some(c) = self.channels.get_mut(i) else {
            return true;
        };
        let num = super::text::digits(id);
        let dup = match (num, c.last_num) {
            (Some(n), Some(last)) => n <= last,
            _ => c.recent.iter().any(|r| r == id),
        };
        if dup {
            return false;
        }
        // The last id, in the buffer of the one before (no allocation per message).
        id.clone_into(&mut c.last);
        if num.is_some() {
            // Numbers are compared by value: the window is for the other ids, which a number
            // can never equal.
            c.last_num = num;
            return true;
        }
        match c.recent.get_mut(c.next) {
            Some(oldest) => id.clone_into(oldest),
            None => c.recent.push(id.to_owned()),
        }
        c.next = (c.next + 1) % RECENT;
        true
    }

    /// The last id delivered on `channel`.
    pub fn last(&self, channel: &str) -> Option<&str> {
        self.channels
            .iter()
            .find(|c| c.name == channel)
            .map(|c| c.last.as_str())
    }

    /// `(channel, last id)` for the channels `keep` selects.
    pub fn lasts(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        // A loop, not `filter`, `map` and `collect`: less code for the adapters.
        let mut out = Vec::new();
        for c in &self.channels {
            if keep(&c.name) {
                out.push((c.name.clone(), c.last.clone()));
            }
        }
        out
    }

    /// Forgets channels by `list`: with `patterns`, those no pattern in it matches (the
    /// subscriptions changed); without, those it names (reset by the server or a poll).
    pub fn forget(&mut self, list: &[String], patterns: bool) {
        // A list and a flag, not a closure: one instance for every caller. A loop over
        // `take_at` rather than `retain`, whose code would be one more instance. Only Bayeux
        // has patterns: the SSE build leaves `matches` out.
        let patterns = patterns && cfg!(feature = "bayeux");
        let mut i = 0;
        while let Some(c) = self.channels.get(i) {
            let named = list.iter().any(|w| {
                if patterns {
                    super::channel::matches(w, &c.name)
                } else {
                    *w == c.name
                }
            });
            if named != patterns {
                super::take_at(&mut self.channels, i);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_drop_anything_not_newer() {
        let mut s = Seen::new();
        assert!(s.first_time("/a", "5"));
        assert!(!s.first_time("/a", "5"));
        assert!(!s.first_time("/a", "3"));
        assert!(s.first_time("/a", "6"));
        assert!(s.first_time("/b", "1"), "channels are separate");
        assert_eq!(s.last("/a"), Some("6"));
        assert_eq!(
            s.lasts(|c| c == "/a"),
            vec![("/a".to_owned(), "6".to_owned())]
        );
    }

    #[test]
    fn mixed_ids_each_keep_their_own_rule() {
        let mut s = Seen::new();
        for (id, first) in [
            ("x1", true),
            ("5", true),
            ("x1", false),
            ("5", false),
            ("4", false),
            ("x2", true),
            ("6", true),
            ("x2", false),
            ("+7", true),
            ("+7", false),
        ] {
            assert_eq!(s.first_time("/a", id), first, "{id}");
        }
        assert_eq!(s.last("/a"), Some("+7"));
    }

    #[test]
    fn other_ids_use_a_window() {
        let mut s = Seen::new();
        assert!(s.first_time("/a", "x1"));
        assert!(s.first_time("/a", "x2"));
        assert!(!s.first_time("/a", "x1"));
        for i in 0..RECENT {
            assert!(s.first_time("/a", &format!("y{i}")));
        }
        assert!(s.first_time("/a", "x1"), "the window is bounded");
    }

    #[test]
    fn the_window_keeps_the_newest_ids_round_after_round() {
        let mut s = Seen::new();
        let n = 2 * RECENT + 5;
        for i in 0..n {
            assert!(s.first_time("/a", &format!("y{i}")));
        }
        // The newest are still known (checked newest first: a first_time that wrongly said
        // true would overwrite the oldest of them).
        for i in (n - RECENT..n).rev() {
            assert!(
                !s.first_time("/a", &format!("y{i}")),
                "y{i} is in the window"
            );
        }
        assert!(
            s.first_time("/a", &format!("y{}", n - RECENT - 1)),
            "older ones are not"
        );
    }

    #[test]
    fn channels_are_bounded_and_forgettable() {
        let mut s = Seen::new();
        for i in 0..MAX_CHANNELS + 10 {
            s.first_time(&format!("/c/{i}"), "1");
        }
        assert_eq!(s.channels.len(), MAX_CHANNELS);
        assert_eq!(s.last("/c/0"), None);
        s.forget(&["/c/1000".to_owned()], false);
        assert!(s.last("/c/1000").is_none());
        assert!(s.last("/c/999").is_some());
        s.forget(&["/c/*".to_owned()], true);
        assert!(
            s.last("/c/999").is_some(),
            "a pattern keeps what it matches"
        );
        s.forget(&["/d/*".to_owned()], true);
        assert!(s.last("/c/999").is_none(), "and only that");
    }
}
