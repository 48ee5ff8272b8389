//! Bayeux sessions: who is subscribed to what, what waits for each client, which connect is
//! held, and when a session ends.
//!
//! Lock order: the hub's history lock, then the registry, then one session's state. Published
//! messages are queued for sessions by [`Sessions::dispatch`] while the hub holds its history
//! write lock, and subscriptions (with their replay) are made by [`Sessions::subscribe`] while
//! the caller holds the history read lock: a subscription therefore sees each message exactly
//! once, either in its replay or live, never both and never neither.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tidings::core::channel::matches;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::history::{History, Message, Resume};
use crate::Config;

/// How many channels of one subscribe's replay map are looked at; the rest are reset.
pub(crate) const MAX_REPLAY_CHANNELS: usize = 1024;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client sent `/meta/disconnect`.
    Disconnected,
    /// No connect for longer than the session timeout.
    Expired,
    /// More messages piled up for it than a client may have waiting.
    TooSlow,
    /// The relay shut down.
    Shutdown,
}

/// The limits sessions live by.
#[derive(Debug, Clone)]
struct Limits {
    session_timeout: Duration,
    max_queued: usize,
    max_subscriptions: usize,
    max_clients: usize,
}

/// Every session of a relay.
#[derive(Debug)]
pub(crate) struct Sessions {
    registry: Mutex<Registry>,
    limits: Limits,
    next_socket: AtomicU64,
    sweeping: AtomicBool,
}

#[derive(Debug, Default)]
struct Registry {
    clients: HashMap<Arc<str>, Arc<Session>>,
    /// Subscription pattern → the clients subscribed with it.
    patterns: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

/// One client's session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The `clientId`.
    pub(crate) id: Arc<str>,
    state: Mutex<State>,
    /// Bumped on every change a waiting connect or a WebSocket may care about.
    changed: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    ended: Option<End>,
    subscriptions: HashSet<Arc<str>>,
    queue: VecDeque<Arc<Message>>,
    /// Bumped by every connect: a held connect whose number is not the latest is answered.
    connect: u64,
    /// Connects being held now (the session does not expire while there is one).
    holding: usize,
    last_seen: Instant,
    /// The WebSocket that data is pushed to as soon as it is queued.
    socket: Option<u64>,
}

/// Why a subscribe was refused (the subscription is not changed).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    /// The session is gone.
    Ended,
    /// The client would hold more subscriptions than allowed.
    TooMany,
}

/// What a held connect should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HoldCheck {
    /// Keep waiting.
    Wait,
    /// Messages are queued: answer with them.
    Ready,
    /// A newer connect came: answer at once, without messages.
    Superseded,
    /// The session ended.
    Ended,
}

/// A held connect: dropping it lets the session's expiry clock run again.
#[derive(Debug)]
pub(crate) struct Hold {
    session: Arc<Session>,
    number: u64,
}

impl Hold {
    /// The session it belongs to.
    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// What the connect should do now.
    pub(crate) fn check(&self) -> HoldCheck {
        let state = self.session.state();
        if state.ended.is_some() {
            HoldCheck::Ended
        } else if state.connect != self.number {
            HoldCheck::Superseded
        } else if state.queue.is_empty() {
            HoldCheck::Wait
        } else {
            HoldCheck::Ready
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut state = self.session.state();
        state.holding = state.holding.saturating_sub(1);
        state.last_seen = Instant::now();
    }
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change to the session.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Why the session ended, if it did.
    pub(crate) fn ended(&self) -> Option<End> {
        self.state().ended
    }

    /// Starts holding a connect; every connect held before is superseded. `socket` is the
    /// WebSocket it came over (data is then pushed there), `None` for long-polling.
    /// `None` if the session has ended.
    pub(crate) fn begin_connect(self: &Arc<Self>, socket: Option<u64>) -> Option<Hold> {
        let number = {
            let mut state = self.state();
            if state.ended.is_some() {
                return None;
            }
            state.connect += 1;
            state.holding += 1;
            state.last_seen = Instant::now();
            state.socket = socket;
            state.connect
        };
        self.notify();
        Some(Hold {
            session: Arc::clone(self),
            number,
        })
    }

    /// Whether data for this session is pushed to WebSocket `socket`.
    pub(crate) fn pushes_to(&self, socket: u64) -> bool {
        self.state().socket == Some(socket)
    }

    /// Stops pushing to `socket` (it closed).
    pub(crate) fn release_socket(&self, socket: u64) {
        let mut state = self.state();
        if state.socket == Some(socket) {
            state.socket = None;
            state.last_seen = Instant::now();
        }
    }

    /// Takes queued messages, oldest first: at least one if any is queued, then as many as fit
    /// in about `budget` bytes.
    pub(crate) fn drain(&self, budget: usize) -> Vec<Arc<Message>> {
        let mut state = self.state();
        let mut out = Vec::new();
        let mut size = 0;
        while let Some(m) = state.queue.front() {
            size += m.payload.len() + m.channel.len() + 48;
            if !out.is_empty() && size > budget {
                break;
            }
            out.extend(state.queue.pop_front());
        }
        out
    }

    /// How many messages wait for the client.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.state().queue.len()
    }
}

impl Sessions {
    /// No sessions yet.
    pub(crate) fn new(config: &Config) -> Sessions {
        Sessions {
            registry: Mutex::new(Registry::default()),
            limits: Limits {
                session_timeout: config.session_timeout,
                max_queued: config.max_queued_per_client,
                max_subscriptions: config.max_subscriptions_per_client,
                max_clients: config.max_clients,
            },
            next_socket: AtomicU64::new(1),
            sweeping: AtomicBool::new(false),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A number for a new WebSocket.
    pub(crate) fn socket_id(&self) -> u64 {
        self.next_socket.fetch_add(1, Ordering::Relaxed)
    }

    /// How many sessions exist.
    pub(crate) fn count(&self) -> usize {
        self.registry().clients.len()
    }

    /// A new session with a random id; `None` when there are already as many as allowed.
    pub(crate) fn create(&self) -> Option<Arc<Session>> {
        let mut registry = self.registry();
        if registry.clients.len() >= self.limits.max_clients {
            self.sweep_locked(&mut registry, Instant::now());
            if registry.clients.len() >= self.limits.max_clients {
                return None;
            }
        }
        loop {
            let id: Arc<str> = Arc::from(random_id());
            if let Entry::Vacant(slot) = registry.clients.entry(Arc::clone(&id)) {
                let session = Arc::new(Session {
                    id,
                    state: Mutex::new(State {
                        ended: None,
                        subscriptions: HashSet::new(),
                        queue: VecDeque::new(),
                        connect: 0,
                        holding: 0,
                        last_seen: Instant::now(),
                        socket: None,
                    }),
                    changed: watch::Sender::new(0),
                });
                slot.insert(Arc::clone(&session));
                return Some(session);
            }
        }
    }

    /// The live session `id`; an expired one is ended here and not returned.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut registry = self.registry();
        let session = Arc::clone(registry.clients.get(id)?);
        if self.expired(&session, Instant::now()) {
            end_locked(&mut registry, &session, End::Expired);
            return None;
        }
        Some(session)
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        let state = session.state();
        state.holding == 0
            && now.saturating_duration_since(state.last_seen) > self.limits.session_timeout
    }

    /// Ends `session`: it leaves the registry with its subscriptions, and anything waiting on it
    /// is woken.
    pub(crate) fn end(&self, session: &Arc<Session>, why: End) {
        end_locked(&mut self.registry(), session, why);
    }

    /// Ends every session (the relay is shutting down).
    pub(crate) fn end_all(&self) {
        let mut registry = self.registry();
        let all: Vec<Arc<Session>> = registry.clients.values().cloned().collect();
        for session in all {
            end_locked(&mut registry, &session, End::Shutdown);
        }
    }

    /// Ends the sessions that have expired by `now`; returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        self.sweep_locked(&mut self.registry(), now)
    }

    fn sweep_locked(&self, registry: &mut Registry, now: Instant) -> usize {
        let expired: Vec<Arc<Session>> = registry
            .clients
            .values()
            .filter(|s| self.expired(s, now))
            .cloned()
            .collect();
        for session in &expired {
            end_locked(registry, session, End::Expired);
        }
        expired.len()
    }

    /// Starts the task that ends expired sessions, once, on the current runtime. It stops when
    /// the relay is dropped or `stop` turns true.
    pub(crate) fn start_sweeper(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let every = (self.limits.session_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let sessions: Weak<Sessions> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = async { drop(stop.wait_for(|&s| s).await) } => return,
                    _ = tick.tick() => {}
                }
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                sessions.sweep(Instant::now());
            }
        });
    }

    /// Subscribes `session` to `patterns` (already validated) and queues the replay asked for
    /// with `replay` (channel → the last sequence number the client saw, `None` when the id
    /// given was not one). Call it holding the history read lock (`history` is what it guards).
    /// Returns the replay channels that cannot be resumed.
    pub(crate) fn subscribe(
        &self,
        session: &Arc<Session>,
        patterns: &[String],
        replay: &[(String, Option<u64>)],
        history: &History,
    ) -> Result<Vec<String>, SubscribeError> {
        let mut registry = self.registry();
        let mut reset = Vec::new();
        {
            let mut state = session.state();
            if state.ended.is_some() {
                return Err(SubscribeError::Ended);
            }
            let new = patterns
                .iter()
                .filter(|p| !state.subscriptions.contains(p.as_str()))
                .collect::<HashSet<_>>()
                .len();
            if state.subscriptions.len() + new > self.limits.max_subscriptions {
                return Err(SubscribeError::TooMany);
            }
            for pattern in patterns {
                let pattern: Arc<str> = Arc::from(pattern.as_str());
                registry
                    .patterns
                    .entry(Arc::clone(&pattern))
                    .or_default()
                    .insert(Arc::clone(&session.id));
                state.subscriptions.insert(pattern);
            }
            for (i, (channel, after)) in replay.iter().enumerate() {
                if !patterns.iter().any(|p| matches(p, channel)) {
                    continue;
                }
                let after = match after {
                    Some(after) if i < MAX_REPLAY_CHANNELS => *after,
                    _ => {
                        reset.push(channel.clone());
                        continue;
                    }
                };
                match history.resume(channel, after) {
                    Resume::Replay(messages) => {
                        let already = state
                            .queue
                            .iter()
                            .filter(|m| &*m.channel == channel)
                            .count();
                        if state.queue.len() - already + messages.len() > self.limits.max_queued {
                            reset.push(channel.clone());
                            continue;
                        }
                        // Whatever was queued live for the channel is in the replay too.
                        state.queue.retain(|m| &*m.channel != channel);
                        state.queue.extend(messages);
                    }
                    Resume::Reset(_) => reset.push(channel.clone()),
                }
            }
        }
        drop(registry);
        session.notify();
        Ok(reset)
    }

    /// Removes `patterns` from the subscriptions of `session`; what was queued stays queued.
    pub(crate) fn unsubscribe(&self, session: &Arc<Session>, patterns: &[String]) {
        let mut registry = self.registry();
        let mut state = session.state();
        for pattern in patterns {
            if state.subscriptions.remove(pattern.as_str()) {
                unindex(&mut registry, pattern, &session.id);
            }
        }
    }

    /// Queues published messages for every session subscribed to their channels (once per
    /// session however many of its patterns match). A session that would have more waiting than
    /// allowed is ended. Call it holding the history write lock, in sequence order.
    pub(crate) fn dispatch(&self, messages: &[Arc<Message>]) {
        let mut registry = self.registry();
        if registry.patterns.is_empty() {
            return;
        }
        let mut woken: HashMap<Arc<str>, Arc<Session>> = HashMap::new();
        let mut too_slow: Vec<Arc<Session>> = Vec::new();
        for message in messages {
            let mut targets: HashSet<&Arc<str>> = HashSet::new();
            for (pattern, clients) in &registry.patterns {
                if matches(pattern, &message.channel) {
                    targets.extend(clients.iter());
                }
            }
            for id in targets {
                let Some(session) = registry.clients.get(id) else {
                    continue;
                };
                let mut state = session.state();
                if state.ended.is_some() {
                    continue;
                }
                if state.queue.len() >= self.limits.max_queued {
                    state.queue.clear();
                    drop(state);
                    too_slow.push(Arc::clone(session));
                    continue;
                }
                state.queue.push_back(Arc::clone(message));
                woken
                    .entry(Arc::clone(id))
                    .or_insert_with(|| Arc::clone(session));
            }
        }
        for session in &too_slow {
            end_locked(&mut registry, session, End::TooSlow);
        }
        drop(registry);
        for session in woken.values() {
            session.notify();
        }
    }
}

fn unindex(registry: &mut Registry, pattern: &str, id: &Arc<str>) {
    if let Some(clients) = registry.patterns.get_mut(pattern) {
        clients.remove(id);
        if clients.is_empty() {
            registry.patterns.remove(pattern);
        }
    }
}

fn end_locked(registry: &mut Registry, session: &Arc<Session>, why: End) {
    {
        let mut state = session.state();
        if state.ended.is_none() {
            state.ended = Some(why);
        }
        state.queue.clear();
        for pattern in std::mem::take(&mut state.subscriptions) {
            unindex(registry, &pattern, &session.id);
        }
    }
    if registry
        .clients
        .get(&session.id)
        .is_some_and(|s| Arc::ptr_eq(s, session))
    {
        registry.clients.remove(&session.id);
    }
    session.notify();
}

/// 160 random bits in lowercase hex (the `clientId`).
fn random_id() -> String {
    let mut bytes = [0u8; 20];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: fall back to the hasher's per-process random keys, mixed with
        // a counter and the time. Still unguessable in practice; never a panic.
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let h = RandomState::new().hash_one((n, i, std::time::SystemTime::now()));
            chunk.copy_from_slice(&h.to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    fn sessions(max_queued: usize) -> Sessions {
        Sessions::new(&Config {
            max_queued_per_client: max_queued,
            max_subscriptions_per_client: 3,
            max_clients: 2,
            session_timeout: Duration::from_secs(60),
            ..Config::default()
        })
    }

    fn seqs(s: &Session) -> Vec<(String, u64)> {
        s.drain(usize::MAX)
            .iter()
            .map(|m| (m.channel.to_string(), m.seq))
            .collect()
    }

    #[tokio::test]
    async fn wildcards_deliver_once_and_unsubscribing_stops_delivery() {
        let s = sessions(10);
        let a = s.create().unwrap();
        let h = History::new(10);
        let pats = ["/a/*".to_owned(), "/a/**".to_owned(), "/a/b".to_owned()];
        assert_eq!(s.subscribe(&a, &pats, &[], &h), Ok(vec![]));
        s.dispatch(&[msg("/a/b", 1), msg("/a/b/c", 1), msg("/b", 1)]);
        assert_eq!(seqs(&a), [("/a/b".into(), 1), ("/a/b/c".into(), 1)]);
        s.unsubscribe(&a, &pats[1..]);
        s.dispatch(&[msg("/a/b", 2), msg("/a/b/c", 2)]);
        assert_eq!(seqs(&a), [("/a/b".into(), 2)]);
        assert_eq!(
            s.subscribe(&a, &["/x".into(), "/y".into(), "/z".into()], &[], &h),
            Err(SubscribeError::TooMany)
        );
    }

    #[tokio::test]
    async fn replay_replaces_what_was_queued_live_and_resets_what_cannot_be_resumed() {
        let s = sessions(10);
        let a = s.create().unwrap();
        let mut h = History::new(3);
        for seq in 1..=5 {
            h.push(msg("/c/x", seq));
        }
        s.subscribe(&a, &["/c/*".into()], &[], &h).unwrap();
        s.dispatch(&[msg("/c/y", 1)]);
        // /c/x 5 queued live, then a replay from 3 over it: 4, 5 once each.
        a.state().queue.push_back(msg("/c/x", 5));
        let replay = vec![
            ("/c/x".to_owned(), Some(3)),
            ("/c/z".to_owned(), Some(2)),
            ("/c/w".to_owned(), None),
            ("/other".to_owned(), Some(1)),
        ];
        let reset = s.subscribe(&a, &["/c/*".into()], &replay, &h).unwrap();
        assert_eq!(reset, ["/c/z", "/c/w"]);
        assert_eq!(
            seqs(&a),
            [("/c/y".into(), 1), ("/c/x".into(), 4), ("/c/x".into(), 5)]
        );
        // Dropped from history: reset.
        let reset = s
            .subscribe(&a, &["/c/x".into()], &[("/c/x".into(), Some(1))], &h)
            .unwrap();
        assert_eq!(reset, ["/c/x"]);
        assert_eq!(a.queued(), 0);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_ended() {
        let s = sessions(2);
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        assert!(s.create().is_none(), "at most two clients");
        let h = History::new(3);
        s.subscribe(&a, &["/x".into()], &[], &h).unwrap();
        s.subscribe(&b, &["/x".into()], &[], &h).unwrap();
        s.dispatch(&[msg("/x", 1), msg("/x", 2)]);
        assert_eq!(b.drain(1).len(), 1, "at least one, even over the budget");
        s.dispatch(&[msg("/x", 3)]);
        assert_eq!(a.ended(), Some(End::TooSlow));
        assert!(s.get(&a.id).is_none());
        assert!(b.ended().is_none());
        assert_eq!(s.count(), 1);
        assert!(s.registry().patterns["/x"].len() == 1);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_unless_a_connect_is_held() {
        let s = sessions(2);
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        s.subscribe(&a, &["/x".into()], &[], &History::new(1))
            .unwrap();
        let hold = b.begin_connect(None).unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(s.sweep(Instant::now()), 1);
        assert_eq!(a.ended(), Some(End::Expired));
        assert!(s.registry().patterns.is_empty());
        assert!(s.get(&b.id).is_some());
        drop(hold);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(s.get(&b.id).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(s.get(&b.id).is_none());
        assert_eq!(b.ended(), Some(End::Expired));
    }

    #[tokio::test]
    async fn a_newer_connect_supersedes_the_held_one() {
        let s = sessions(2);
        let a = s.create().unwrap();
        let first = a.begin_connect(None).unwrap();
        assert_eq!(first.check(), HoldCheck::Wait);
        let second = a.begin_connect(Some(7)).unwrap();
        assert_eq!(first.check(), HoldCheck::Superseded);
        assert_eq!(second.check(), HoldCheck::Wait);
        assert!(a.pushes_to(7));
        a.release_socket(7);
        assert!(!a.pushes_to(7));
        s.end(&a, End::Disconnected);
        assert_eq!(second.check(), HoldCheck::Ended);
        assert!(a.begin_connect(None).is_none());
        assert_ne!(random_id(), random_id());
        assert_eq!(random_id().len(), 40);
    }
}
