//! The Rust side of a client: queues for each subscription's stream, the settled `ready`s and
//! publishes, the event streams, and the app's async functions (the `auth` hook, poll
//! functions). It is the driver's [`Sink`](crate::web::Sink). Nothing here runs user code synchronously: it
//! queues and wakes, and the app's functions are first called from a task, so the driver is
//! never re-entered from a delivery.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::task::Waker;

use js_sys::JSON;
use wasm_bindgen::JsValue;

use super::error::Error;
use super::message::{Message, Meta};
use super::options::{AuthHook, PollFn};
use super::task::Task;
use crate::core::bayeux::session::PubId;
use crate::core::client::{Delivery, Output, Payload, State, SubId, Transport};
use crate::core::error::{Error as CoreError, ErrorCode};
use crate::core::poll::{PollId, PollRequest, PollTarget};
use crate::web::{poll_body, Driver, Sink};

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

/// Everything the Rust faces wait on, and the app's functions the core asks for.
#[derive(Default)]
pub(crate) struct Hub {
    pub subs: RefCell<Vec<(SubId, Rc<RefCell<SubShared>>)>>,
    pub events: RefCell<Vec<Weak<RefCell<EventQueue>>>>,
    pub publishes: RefCell<Vec<(PubId, Rc<RefCell<PubShared>>)>>,
    /// Bayeux: the hook called before every handshake, and the static `ext` it falls back to.
    pub auth: Option<AuthHook>,
    pub ext: Option<JsValue>,
    /// Poll functions, by the index the core's targets name them by.
    pub functions: RefCell<Vec<PollFn>>,
    /// The auth hook's call in progress (one at most: a new handshake replaces it).
    pub auth_task: RefCell<Option<Task>>,
    /// Poll functions' calls in progress; dropping one drops its future.
    pub poll_tasks: RefCell<Vec<(PollId, Task)>>,
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
        // The app's calls in progress are of no use any more (dropped with no borrow held).
        let auth = self.auth_task.borrow_mut().take();
        let polls = std::mem::take(&mut *self.poll_tasks.borrow_mut());
        drop((auth, polls));
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

impl Hub {
    /// Calls the auth hook (from a task) and hands its outcome to the core; without a hook,
    /// the static ext at once.
    #[inline]
    fn authenticate(&self, driver: &Driver<Hub>) {
        let Some(hook) = self.auth.clone() else {
            let ext = self.ext.clone();
            driver.with_core(|core, now| core.auth_done(Ok(ext), now));
            return;
        };
        let fallback = self.ext.clone();
        let weak = driver.downgrade();
        let task = Task::spawn(async move {
            let result = match hook.call().await {
                Ok(Some(json)) => match JSON::parse(&json) {
                    Ok(ext) if ext.is_object() && !js_sys::Array::is_array(&ext) => Ok(Some(ext)),
                    _ => Err(String::from("its ext is not a JSON object")),
                },
                Ok(None) => Ok(fallback),
                Err(e) => Err(e),
            };
            if let Some(d) = weak.upgrade() {
                d.with_core(|core, now| core.auth_done(result, now));
            }
        });
        // A handshake after an unfinished call (the client closed and started again): the
        // old call's answer would belong to the old attempt.
        let old = self.auth_task.replace(Some(task));
        drop(old);
    }

    /// Calls the poll function `req` names (from a task) and hands its outcome to the core,
    /// unless the core aborted the poll meanwhile.
    #[inline]
    fn poll_function(&self, driver: &Driver<Hub>, req: PollRequest) {
        let PollTarget::Function(n) = req.target else {
            return;
        };
        let Some(f) = self.functions.borrow().get(n as usize).cloned() else {
            return;
        };
        let id = req.id;
        driver.track_poll(id);
        let weak = driver.downgrade();
        let task = Task::spawn(async move {
            let result = f.call().await;
            let Some(d) = weak.upgrade() else { return };
            // False when the core aborted it (its task is being dropped, but may finish first).
            if !d.finish_poll(id) {
                return;
            }
            d.with_core(|core, now| match result {
                Ok(text) => core.handle_poll_response(id, None, None, poll_body(&text), now),
                Err(e) => core.handle_poll_error(
                    id,
                    CoreError::new(
                        ErrorCode::Callback,
                        format!("the poll function failed: {e}"),
                    ),
                    now,
                ),
            });
        });
        let mut tasks = self.poll_tasks.borrow_mut();
        tasks.retain(|(_, t)| !t.is_done());
        tasks.push((id, task));
    }

    /// The core gave up on function poll `id`: its future is dropped.
    #[inline]
    fn abort_poll(&self, id: PollId) {
        let task = {
            let mut tasks = self.poll_tasks.borrow_mut();
            let i = tasks.iter().position(|(p, _)| *p == id);
            i.map(|i| tasks.remove(i))
        };
        drop(task);
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
    fn dispatch(&self, driver: &Driver<Self>, output: Output<JsValue>) {
        match output {
            Output::Deliver(d) => self.deliver(d),
            Output::Ready(id) => self.settle(id, Ok(())),
            Output::Rejected(id, err) => self.settle(id, Err(err.into())),
            #[cfg(feature = "bayeux")]
            Output::Published(id, result) => self.published(id, result.map_err(Error::from)),
            #[cfg(feature = "bayeux")]
            Output::Authenticate => self.authenticate(driver),
            Output::Poll(req) => self.poll_function(driver, req),
            Output::PollAbort(id) => self.abort_poll(id),
            Output::State(state, transport) => {
                self.emit(Event::State(state, transport));
                // Closed for good (by the page or the server): the streams end.
                if state == State::Closed {
                    self.end_all();
                }
            }
            Output::Error(err) => self.emit(Event::Error(err.into())),
            Output::Reset(channels) => self.emit(Event::Reset(channels)),
            // IO is the driver's.
            _ => {}
        }
    }
}
