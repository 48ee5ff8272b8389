//! Bayeux over WebSocket, on the same path as long-polling.
//!
//! Every text frame is a JSON array of messages (or one message); every frame the relay sends is
//! a JSON array. As Faye does it:
//! - a `/meta/connect` over a socket makes that socket the client's delivery path: data
//!   messages are pushed as soon as they are queued, each batch in its own frame, without
//!   waiting for a connect;
//! - the connect reply comes when the hold ends (the connect timeout, or the shorter
//!   `advice.timeout` the connect asked for), at once when a newer connect of the same client
//!   arrives (over any transport), or when the session ends (`401` with handshake advice);
//! - the replies to the other messages of a frame come in one frame, in order.
//!
//! A frame that is not Bayeux gets a `400` error reply; after [`MAX_BAD_FRAMES`] of them the
//! socket is closed with 1008 (policy violation). Frames over the size limit end the socket.

use std::collections::VecDeque;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::handle::{self, ended_reply, Pending};
use super::message::{encode, parse_request, BadRequest};
use super::session::{HoldCheck, Session};
use super::DRAIN_BUDGET;
use crate::hub::Hub;

/// Frames that are not Bayeux a socket may send before it is closed.
pub(crate) const MAX_BAD_FRAMES: usize = 16;

/// A held connect on this socket.
struct Held {
    pending: Pending,
    deadline: Instant,
}

/// One open socket.
struct Socket {
    hub: Arc<Hub>,
    id: u64,
    ws: WebSocket,
    /// The session whose data is pushed here.
    bound: Option<(Arc<Session>, watch::Receiver<u64>)>,
    held: Option<Held>,
    /// Connect replies waiting out the `delay_connect_ms` fault.
    delayed: VecDeque<(Instant, Pending)>,
    bad_frames: usize,
}

/// How a socket ended.
enum Exit {
    /// The client closed it, or it broke.
    Gone,
    /// Close it with this code and reason.
    Close(u16, &'static str),
    /// Cut it without a close frame (the `kill_ws_after_ms` fault).
    Cut,
}

/// Serves one upgraded socket until it closes.
pub(crate) async fn serve(hub: Arc<Hub>, ws: WebSocket) {
    let id = hub.sessions.socket_id();
    let mut socket = Socket {
        hub,
        id,
        ws,
        bound: None,
        held: None,
        delayed: VecDeque::new(),
        bad_frames: 0,
    };
    let exit = socket.run().await;
    if let Some((session, _)) = &socket.bound {
        session.release_socket(id);
    }
    match exit {
        Exit::Gone | Exit::Cut => {}
        Exit::Close(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = socket.ws.send(Frame::Close(Some(frame))).await;
        }
    }
}

async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => pending().await,
    }
}

impl Socket {
    async fn send(&mut self, text: String) -> Result<(), Exit> {
        self.ws
            .send(Frame::Text(text.into()))
            .await
            .map_err(|_| Exit::Gone)
    }

    async fn run(&mut self) -> Exit {
        let opened = Instant::now();
        let mut faults = self.hub.faults_sender().subscribe();
        let mut shutdown = self.hub.shutdown_signal();
        loop {
            if let Err(exit) = self.settle().await {
                return exit;
            }
            let kill_at = faults
                .borrow_and_update()
                .kill_ws_after_ms
                .map(|ms| opened + Duration::from_millis(ms));
            let held_until = self.held.as_ref().map(|h| h.deadline);
            let delayed_until = self.delayed.front().map(|(at, _)| *at);
            let changes = async {
                match &mut self.bound {
                    Some((_, changes)) => {
                        if changes.changed().await.is_err() {
                            pending::<()>().await;
                        }
                    }
                    None => pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = async { drop(shutdown.wait_for(|&down| down).await) } => {
                    return Exit::Close(1001, "the relay is shutting down");
                }
                _ = until(kill_at) => return Exit::Cut,
                _ = changes => {}
                frame = self.ws.recv() => {
                    let result = match frame {
                        Some(Ok(Frame::Text(text))) => self.frame(text.as_bytes()).await,
                        Some(Ok(Frame::Binary(_))) => {
                            self.bad(json!({
                                "successful": false,
                                "error": "400::Binary frames are not Bayeux",
                            }))
                            .await
                        }
                        Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => Ok(()),
                        Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => Err(Exit::Gone),
                    };
                    if let Err(exit) = result {
                        return exit;
                    }
                }
                _ = until(held_until) => {}
                _ = until(delayed_until) => {}
                changed = faults.changed() => {
                    if changed.is_err() {
                        return Exit::Gone;
                    }
                }
            }
        }
    }

    /// Answers what is due (the held connect, delayed replies) and pushes queued data.
    async fn settle(&mut self) -> Result<(), Exit> {
        let now = Instant::now();
        if let Some(held) = &self.held {
            let due = match held.pending.hold.check() {
                HoldCheck::Wait | HoldCheck::Ready => now >= held.deadline,
                HoldCheck::Superseded | HoldCheck::Ended => true,
            };
            if due {
                if let Some(held) = self.held.take() {
                    self.answer(held.pending).await?;
                }
            }
        }
        while self.delayed.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, pending)) = self.delayed.pop_front() {
                let reply = connect_reply(&pending);
                self.send(encode(&[reply], &[])).await?;
            }
        }
        let Some((session, changes)) = &mut self.bound else {
            return Ok(());
        };
        changes.borrow_and_update();
        if session.ended().is_some() || !session.pushes_to(self.id) {
            self.bound = None;
            return Ok(());
        }
        let data = session.drain(DRAIN_BUDGET);
        if !data.is_empty() {
            self.send(encode(&[], &data)).await?;
        }
        Ok(())
    }

    /// Sends a connect reply now, or after the `delay_connect_ms` fault.
    async fn answer(&mut self, pending: Pending) -> Result<(), Exit> {
        match self.hub.faults().delay_connect_ms {
            Some(ms) if ms > 0 => {
                self.delayed
                    .push_back((Instant::now() + Duration::from_millis(ms), pending));
                Ok(())
            }
            _ => {
                let reply = connect_reply(&pending);
                self.send(encode(&[reply], &[])).await
            }
        }
    }

    /// A frame that is not Bayeux: an error reply, and the socket is closed if it keeps
    /// happening.
    async fn bad(&mut self, reply: Value) -> Result<(), Exit> {
        self.bad_frames += 1;
        if self.bad_frames > MAX_BAD_FRAMES {
            return Err(Exit::Close(1008, "too many frames that are not Bayeux"));
        }
        self.send(encode(&[reply], &[])).await
    }

    async fn frame(&mut self, text: &[u8]) -> Result<(), Exit> {
        let messages = match parse_request(text, self.hub.config.max_messages_per_request) {
            Ok(messages) => messages,
            Err(bad) => {
                let reply = json!({ "successful": false, "error": bad.bayeux() });
                let result = self.bad(reply).await;
                if matches!(bad, BadRequest::TooMany(..)) {
                    // Well-formed, just too much: not held against the socket.
                    self.bad_frames -= 1;
                }
                return result;
            }
        };
        let batch = handle::process(&self.hub, messages, Some(self.id)).await;
        let mut replies = batch.replies;
        // Connects answered at once, oldest first: the one held so far, then all but the last
        // of this frame.
        let mut later = Vec::new();
        let mut connects = batch.connects;
        if let Some(pending) = connects.pop() {
            let session = Arc::clone(pending.hold.session());
            let rebind = match &self.bound {
                Some((bound, _)) => !Arc::ptr_eq(bound, &session),
                None => true,
            };
            if rebind {
                if let Some((old, _)) = self.bound.take() {
                    old.release_socket(self.id);
                }
                let changes = session.changes();
                self.bound = Some((session, changes));
            }
            let deadline = Instant::now() + pending.wait;
            if let Some(old) = self.held.replace(Held { pending, deadline }) {
                later.push(old.pending);
            }
            later.extend(connects);
        }
        if !replies.is_empty() {
            self.send(encode(&replies, &[])).await?;
        }
        replies.clear();
        for pending in later {
            self.answer(pending).await?;
        }
        Ok(())
    }
}

/// The reply to a connect now: the successful one, or the unknown-client one when its session
/// ended meanwhile.
fn connect_reply(pending: &Pending) -> Value {
    let session = pending.hold.session();
    match pending.hold.check() {
        HoldCheck::Ended => ended_reply(&pending.reply, session),
        _ => pending.reply.clone(),
    }
}
