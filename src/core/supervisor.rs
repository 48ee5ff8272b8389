//! The push/poll supervisor: when push cannot be established within a bound, or keeps
//! failing, deliveries come from interval polling; when push is back and stays up, one
//! catch-up poll, then push only (plus an optional slow safety-net poll).
//!
//! It owns the pollers of every subscription that names a poll target, and the page facts that
//! pace them: polls pause while the page is hidden or the browser offline, and one poll runs
//! on return. Push itself is retried by its own state machine all along; the supervisor only
//! watches whether it is up.

use crate::prelude::*;

use super::client::SubId;
use super::poll::{PollBody, PollId, PollOutcome, PollRequest, PollSpec, Poller};
use super::rng::Rng;
use super::Millis;

/// When to switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Push down (or not yet up) this long: poll.
    pub downshift_ms: Millis,
    /// Push up this long without dropping: back to push.
    pub upshift_ms: Millis,
    /// Push dropped this many times within `flap_window_ms`: poll.
    pub flaps: usize,
    /// The window in which drops are counted.
    pub flap_window_ms: Millis,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            downshift_ms: 5_000,
            upshift_ms: 2_000,
            flaps: 3,
            flap_window_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry<P> {
    poller: Poller,
    subs: Vec<SubId>,
    /// The target answered in tidings-relay's message format (ids comparable with push).
    relay: bool,
    /// An answer came (a subscription joining now is ready at once).
    answered: bool,
    /// The last whole body, for a subscription joining later.
    last_whole: Option<P>,
}

/// What a subscription joining a poller gets at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined<P> {
    /// The poller is new, or has not answered yet.
    Waiting,
    /// The poller answered before: ready now, with the last whole body if it has one.
    Answered(Option<P>),
}

/// Where deliveries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Push carries data (pollers run only as a slow safety net).
    Push,
    /// Push is down or flapping: pollers run at their interval.
    Polling,
}

/// The supervisor.
#[derive(Debug, Clone)]
pub struct Supervisor<P> {
    config: SupervisorConfig,
    entries: Vec<Entry<P>>,
    mode: Mode,
    push_up_since: Option<Millis>,
    push_down_since: Option<Millis>,
    drops: Vec<Millis>,
    visible: bool,
    online: bool,
    /// A poll came due while paused: poll once on return.
    missed: bool,
    /// Push is not expected at all (poll-only clients).
    poll_only: bool,
    rng: Rng,
    next_id: PollId,
}

impl<P: Clone> Supervisor<P> {
    /// A supervisor with no pollers; `poll_only` when there is no push at all.
    pub fn new(config: SupervisorConfig, poll_only: bool, seed: u64) -> Self {
        Supervisor {
            config,
            entries: Vec::new(),
            mode: if poll_only { Mode::Polling } else { Mode::Push },
            push_up_since: None,
            push_down_since: None,
            drops: Vec::new(),
            visible: true,
            online: true,
            missed: false,
            poll_only,
            rng: Rng::new(seed ^ 0x5EED),
            next_id: 1,
        }
    }

    /// The current mode (always `Push` while there is nothing to poll).
    pub fn mode(&self) -> Mode {
        if self.entries.is_empty() {
            Mode::Push
        } else {
            self.mode
        }
    }

    /// Whether the browser is online.
    pub fn online(&self) -> bool {
        self.online
    }

    /// Subscription `sub` polls `spec` (sharing the poller of an equal target).
    pub fn attach(&mut self, sub: SubId, spec: PollSpec, now: Millis) -> Joined<P> {
        match self
            .entries
            .iter_mut()
            .find(|e| e.poller.spec().target == spec.target)
        {
            Some(e) => {
                e.subs.push(sub);
                if e.answered {
                    Joined::Answered(e.last_whole.clone())
                } else {
                    Joined::Waiting
                }
            }
            None => {
                // One poll at once, whatever the mode: it loads the target's current data, or
                // (tidings-relay's format) learns the position later polls resume from, so a
                // downshift misses nothing published in between.
                let mut poller = Poller::new(spec);
                poller.poll_soon(now);
                self.entries.push(Entry {
                    poller,
                    subs: vec![sub],
                    relay: false,
                    answered: false,
                    last_whole: None,
                });
                Joined::Waiting
            }
        }
    }

    /// The index of the entry `sub` is attached to (at most one: the client attaches each
    /// subscription once). One search for every method that looks a subscription up.
    fn entry_of(&self, sub: SubId) -> Option<usize> {
        // `any`, not `contains`: on integers `contains` is an unrolled search of four times
        // the code, for lists of a few subscriptions.
        #[allow(clippy::manual_contains)]
        self.entries
            .iter()
            .position(|e| e.subs.iter().any(|s| *s == sub))
    }

    /// `sub`'s entry, when its target answered in tidings-relay's format.
    fn relay_entry(&self, sub: SubId) -> Option<&Entry<P>> {
        self.entries.get(self.entry_of(sub)?).filter(|e| e.relay)
    }

    /// The position `sub`'s relay-format target will be polled from.
    pub fn position(&self, sub: SubId) -> Option<&str> {
        self.relay_entry(sub).and_then(|e| e.poller.position())
    }

    /// `sub` has `id` already (push delivered it, or the page loaded history up to it): a
    /// later poll of its relay-format target starts after it. Before the target answered, its
    /// format is unknown; the position is then only kept for a relay answer to use.
    pub fn delivered(&mut self, sub: SubId, id: &str) {
        if let Some(e) = self.entry_of(sub).and_then(|i| self.entries.get_mut(i)) {
            if e.relay || !e.answered {
                e.poller.advance_to(id);
            }
        }
    }

    /// Subscription `sub` is gone; returns the poll to abort when its poller went with it.
    pub fn detach(&mut self, sub: SubId) -> Option<PollId> {
        let i = self.entry_of(sub)?;
        let e = self.entries.get_mut(i)?;
        super::remove_id(&mut e.subs, sub);
        if e.subs.is_empty() {
            super::take_at(&mut self.entries, i)?.poller.abort()
        } else {
            None
        }
    }

    /// Whether `sub`'s target answered in tidings-relay's message format.
    pub fn relay_format(&self, sub: SubId) -> bool {
        self.relay_entry(sub).is_some()
    }

    /// A push hint for `sub`: refresh its target soon.
    pub fn hint(&mut self, sub: SubId, now: Millis) {
        if let Some(e) = self.entry_of(sub).and_then(|i| self.entries.get_mut(i)) {
            e.poller.poll_soon(now);
        }
    }

    /// Whether push is up now (called after every change of the push state).
    pub fn push_status(&mut self, up: bool, now: Millis) {
        if up {
            if self.push_up_since.is_none() {
                self.push_up_since = Some(now);
            }
            self.push_down_since = None;
        } else {
            if self.push_up_since.take().is_some() {
                self.drops.push(now);
            }
            if self.push_down_since.is_none() {
                self.push_down_since = Some(now);
            }
        }
        self.evaluate(now);
    }

    /// The page became visible or hidden.
    pub fn set_visible(&mut self, visible: bool, now: Millis) {
        self.visible = visible;
        self.resume_if_active(now);
    }

    /// The browser went online or offline; back online, every target is polled at once.
    pub fn set_online(&mut self, online: bool, now: Millis) {
        if online && !self.online {
            self.missed = true;
        }
        self.online = online;
        self.resume_if_active(now);
    }

    fn active(&self) -> bool {
        self.visible && self.online
    }

    fn resume_if_active(&mut self, now: Millis) {
        if self.active() && core::mem::take(&mut self.missed) {
            self.poll_all_soon(now);
        }
    }

    /// Switches mode when the push state says so.
    fn evaluate(&mut self, now: Millis) {
        if self.poll_only {
            return;
        }
        while self
            .drops
            .first()
            .is_some_and(|t| now.saturating_sub(*t) > self.config.flap_window_ms)
        {
            super::take_at(&mut self.drops, 0);
        }
        let switch = match self.mode {
            Mode::Push => {
                let down_long = self
                    .push_down_since
                    .is_some_and(|t| now.saturating_sub(t) >= self.config.downshift_ms);
                down_long || self.drops.len() >= self.config.flaps
            }
            // Up long enough, and not flapping any more (drops stay counted across an
            // upshift, so a push that keeps dropping is caught again at once).
            Mode::Polling => {
                self.push_up_since
                    .is_some_and(|t| now.saturating_sub(t) >= self.config.upshift_ms)
                    && self.drops.len() < self.config.flaps
            }
        };
        if switch {
            self.mode = match self.mode {
                Mode::Push => Mode::Polling,
                Mode::Polling => Mode::Push,
            };
            // Down: poll at once. Up: one catch-up poll, then the safety-net pace.
            self.poll_all_soon(now);
        }
    }

    /// Every target is polled as soon as possible.
    fn poll_all_soon(&mut self, now: Millis) {
        for e in &mut self.entries {
            e.poller.poll_soon(now);
        }
    }

    /// Time passed: switch if due, and start the polls that are due.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<PollRequest> {
        self.evaluate(now);
        let mut out = Vec::new();
        for e in &mut self.entries {
            if !e.poller.due(now) {
                continue;
            }
            if self.visible && self.online {
                let id = self.next_id;
                self.next_id += 1;
                out.push(e.poller.start(id));
            } else {
                // Paused: no timer until the page is back.
                self.missed = true;
                let interval = 0;
                e.poller.schedule(now, interval, &mut self.rng);
            }
        }
        out
    }

    /// When `handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t: Option<Millis> = None;
        let mut at = |x: Millis| t = Some(t.map_or(x, |t| t.min(x)));
        if !self.entries.is_empty() && !self.poll_only {
            match self.mode {
                Mode::Push => {
                    if let Some(d) = self.push_down_since {
                        at(d + self.config.downshift_ms);
                    }
                }
                Mode::Polling => {
                    if let Some(u) = self.push_up_since {
                        let mut t = u + self.config.upshift_ms;
                        // Until enough old drops left the window. By `get`, not an index: no
                        // panic path (and with `flaps: 0` there is no such drop to wait for).
                        let oldest = self
                            .drops
                            .len()
                            .checked_sub(self.config.flaps)
                            .and_then(|i| self.drops.get(i));
                        if let Some(oldest) = oldest {
                            t = t.max(oldest + self.config.flap_window_ms + 1);
                        }
                        at(t);
                    }
                }
            }
        }
        for e in &self.entries {
            if let Some(n) = e.poller.next_at() {
                at(n);
            }
        }
        t
    }

    /// The answer to poll `id`: the subscriptions it feeds and what is new for them.
    pub fn finish(
        &mut self,
        id: PollId,
        etag: Option<String>,
        last_modified: Option<String>,
        body: PollBody<P>,
        now: Millis,
    ) -> Option<(Vec<SubId>, PollOutcome<P>)> {
        let relay = matches!(body, PollBody::Messages { .. });
        let mode = self.mode;
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.poller.in_flight() == Some(id))?;
        let (outcome, again) = e.poller.finish(id, etag, last_modified, body)?;
        e.relay |= relay;
        e.answered = true;
        if let PollOutcome::Whole(data) = &outcome {
            e.last_whole = Some(data.clone());
        }
        Self::reschedule(e, mode, again, now, &mut self.rng);
        Some((e.subs.clone(), outcome))
    }

    /// Poll `id` failed: the next one runs at the usual pace.
    pub fn failed(&mut self, id: PollId, now: Millis) -> bool {
        let mode = self.mode;
        let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.poller.in_flight() == Some(id))
        else {
            return false;
        };
        e.poller.failed(id);
        Self::reschedule(e, mode, false, now, &mut self.rng);
        true
    }

    fn reschedule(e: &mut Entry<P>, mode: Mode, again: bool, now: Millis, rng: &mut Rng) {
        if again {
            e.poller.poll_soon(now);
            return;
        }
        let interval = match mode {
            Mode::Polling => e.poller.spec().interval_ms,
            Mode::Push => e.poller.spec().push_interval_ms,
        };
        e.poller.schedule(now, interval, rng);
    }

    /// The page went into the back/forward cache: polls stop (returned to abort) until
    /// `resume`.
    pub fn suspend(&mut self) -> Vec<PollId> {
        self.visible = false;
        let mut ids = Vec::new();
        for e in &mut self.entries {
            if let Some(id) = e.poller.abort() {
                ids.push(id);
            }
            e.poller.schedule(0, 0, &mut self.rng);
        }
        self.missed = true;
        ids
    }

    /// Forgets every request in flight (closing); returns them to abort.
    pub fn abort_all(&mut self) -> Vec<PollId> {
        // A loop, not `filter_map` and `collect`: less code for the adapters.
        let mut ids = Vec::new();
        for e in &mut self.entries {
            if let Some(id) = e.poller.abort() {
                ids.push(id);
            }
        }
        self.entries.clear();
        ids
    }
}
