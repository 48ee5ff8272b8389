//! A client's SSE channels split over as few streams as a server's cap per stream allows.
//!
//! django-eventstream refuses more than 10 channels on one stream and Pushpin holds at most 20
//! per connection by default, so a client with more channels opens several streams of at most
//! `max_channels_per_stream` each. Assignment is stable: a new channel joins a stream that has
//! room (only that stream reopens), a channel that goes leaves only its own stream.

use super::sse_stream::{SseConfig, SseStream, StreamEvent, StreamId, StreamPhase};
use super::{earliest, has, keep_where, Millis};
use crate::prelude::*;

/// Stream ids of different streams never collide: each stream numbers from its own base.
const ID_SPACE: StreamId = 1 << 40;

#[derive(Debug)]
struct Member {
    stream: SseStream,
    channels: Vec<String>,
}

/// The streams of one client.
#[derive(Debug)]
pub struct SseGroup {
    config: SseConfig,
    seed: u64,
    members: Vec<Member>,
    /// Streams created so far (the next one's id base).
    created: u64,
    /// Positions noted for channels not on any stream yet (a subscription's `since`).
    noted: Vec<(String, String)>,
}

impl SseGroup {
    /// No channels, no streams.
    pub fn new(config: SseConfig, seed: u64) -> Self {
        SseGroup {
            config,
            seed,
            members: Vec::new(),
            created: 0,
            noted: Vec::new(),
        }
    }

    /// Every channel carried, stream by stream.
    pub fn channels(&self) -> Vec<String> {
        self.members
            .iter()
            .flat_map(|m| m.channels.iter().cloned())
            .collect()
    }

    /// How many streams there are.
    pub fn stream_count(&self) -> usize {
        self.members.len()
    }

    /// Sets the channels: the ones gone leave their streams, new ones fill streams that have
    /// room (then new streams); only streams whose channels changed reopen.
    pub fn set_channels(&mut self, channels: Vec<String>, now: Millis) {
        for m in &mut self.members {
            keep_where(&mut m.channels, |c| has(&channels, c));
        }
        for c in &channels {
            if self.member_of(c).is_none() {
                self.place(c.clone());
            }
        }
        self.apply(|_| true, now);
        keep_where(&mut self.noted, |(c, _)| !has(&channels, c));
        // An emptied stream has closed itself; drop it once it has nothing more to say.
        keep_where(&mut self.members, |m| {
            !m.channels.is_empty() || m.stream.phase() != StreamPhase::Idle || m.stream.has_events()
        });
    }

    /// Adds one channel, what a subscribe does: only the stream it joins is touched (and, as
    /// with [`SseGroup::set_channels`], a halted stream tries again), so subscribing n
    /// channels one by one costs O(n²) rather than O(n³) work.
    pub fn add_channel(&mut self, channel: &str, now: Millis) {
        let known = self.member_of(channel).is_some();
        let joined = (!known).then(|| self.place(channel.to_owned()));
        self.apply(
            |(i, m)| Some(i) == joined || m.stream.phase() == StreamPhase::Halted,
            now,
        );
        keep_where(&mut self.noted, |(c, _)| c != channel);
    }

    /// The index of the stream that carries `channel`: one search for every method that
    /// looks a channel up.
    fn member_of(&self, channel: &str) -> Option<usize> {
        self.members.iter().position(|m| has(&m.channels, channel))
    }

    /// Puts a new channel in the first stream with room, or a new stream; its index.
    fn place(&mut self, channel: String) -> usize {
        let max = self.config.max_channels_per_stream.max(1);
        match self.members.iter().position(|m| m.channels.len() < max) {
            Some(i) => {
                self.members[i].channels.push(channel);
                i
            }
            None => {
                let mut stream = SseStream::new(self.config.clone(), self.seed ^ self.created);
                stream.set_id_base(self.created * ID_SPACE + 1);
                self.created += 1;
                self.members.push(Member {
                    stream,
                    channels: vec![channel],
                });
                self.members.len() - 1
            }
        }
    }

    /// Gives the streams `which` selects their channel lists (and the positions noted for them).
    fn apply(&mut self, which: impl Fn((usize, &Member)) -> bool, now: Millis) {
        for (i, m) in self.members.iter_mut().enumerate() {
            if !which((i, m)) {
                continue;
            }
            for (c, id) in &self.noted {
                if has(&m.channels, c) {
                    m.stream.note_position(c, id);
                }
            }
            m.stream.set_channels(m.channels.clone(), now);
        }
    }

    /// Another path delivered `channel` up to `id`: its stream resumes after it.
    pub fn note_position(&mut self, channel: &str, id: &str) {
        match self
            .member_of(channel)
            .and_then(|i| self.members.get_mut(i))
        {
            Some(m) => m.stream.note_position(channel, id),
            None => self.noted.push((channel.to_owned(), id.to_owned())),
        }
    }

    /// The coarse phase of the whole: open when every stream is open.
    pub fn phase(&self) -> StreamPhase {
        // One pass over the streams that carry channels, rather than a collected list of
        // their phases searched twice.
        let (mut any, mut halted, mut all_open) = (false, false, true);
        for m in self.members.iter().filter(|m| !m.channels.is_empty()) {
            any = true;
            match m.stream.phase() {
                StreamPhase::Halted => halted = true,
                StreamPhase::Open => {}
                _ => all_open = false,
            }
        }
        if !any {
            StreamPhase::Idle
        } else if halted {
            StreamPhase::Halted
        } else if all_open {
            StreamPhase::Open
        } else {
            StreamPhase::Connecting
        }
    }

    /// Whether `channel` is on a stream that is open now.
    pub fn is_live(&self, channel: &str) -> bool {
        // A channel is on one stream at most.
        self.member_of(channel)
            .and_then(|i| self.members.get(i))
            .is_some_and(|m| m.stream.phase() == StreamPhase::Open)
    }

    /// The next event, with the channels of its stream when the event concerns all of them
    /// (`Opened`, and a message whose channel the ids do not say).
    pub fn poll_event(&mut self) -> Option<(StreamEvent, Option<Vec<String>>)> {
        for m in &mut self.members {
            if let Some(ev) = m.stream.poll_event() {
                let all = matches!(
                    ev,
                    StreamEvent::Opened | StreamEvent::Message { channel: None, .. }
                );
                let channels = all.then(|| m.channels.clone());
                return Some((ev, channels));
            }
        }
        keep_where(&mut self.members, |m| {
            !m.channels.is_empty() || m.stream.phase() != StreamPhase::Idle
        });
        None
    }

    /// Runs `f` on every stream.
    fn each(&mut self, mut f: impl FnMut(&mut SseStream)) {
        for m in &mut self.members {
            f(&mut m.stream);
        }
    }

    /// See [`SseStream::handle_response`].
    pub fn handle_response(&mut self, id: StreamId, status: u16, ct: Option<&str>, now: Millis) {
        self.each(|s| s.handle_response(id, status, ct, now));
    }

    /// See [`SseStream::handle_data`].
    pub fn handle_data(&mut self, id: StreamId, bytes: &[u8], now: Millis) {
        self.each(|s| s.handle_data(id, bytes, now));
    }

    /// See [`SseStream::handle_end`].
    pub fn handle_end(&mut self, id: StreamId, now: Millis) {
        self.each(|s| s.handle_end(id, now));
    }

    /// See [`SseStream::handle_error`].
    pub fn handle_error(&mut self, id: StreamId, message: &str, now: Millis) {
        self.each(|s| s.handle_error(id, message, now));
    }

    /// See [`SseStream::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Millis) {
        self.each(|s| s.handle_timeout(now));
    }

    /// The earliest deadline of any stream.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t = None;
        for m in &self.members {
            t = earliest(t, m.stream.poll_timeout());
        }
        t
    }

    /// See [`SseStream::reconnect_now`].
    pub fn reconnect_now(&mut self, now: Millis) {
        self.each(|s| s.reconnect_now(now));
    }

    /// See [`SseStream::suspend`].
    pub fn suspend(&mut self) {
        self.each(SseStream::suspend);
    }

    /// See [`SseStream::resume`].
    pub fn resume(&mut self, now: Millis) {
        self.each(|s| s.resume(now));
    }

    /// Stops every stream for good.
    pub fn close(&mut self) {
        self.each(SseStream::close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request ids the group asked to open, in order.
    fn opened(g: &mut SseGroup) -> Vec<StreamId> {
        let mut ids = Vec::new();
        while let Some((ev, _)) = g.poll_event() {
            if let StreamEvent::Open(r) = ev {
                ids.push(r.id);
            }
        }
        ids
    }

    #[test]
    fn phase_and_liveness_follow_every_stream() {
        let mut config = SseConfig::new("/events/");
        config.max_channels_per_stream = 1;
        let mut g = SseGroup::new(config, 7);
        assert_eq!(g.phase(), StreamPhase::Idle);
        g.set_channels(vec!["a".into(), "b".into()], 0);
        g.handle_timeout(0);
        let ids = opened(&mut g);
        assert_eq!((ids.len(), g.stream_count()), (2, 2));
        assert_eq!(g.phase(), StreamPhase::Connecting);
        g.handle_response(ids[0], 200, Some("text/event-stream"), 1);
        // One stream open, one still connecting.
        assert_eq!(g.phase(), StreamPhase::Connecting);
        assert!(g.is_live("a") && !g.is_live("b") && !g.is_live("c"));
        g.handle_response(ids[1], 200, Some("text/event-stream; charset=utf-8"), 2);
        assert_eq!(g.phase(), StreamPhase::Open);
        assert!(g.is_live("a") && g.is_live("b"));
        // A channel joins a third stream: connecting again until it opens; then refused.
        g.add_channel("c", 3);
        assert_eq!(g.phase(), StreamPhase::Connecting);
        g.handle_timeout(3);
        let ids = opened(&mut g);
        assert_eq!(ids.len(), 1);
        g.handle_response(ids[0], 403, None, 4);
        assert_eq!(g.phase(), StreamPhase::Halted);
        assert!(g.is_live("a") && !g.is_live("c"));
        // The earliest idle deadline: the stream that opened first.
        assert_eq!(g.poll_timeout(), Some(1 + 45_000));
        g.set_channels(Vec::new(), 5);
        while g.poll_event().is_some() {}
        assert_eq!(g.phase(), StreamPhase::Idle);
        assert_eq!(g.poll_timeout(), None);
    }
}
