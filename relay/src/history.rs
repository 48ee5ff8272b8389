//! The bounded per-channel history that streams replay from.
//!
//! Each channel has a sequence number (0 before its first message, then 1, 2, …) and keeps its
//! last `capacity` messages. Every stream shares the same messages (`Arc`), so replaying costs
//! no copies. Reading a channel never creates it: only publishing does.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

/// One published message, as kept in history and sent to live streams.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published to.
    pub channel: Arc<str>,
    /// Its sequence number in that channel, from 1.
    pub seq: u64,
    /// The SSE `data`: the compact JSON encoding of what was published.
    pub payload: Arc<str>,
}

/// What a stream that wants to continue a channel after a position gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// The messages after the position, oldest first (empty when it is current).
    Replay(Vec<Arc<Message>>),
    /// The position cannot be continued: it is ahead of the channel (another history) or
    /// messages after it are gone. The stream continues from this current sequence number.
    Reset(u64),
}

/// One page of a channel's history, as the poll endpoint answers it.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    /// The channel's current sequence number.
    pub last: u64,
    /// The messages after the position asked for (or, on a reset, the oldest retained ones),
    /// oldest first, at most the limit asked for.
    pub messages: Vec<Arc<Message>>,
    /// The position cannot be continued exactly: it is ahead of the channel, or messages after
    /// it are gone. `messages` then holds what history still has.
    pub reset: bool,
    /// More messages follow the last one in `messages`.
    pub more: bool,
    /// When the channel's last message was published while this relay ran (`None` before
    /// that, also for messages loaded from the store).
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Log {
    seq: u64,
    messages: VecDeque<Arc<Message>>,
    modified: Option<SystemTime>,
}

/// The histories of every channel published to.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    channels: HashMap<Arc<str>, Log>,
}

impl History {
    /// An empty history keeping `capacity` messages per channel.
    pub fn new(capacity: usize) -> Self {
        History {
            capacity,
            channels: HashMap::new(),
        }
    }

    /// The channel's current sequence number: that of its last message, 0 if none.
    pub fn current(&self, channel: &str) -> u64 {
        self.channels.get(channel).map_or(0, |log| log.seq)
    }

    /// Adds a message. Its `seq` must be above the channel's current one (the caller assigns
    /// them); a message that is not is ignored and `false` returned.
    pub fn push(&mut self, message: Arc<Message>) -> bool {
        let capacity = self.capacity;
        let log = self.log_mut(&message.channel);
        if message.seq <= log.seq {
            return false;
        }
        log.seq = message.seq;
        if capacity == 0 {
            log.messages.clear();
            return true;
        }
        if log.messages.len() == capacity {
            log.messages.pop_front();
        }
        log.messages.push_back(message);
        true
    }

    /// [`History::push`], recording `at` as the time the channel last changed.
    pub fn push_at(&mut self, message: Arc<Message>, at: SystemTime) -> bool {
        let channel = Arc::clone(&message.channel);
        let pushed = self.push(message);
        if pushed {
            self.log_mut(&channel).modified = Some(at);
        }
        pushed
    }

    /// Moves a channel's sequence number forward without a message (one that was dropped
    /// from history before the store was compacted). Returns `false` if it is not forward.
    pub fn advance(&mut self, channel: &str, seq: u64) -> bool {
        let log = self.log_mut(channel);
        if seq <= log.seq {
            return false;
        }
        log.seq = seq;
        log.messages.clear();
        true
    }

    fn log_mut(&mut self, channel: &str) -> &mut Log {
        if !self.channels.contains_key(channel) {
            self.channels.insert(Arc::from(channel), Log::default());
        }
        self.channels
            .get_mut(channel)
            .expect("the channel was inserted just above")
    }

    /// What a stream positioned at `after` in `channel` must be sent to be current.
    pub fn resume(&self, channel: &str, after: u64) -> Resume {
        let Some(log) = self.channels.get(channel) else {
            return if after == 0 {
                Resume::Replay(Vec::new())
            } else {
                Resume::Reset(0)
            };
        };
        if after > log.seq {
            return Resume::Reset(log.seq);
        }
        if after == log.seq {
            return Resume::Replay(Vec::new());
        }
        match log.messages.front() {
            Some(oldest) if oldest.seq <= after + 1 => Resume::Replay(
                log.messages
                    .iter()
                    .filter(|m| m.seq > after)
                    .cloned()
                    .collect(),
            ),
            _ => Resume::Reset(log.seq),
        }
    }

    /// What a poller positioned at `since` (or, with `None`, one that only asks where the
    /// channel is) gets: at most `limit` messages. Reads only: an unknown channel is answered
    /// as empty at sequence number 0 and stays unknown.
    pub fn page(&self, channel: &str, since: Option<u64>, limit: usize) -> Page {
        let Some(log) = self.channels.get(channel) else {
            return Page {
                last: 0,
                messages: Vec::new(),
                reset: since.is_some_and(|s| s > 0),
                more: false,
                modified: None,
            };
        };
        let mut page = Page {
            last: log.seq,
            messages: Vec::new(),
            reset: false,
            more: false,
            modified: log.modified,
        };
        let Some(since) = since else {
            return page;
        };
        if since == log.seq {
            return page;
        }
        let exact = since < log.seq
            && log
                .messages
                .front()
                .is_some_and(|oldest| oldest.seq <= since + 1);
        // Sequence numbers rise through the log, so the ones after `since` are a suffix.
        let from = if exact {
            log.messages.partition_point(|m| m.seq <= since)
        } else {
            page.reset = true;
            0
        };
        let available = log.messages.len() - from;
        page.more = available > limit;
        page.messages = log.messages.range(from..).take(limit).cloned().collect();
        page
    }

    /// How many channels have a history (every one ever published to, since the start or in
    /// the store).
    #[cfg(test)]
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Every channel with its sequence number and retained messages (for compacting the store).
    pub fn channels(&self) -> impl Iterator<Item = (&str, u64, &VecDeque<Arc<Message>>)> {
        self.channels
            .iter()
            .map(|(name, log)| (&**name, log.seq, &log.messages))
    }

    /// How many messages are retained over all channels.
    pub fn retained(&self) -> usize {
        self.channels.values().map(|log| log.messages.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: &str, seq: u64) -> Arc<Message> {
        Arc::new(Message {
            channel: Arc::from(channel),
            seq,
            payload: Arc::from(seq.to_string()),
        })
    }

    fn seqs(r: Resume) -> Vec<u64> {
        match r {
            Resume::Replay(m) => m.iter().map(|m| m.seq).collect(),
            Resume::Reset(s) => panic!("reset to {s}"),
        }
    }

    #[test]
    fn replays_what_is_retained_and_resets_otherwise() {
        let mut h = History::new(3);
        assert_eq!(h.resume("/a", 0), Resume::Replay(vec![]));
        assert_eq!(h.resume("/a", 2), Resume::Reset(0));
        for s in 1..=5 {
            assert!(h.push(msg("/a", s)));
        }
        assert!(!h.push(msg("/a", 5)));
        assert_eq!(h.current("/a"), 5);
        assert_eq!(h.current("/b"), 0);
        assert_eq!(seqs(h.resume("/a", 5)), Vec::<u64>::new());
        assert_eq!(seqs(h.resume("/a", 4)), vec![5]);
        assert_eq!(seqs(h.resume("/a", 2)), vec![3, 4, 5]);
        assert_eq!(h.resume("/a", 1), Resume::Reset(5));
        assert_eq!(h.resume("/a", 0), Resume::Reset(5));
        assert_eq!(h.resume("/a", 6), Resume::Reset(5));
        assert_eq!(h.retained(), 3);
    }

    fn page_seqs(p: &Page) -> Vec<u64> {
        p.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn pages_continue_exactly_or_reset_and_respect_the_limit() {
        let mut h = History::new(4);
        let p = h.page("/a", None, 10);
        assert_eq!(
            (p.last, p.reset, p.more, p.modified),
            (0, false, false, None)
        );
        assert!(!h.page("/a", Some(0), 10).reset);
        let p = h.page("/a", Some(3), 10);
        assert!(p.reset && p.messages.is_empty());
        assert_eq!(h.channel_count(), 0, "reading creates nothing");

        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for s in 1..=6 {
            assert!(h.push_at(msg("/a", s), at));
        }
        assert!(!h.push_at(msg("/a", 6), SystemTime::now()));
        let p = h.page("/a", None, 10);
        assert_eq!((p.last, page_seqs(&p), p.modified), (6, vec![], Some(at)));
        let p = h.page("/a", Some(2), 10);
        assert_eq!(
            (page_seqs(&p), p.reset, p.more),
            (vec![3, 4, 5, 6], false, false)
        );
        let p = h.page("/a", Some(2), 3);
        assert_eq!(
            (page_seqs(&p), p.reset, p.more),
            (vec![3, 4, 5], false, true)
        );
        let p = h.page("/a", Some(5), 1);
        assert_eq!((page_seqs(&p), p.reset, p.more), (vec![6], false, false));
        let p = h.page("/a", Some(6), 1);
        assert_eq!((page_seqs(&p), p.reset, p.more), (vec![], false, false));
        // Dropped after 1, and ahead of the channel: what is retained, with reset.
        let p = h.page("/a", Some(1), 3);
        assert_eq!(
            (page_seqs(&p), p.reset, p.more),
            (vec![3, 4, 5], true, true)
        );
        let p = h.page("/a", Some(0), 10);
        assert_eq!(
            (page_seqs(&p), p.reset, p.more),
            (vec![3, 4, 5, 6], true, false)
        );
        let p = h.page("/a", Some(7), 10);
        assert_eq!(
            (page_seqs(&p), p.reset, p.last),
            (vec![3, 4, 5, 6], true, 6)
        );
        // Pushed without a time (loaded from the store): no time known.
        h.push(msg("/b", 1));
        assert_eq!(h.page("/b", None, 1).modified, None);
    }

    #[test]
    fn zero_capacity_keeps_only_the_sequence() {
        let mut h = History::new(0);
        h.push(msg("/a", 1));
        h.push(msg("/a", 2));
        assert_eq!(h.current("/a"), 2);
        assert_eq!(h.resume("/a", 1), Resume::Reset(2));
        assert_eq!(h.resume("/a", 2), Resume::Replay(vec![]));
        assert!(h.advance("/a", 7));
        assert!(!h.advance("/a", 7));
        assert_eq!(h.current("/a"), 7);
        assert_eq!(h.retained(), 0);
        let p = h.page("/a", Some(3), 10);
        assert!(p.reset && p.messages.is_empty() && !p.more);
        assert!(!h.page("/a", Some(7), 10).reset);
    }
}
