//! The shared state of a relay: history, store and the live feed, and the two operations on
//! them: publishing a batch and subscribing a stream.
//!
//! Publishes are serialised by one lock that covers numbering, the store append, the history
//! update and the broadcast, so every stream sees each channel's messages in sequence order.
//! A stream subscribes to the live feed before it reads history; whatever arrives live that it
//! already got from history it skips by sequence number.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tidings::core::event_id::Positions;
use tokio::sync::{broadcast, watch};

use crate::bayeux::session::Sessions;
use crate::demo::Comments;
use crate::faults::Faults;
use crate::history::{History, Message, Page, Resume};
use crate::store::Store;
use crate::{Config, Error};

/// The state behind every handler.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) config: Config,
    history: RwLock<History>,
    /// Held for the whole of a publish; `None` inside when there is no store file.
    writer: Mutex<Option<Store>>,
    live: broadcast::Sender<Arc<Message>>,
    shutdown: watch::Sender<bool>,
    /// The Bayeux clients, fed by every publish.
    pub(crate) sessions: Arc<Sessions>,
    faults: watch::Sender<Faults>,
    /// When this relay was built: the `Last-Modified` of channels with no publish since.
    pub(crate) started: SystemTime,
    /// Random, per relay instance: part of every `ETag`, so a relay restarted without its
    /// history (whose sequence numbers start again) never matches an old tag.
    pub(crate) epoch: u64,
    /// The demo's comments (served only with `Config::demo`).
    pub(crate) comments: tokio::sync::Mutex<Comments>,
    /// Forwards every publish to a GRIP proxy (`Config::grip_publish`).
    grip: Option<Arc<crate::grip::Forwarder>>,
}

/// Where a new stream starts, and what it must be sent before live messages.
#[derive(Debug)]
pub(crate) struct Start {
    /// The positions announced by `stream-open`.
    pub open: Positions,
    /// Channels whose position could not be continued, with the current sequence number the
    /// stream continues from instead.
    pub reset: Vec<(String, u64)>,
    /// Messages to replay, each channel's in sequence order.
    pub replay: Vec<Arc<Message>>,
    /// The live feed, subscribed before history was read.
    pub live: broadcast::Receiver<Arc<Message>>,
}

impl Hub {
    /// Builds the state, loading the store file if one is configured.
    pub(crate) fn new(config: Config) -> Result<Hub, Error> {
        let (store, history) = match &config.store {
            Some(path) => {
                let (store, history) = Store::open(path, config.history)?;
                (Some(store), history)
            }
            None => (None, History::new(config.history)),
        };
        let started = SystemTime::now();
        let (live, _) = broadcast::channel(config.live_buffer);
        let grip = crate::grip::Forwarder::start(&config)?;
        Ok(Hub {
            grip,
            started,
            epoch: epoch(started),
            comments: tokio::sync::Mutex::new(Comments::seeded(started)),
            sessions: Arc::new(Sessions::new(&config)),
            faults: watch::Sender::new(config.faults.clone()),
            config,
            history: RwLock::new(history),
            writer: Mutex::new(store),
            live,
            shutdown: watch::Sender::new(false),
        })
    }

    fn history(&self) -> RwLockReadGuard<'_, History> {
        self.history.read().unwrap_or_else(|e| e.into_inner())
    }

    fn history_mut(&self) -> RwLockWriteGuard<'_, History> {
        self.history.write().unwrap_or_else(|e| e.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Option<Store>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers, stores, records and broadcasts a batch of already validated
    /// `(channel, payload)` messages, all or none. Returns each message's sequence number.
    /// Blocks on file IO: call it from a blocking context.
    pub(crate) fn publish_blocking(&self, batch: Vec<(String, String)>) -> io::Result<Vec<u64>> {
        let mut writer = self.writer();
        let messages: Vec<Arc<Message>> = {
            let history = self.history();
            let mut next: Vec<(&str, u64)> = Vec::new();
            let mut out = Vec::with_capacity(batch.len());
            for (channel, payload) in &batch {
                let seq = match next.iter_mut().find(|(c, _)| c == channel) {
                    Some((_, s)) => {
                        *s += 1;
                        *s
                    }
                    None => {
                        let s = history.current(channel) + 1;
                        next.push((channel, s));
                        s
                    }
                };
                out.push(Arc::new(Message {
                    channel: Arc::from(channel.as_str()),
                    seq,
                    payload: Arc::from(payload.as_str()),
                }));
            }
            out
        };
        if let Some(store) = writer.as_mut() {
            store.append(&messages)?;
        }
        {
            let mut history = self.history_mut();
            let now = SystemTime::now();
            for m in &messages {
                history.push_at(Arc::clone(m), now);
            }
            for m in &messages {
                // No receivers is fine: nobody is listening.
                let _ = self.live.send(Arc::clone(m));
            }
            // Under the history lock, so a Bayeux subscribe (which holds it to read its replay)
            // sees each message either in history or live.
            self.sessions.dispatch(&messages);
            // Queued in publish order; posted by the forwarder's task, never waited for.
            if let Some(grip) = &self.grip {
                grip.enqueue(&messages);
            }
        }
        if let Some(store) = writer.as_mut().filter(|s| s.wants_compaction()) {
            // A failed compaction leaves the (longer) file as it was: not worth failing for.
            if let Err(e) = store.compact(&self.history()) {
                eprintln!("tidings-relay: compacting the store failed: {e}");
            }
        }
        Ok(messages.iter().map(|m| m.seq).collect())
    }

    /// [`Hub::publish_blocking`] on tokio's blocking pool.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        batch: Vec<(String, String)>,
    ) -> io::Result<Vec<u64>> {
        let hub = Arc::clone(self);
        tokio::task::spawn_blocking(move || hub.publish_blocking(batch))
            .await
            .map_err(io::Error::other)?
    }

    /// Subscribes a stream on `channels` (distinct, in request order) that resumes from
    /// `last` (the client's last event id, when it was one of ours).
    pub(crate) fn subscribe(&self, channels: &[String], last: Option<&Positions>) -> Start {
        let live = self.live.subscribe();
        let history = self.history();
        let mut open = Positions::new();
        let mut reset = Vec::new();
        let mut replay = Vec::new();
        for channel in channels {
            match last.and_then(|p| p.get(channel)) {
                None => open.set(channel, history.current(channel)),
                Some(after) => {
                    open.set(channel, after);
                    match history.resume(channel, after) {
                        Resume::Replay(messages) => replay.extend(messages),
                        Resume::Reset(current) => reset.push((channel.clone(), current)),
                    }
                }
            }
        }
        Start {
            open,
            reset,
            replay,
            live,
        }
    }

    /// Runs `f` on the history, holding the lock that publishes wait for.
    pub(crate) fn with_history<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        f(&self.history())
    }

    /// The fault switches as they are now.
    pub(crate) fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    /// The fault switches, to change or to watch.
    pub(crate) fn faults_sender(&self) -> &watch::Sender<Faults> {
        &self.faults
    }

    /// A page of `channel`'s history for the poll endpoint ([`History::page`]).
    pub(crate) fn page(&self, channel: &str, since: Option<u64>, limit: usize) -> Page {
        self.history().page(channel, since, limit)
    }

    /// The current sequence number of `channel`.
    pub(crate) fn current(&self, channel: &str) -> u64 {
        self.history().current(channel)
    }

    /// A receiver that turns `true` when the relay shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Ends every open stream and Bayeux session, now and on connect from here on.
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
        self.sessions.end_all();
    }
}

/// 64 random bits, or (without randomness) bits of the start time.
fn epoch(started: SystemTime) -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bayeux subscribes with replay from 0 while a publisher is busy: every subscriber gets
    /// every message exactly once, in order, wherever its subscribe fell.
    #[test]
    fn bayeux_replay_and_live_neither_miss_nor_repeat() {
        const TOTAL: u64 = 3000;
        let hub = Arc::new(
            Hub::new(Config {
                history: TOTAL as usize,
                ..Config::default()
            })
            .unwrap(),
        );
        let publisher = std::thread::spawn({
            let hub = Arc::clone(&hub);
            move || {
                for i in 1..=TOTAL {
                    hub.publish_blocking(vec![("/r".to_owned(), i.to_string())])
                        .unwrap();
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut sessions = Vec::new();
        for k in 0..30 {
            while hub.current("/r") < k * 90 {
                assert!(std::time::Instant::now() < deadline);
                std::thread::yield_now();
            }
            let session = hub.sessions.create().unwrap();
            let reset = hub.with_history(|h| {
                hub.sessions.subscribe(
                    &session,
                    &["/r".to_owned()],
                    &[("/r".to_owned(), Some(0))],
                    h,
                )
            });
            assert_eq!(reset, Ok(vec![]));
            sessions.push(session);
        }
        publisher.join().unwrap();
        for session in sessions {
            let seqs: Vec<u64> = session.drain(usize::MAX).iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_store_file_stays_bounded_while_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let config = Config {
            store: Some(path.clone()),
            history: 2,
            ..Config::default()
        };
        let hub = Hub::new(config.clone()).unwrap();
        let mut live = hub.subscribe(&["/c1".to_owned()], None).live;
        for i in 0..6000u64 {
            let channel = format!("/c{}", i % 3);
            let seqs = hub
                .publish_blocking(vec![(channel, i.to_string())])
                .unwrap();
            assert_eq!(seqs, [i / 3 + 1]);
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 4200, "{lines} lines");
        // Broadcast in sequence order (the buffer keeps the newest ones).
        let mut last = 0;
        loop {
            match live.try_recv() {
                Ok(m) if &*m.channel == "/c1" => {
                    assert!(last == 0 || m.seq == last + 1, "{} after {last}", m.seq);
                    last = m.seq;
                }
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => last = 0,
                Err(_) => break,
            }
        }
        assert_eq!(last, 2000);
        drop(hub);
        let hub = Hub::new(config).unwrap();
        assert_eq!(hub.current("/c0"), 2000);
        assert_eq!(hub.current("/c2"), 2000);
        let start = hub.subscribe(
            &["/c1".to_owned()],
            Some(&Positions::parse("/c1:1998").unwrap()),
        );
        let payloads: Vec<&str> = start.replay.iter().map(|m| &*m.payload).collect();
        assert_eq!(payloads, ["5995", "5998"]);
        assert!(start.reset.is_empty());
    }
}
