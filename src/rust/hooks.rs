//! What the Yew and Leptos hooks share: the state a component renders, and the task that feeds
//! it from a subscription until the component's cleanup stops it.

use std::collections::VecDeque;

use super::client::Client;
use super::error::Error;
use super::message::Message;
use super::subscription::{Change, Stopper};

/// What a subscription has shown so far: the latest messages, how many came, whether the
/// server confirmed it, and why it stopped if it did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionState {
    /// The last messages, oldest first (at most the `keep` the hook was given).
    pub messages: VecDeque<Message>,
    /// How many messages arrived since the component subscribed.
    pub received: u64,
    /// The server confirmed the subscription.
    pub ready: bool,
    /// Why the subscription was refused or ended, if it was.
    pub error: Option<Error>,
}

impl SubscriptionState {
    /// The newest message, if any came.
    pub fn latest(&self) -> Option<&Message> {
        self.messages.back()
    }

    /// Folds one change in, keeping at most `keep` messages (at least one).
    pub(crate) fn apply(&mut self, change: Change, keep: usize) {
        match change {
            Change::Ready(Ok(())) => self.ready = true,
            Change::Ready(Err(e)) => self.error = Some(e),
            Change::Message(m) => {
                self.received += 1;
                self.messages.push_back(m);
                while self.messages.len() > keep.max(1) {
                    self.messages.pop_front();
                }
            }
        }
    }
}

/// Subscribes `channel` and hands every change to `apply` from a task, until the returned
/// [`Stopper`] is stopped or dropped (the stream then ends and the task with it). A channel
/// refused at once is reported to `apply` and returns `None`.
pub(crate) fn feed(
    client: &Client,
    channel: &str,
    mut apply: impl FnMut(Change) + 'static,
) -> Option<Stopper> {
    match client.subscribe(channel) {
        Ok(mut sub) => {
            let stopper = sub.stopper();
            wasm_bindgen_futures::spawn_local(async move {
                let mut ready_seen = false;
                while let Some(change) = sub.next_change(&mut ready_seen).await {
                    // Stopped (a new channel, or cleanup): what is left, such as the
                    // "unsubscribed before it was ready" that stopping settles, is not this
                    // component's any more.
                    if sub.inner.unsubscribed.get() {
                        break;
                    }
                    apply(change);
                }
            });
            Some(stopper)
        }
        Err(e) => {
            apply(Change::Ready(Err(e)));
            None
        }
    }
}
