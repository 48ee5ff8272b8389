//! [`Task`]: a future of the app's (an auth hook's or a poll function's) run on the browser's
//! executor, dropped as soon as its handle is: a poll the core gave up on, or a client that
//! went, does not keep the app's fetch running to its end.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// What a task and its handle share.
#[derive(Default)]
struct State {
    cancelled: Cell<bool>,
    done: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Owns a spawned future: dropping it drops the future (on the executor's next turn) before
/// it completes, if it has not.
pub(crate) struct Task(Rc<State>);

impl Task {
    /// Runs `fut` on the browser's executor.
    #[inline]
    pub(crate) fn spawn(fut: impl Future<Output = ()> + 'static) -> Task {
        let state = Rc::new(State::default());
        let shared = state.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut fut = std::pin::pin!(fut);
            poll_fn(|cx| {
                if shared.cancelled.get() {
                    return Poll::Ready(());
                }
                *shared.waker.borrow_mut() = Some(cx.waker().clone());
                fut.as_mut().poll(cx)
            })
            .await;
            shared.done.set(true);
            // The waker would otherwise hold this task until the handle goes.
            shared.waker.borrow_mut().take();
        });
        Task(state)
    }

    /// Whether the future ran to its end.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.0.done.get()
    }
}

impl Drop for Task {
    #[inline]
    fn drop(&mut self) {
        self.0.cancelled.set(true);
        // Woken, the task sees the flag and returns, which drops the future.
        let waker = self.0.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}
