//! The Rust side of a client: queues for each subscription's stream, the settled `ready`s and
//! publishes, and the event streams. It is the driver's [`Sink`]. Nothing here runs user code
//! synchronously: it queues and wakes, so the driver is never re-entered from a delivery.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::task::Waker;

use js_sys::JSON;
use wasm_bindgen::JsValue;

use super::error::Error;
use super::message::{Message, Meta};
use crate::core::bayeux::session::PubId;
use crate::core::client::{Delivery, Output, Payload, State, SubId, Transport};
use crate::web::{Driver, Sink};

/// Something the client reports besides messages (see [`Client::events`](crate::Client::events)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The client's state or transport changed.
    State(State, Option<Transport>),
    /// An error: informational when [`Error::is_retrying`], otherwise something stopped.
    Error(Error),
    /// These channels could not be resumed: reload what they show.
    Reset(Vec<String>),
}

/// One subscription's queue, shared by the hub and the [`Subscription`](crate::Subscription).
#[derive(Default)]
pub(crate) struct SubShared {
    pub queue: VecDeque<Message>,
    /// `None` until the server confirmed or refused.
    pub ready: Option<Result<(), Error>>,
    /// No more messages will come (refused, unsubscribed, or the client closed).
    pub ended: bool,
    pub waker: Option<Waker>,
    pub ready_wakers: Vec<Waker>,
}

impl SubShared {
    #[inline]
    pub(crate) fn end(&mut self) {
        self.ended = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        for w in self.ready_wakers.drain(..) {
            w.wake();
        }
    }
}

/// A stream of [`Event`]s' queue.
#[derive(Default)]
pub(crate) struct EventQueue {
    pub queue: VecDeque<Event>,
    pub waker: Option<Waker>,
}

/// A publish waiting for the server's answer.
#[derive(Default)]
pub(crate) struct PubShared {
    pub result: Option<Result<Option<String>, Error>>,
    pub waker: Option<Waker>,
}

/// Everything the Rust faces wait on.
#[derive(Default)]
pub(crate) struct Hub {
    pub subs: RefCell<Vec<(SubId, Rc<RefCell<SubShared>>)>>,
    pub events: RefCell<Vec<Weak<RefCell<EventQueue>>>>,
    pub publishes: RefCell<Vec<(PubId, Rc<RefCell<PubShared>>)>>,
}

/// The JSON text of a payload the browser holds as a value.
#[inline]
fn stringify(v: &JsValue) -> String {
    JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| String::from("null"))
}

impl Hub {
    #[inline]
    fn sub(&self, id: SubId) -> Option<Rc<RefCell<SubShared>>> {
        self.subs
            .borrow()
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, s)| s.clone())
    }

    /// Forgets subscription `id` (its stream ends).
    #[inline]
    pub(crate) fn remove(&self, id: SubId) {
        let gone = {
            let mut subs = self.subs.borrow_mut();
            let i = subs.iter().position(|(s, _)| *s == id);
            i.map(|i| subs.remove(i).1)
        };
        if let Some(s) = gone {
            s.borrow_mut().end();
        }
    }

    /// Ends every stream and publish (the client is closed).
    #[inline]
    pub(crate) fn end_all(&self) {
        let subs = std::mem::take(&mut *self.subs.borrow_mut());
        for (_, s) in subs {
            let mut s = s.borrow_mut();
            if s.ready.is_none() {
                s.ready = Some(Err(closed("the client was closed")));
            }
            s.end();
        }
        let pubs = std::mem::take(&mut *self.publishes.borrow_mut());
        for (_, p) in pubs {
            let mut p = p.borrow_mut();
            p.result
                .get_or_insert_with(|| Err(closed("the client was closed")));
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
    }

    #[inline]
    fn emit(&self, event: Event) {
        let mut list = self.events.borrow_mut();
        list.retain(|q| q.strong_count() > 0);
        for q in list.iter().filter_map(Weak::upgrade) {
            let mut q = q.borrow_mut();
            q.queue.push_back(event.clone());
            if let Some(w) = q.waker.take() {
                w.wake();
            }
        }
    }

    #[inline]
    fn deliver(&self, d: Delivery<JsValue>) {
        let Some(sub) = self.sub(d.sub) else { return };
        let meta = Meta {
            event: d.event,
            via: d.via,
            coalesced: d.coalesced,
        };
        let message = match d.data {
            Payload::Text(text) => Message::new(d.channel, d.id, meta, text),
            Payload::Value(v) => Message::new(d.channel, d.id, meta, stringify(&v)),
        };
        let mut s = sub.borrow_mut();
        s.queue.push_back(message);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    #[inline]
    fn settle(&self, id: SubId, outcome: Result<(), Error>) {
        let Some(sub) = self.sub(id) else { return };
        let refused = outcome.is_err();
        {
            let mut s = sub.borrow_mut();
            s.ready.get_or_insert(outcome);
            for w in s.ready_wakers.drain(..) {
                w.wake();
            }
        }
        if refused {
            self.remove(id);
        }
    }

    #[inline]
    fn published(&self, id: PubId, result: Result<Option<String>, Error>) {
        let entry = {
            let mut list = self.publishes.borrow_mut();
            let i = list.iter().position(|(p, _)| *p == id);
            i.map(|i| list.remove(i).1)
        };
        if let Some(p) = entry {
            let mut p = p.borrow_mut();
            p.result = Some(result);
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
    }
}

#[inline]
pub(crate) fn closed(message: &str) -> Error {
    Error::from(crate::core::error::Error::new(
        crate::core::error::ErrorCode::Closed,
        message,
    ))
}

impl Sink for Hub {
    #[inline]
    fn dispatch(&self, driver: &Driver, output: Output<JsValue>) {
        match output {
            Output::Deliver(d) => self.deliver(d),
            Output::Ready(id) => self.settle(id, Ok(())),
            Output::Rejected(id, err) => self.settle(id, Err(err.into())),
            Output::Published(id, result) => self.published(id, result.map_err(Error::from)),
            // The Rust API has no auth hook: the static ext is used.
            Output::Authenticate => driver.with_core(|core, now| core.auth_done(Ok(None), now)),
            Output::State(state, transport) => {
                self.emit(Event::State(state, transport));
                // Closed for good (by the page or the server): the streams end.
                if state == State::Closed {
                    self.end_all();
                }
            }
            Output::Error(err) => self.emit(Event::Error(err.into())),
            Output::Reset(channels) => self.emit(Event::Reset(channels)),
            // IO is the driver's; the Rust API names no poll functions.
            _ => {}
        }
    }
}
