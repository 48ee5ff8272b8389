//! The browser shell: performs what the core asks for (fetch streams, one timer) and feeds back
//! what happened. Every web-sys call of the client lives under this module.
//!
//! Ownership: the [`Driver`] owns the core, the abort controllers of its requests and its one
//! timer. Request tasks and the timer hold only a `Weak` to it, so dropping the driver cancels
//! the timer (gloo's `Timeout` clears it on drop) and aborts every request.

mod clock;
mod fetch;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use web_sys::AbortController;

use crate::core::client::{ClientCore, Output};
use crate::core::sse_stream::StreamId;
use crate::core::Millis;

pub(crate) use clock::Clock;

/// Receives what the page must hear about (deliveries, readiness, state, errors, resets).
pub(crate) trait Sink {
    /// Called with no borrow of the driver held: it may call back into the client.
    fn dispatch(&self, driver: &Driver, output: Output);
}

/// Request options the core does not decide.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FetchOptions {
    /// Send cookies to cross-origin stream URLs.
    pub with_credentials: bool,
}

struct Inner {
    core: ClientCore,
    clock: Clock,
    fetch: FetchOptions,
    requests: Vec<(StreamId, AbortController)>,
    timer: Option<(Millis, Timeout)>,
    sink: Rc<dyn Sink>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for (_, ctrl) in self.requests.drain(..) {
            ctrl.abort();
        }
    }
}

/// A handle on the client state; clones share it.
#[derive(Clone)]
pub(crate) struct Driver(Rc<RefCell<Inner>>);

/// A handle that does not keep the client alive (held by timers and request tasks).
#[derive(Clone)]
pub(crate) struct WeakDriver(Weak<RefCell<Inner>>);

impl WeakDriver {
    pub(crate) fn upgrade(&self) -> Option<Driver> {
        self.0.upgrade().map(Driver)
    }
}

impl Driver {
    pub(crate) fn new(core: ClientCore, fetch: FetchOptions, sink: Rc<dyn Sink>) -> Self {
        Driver(Rc::new(RefCell::new(Inner {
            core,
            clock: Clock::default(),
            fetch,
            requests: Vec::new(),
            timer: None,
            sink,
        })))
    }

    pub(crate) fn downgrade(&self) -> WeakDriver {
        WeakDriver(Rc::downgrade(&self.0))
    }

    /// Runs `f` on the core with the current time, then carries out what it asked for.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut ClientCore, Millis) -> R) -> R {
        let r = self.call(f);
        self.run();
        r
    }

    /// Runs `f` on the core with the current time; its outputs wait for [`run`](Self::run).
    pub(crate) fn call<R>(&self, f: impl FnOnce(&mut ClientCore, Millis) -> R) -> R {
        let mut inner = self.0.borrow_mut();
        let now = inner.clock.now();
        f(&mut inner.core, now)
    }

    /// Reads the core without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&ClientCore) -> R) -> R {
        f(&self.0.borrow().core)
    }

    /// Whether request `id` is still wanted.
    pub(crate) fn is_current(&self, id: StreamId) -> bool {
        self.0.borrow().requests.iter().any(|(r, _)| *r == id)
    }

    /// Drains the core's outputs: IO is started here, page events go to the sink with no borrow
    /// held (a callback may subscribe or unsubscribe).
    pub(crate) fn run(&self) {
        loop {
            let (page, sink) = {
                let mut guard = self.0.borrow_mut();
                let inner = &mut *guard;
                let mut page = Vec::new();
                while let Some(out) = inner.core.poll_output() {
                    match out {
                        Output::Open(req) => {
                            let ctrl = fetch::start(self.downgrade(), req, inner.fetch);
                            if let Some((id, ctrl)) = ctrl {
                                inner.requests.push((id, ctrl));
                            }
                        }
                        Output::Abort(id) => {
                            inner.requests.retain(|(r, ctrl)| {
                                if *r == id {
                                    ctrl.abort();
                                }
                                *r != id
                            });
                        }
                        other => page.push(other),
                    }
                }
                self.arm_timer(inner);
                (page, inner.sink.clone())
            };
            if page.is_empty() {
                return;
            }
            for out in page {
                sink.dispatch(self, out);
            }
        }
    }

    /// Keeps one timer armed at the core's next deadline. A timer that fires early is harmless
    /// (the core reports its next deadline), so a later deadline does not re-arm it: a stream
    /// that pushes its idle deadline on every read costs no timer churn.
    fn arm_timer(&self, inner: &mut Inner) {
        let Some(at) = inner.core.poll_timeout() else {
            inner.timer = None;
            return;
        };
        if inner.timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        let delay = at.saturating_sub(inner.clock.now());
        let weak = self.downgrade();
        let timeout = Timeout::new(delay.min(i32::MAX as u64) as u32, move || {
            if let Some(driver) = weak.upgrade() {
                driver.0.borrow_mut().timer = None;
                driver.with_core(|core, now| core.handle_timeout(now));
            }
        });
        inner.timer = Some((at, timeout));
    }
}
