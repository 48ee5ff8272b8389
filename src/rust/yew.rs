//! Yew hooks (feature `yew`, Yew 0.21).
//!
//! ```no_run
//! # #[cfg(target_arch = "wasm32")]
//! # mod app {
//! use yew::prelude::*;
//! use tidings::yew::use_subscription;
//!
//! #[derive(Properties, PartialEq)]
//! pub struct Props { pub client: tidings::Client }
//!
//! #[function_component]
//! pub fn Ticker(props: &Props) -> Html {
//!     let sub = use_subscription(&props.client, "/ticker", 1);
//!     let price = sub.latest().and_then(|m| m.data_as::<f64>().ok());
//!     html! { <p>{ price.map(|p| p.to_string()).unwrap_or_else(|| "…".into()) }</p> }
//! }
//! # }
//! ```

use std::ops::Deref;
use std::rc::Rc;

use ::yew::functional::{hook, use_effect_with, use_reducer, Reducible, UseReducerHandle};

use super::client::Client;
use super::subscription::Change;

pub use super::hooks::SubscriptionState;

/// A change and the `keep` it is folded with.
#[doc(hidden)]
pub struct Action(Option<Change>, usize);

impl Reducible for SubscriptionState {
    type Action = Action;

    fn reduce(self: Rc<Self>, Action(change, keep): Action) -> Rc<Self> {
        match change {
            // A new channel (or client): start over.
            None => Rc::new(SubscriptionState::default()),
            Some(change) => {
                let mut next = (*self).clone();
                next.apply(change, keep);
                Rc::new(next)
            }
        }
    }
}

/// The state [`use_subscription`] renders from; derefs to [`SubscriptionState`].
#[derive(Clone, PartialEq)]
pub struct UseSubscriptionHandle(UseReducerHandle<SubscriptionState>);

impl Deref for UseSubscriptionHandle {
    type Target = SubscriptionState;

    fn deref(&self) -> &SubscriptionState {
        &self.0
    }
}

/// Subscribes to `channel` while the component is mounted: every message re-renders it with
/// the last `keep` messages. The subscription is dropped (the stream closes when it was the
/// last one) when the component unmounts, and renewed when `client`, `channel` or `keep`
/// change.
#[hook]
pub fn use_subscription(client: &Client, channel: &str, keep: usize) -> UseSubscriptionHandle {
    let state = use_reducer(SubscriptionState::default);
    let dispatcher = state.dispatcher();
    use_effect_with(
        (client.clone(), channel.to_owned(), keep),
        move |(client, channel, keep)| {
            dispatcher.dispatch(Action(None, *keep));
            let keep = *keep;
            let stopper = super::hooks::feed(client, channel, move |change| {
                dispatcher.dispatch(Action(Some(change), keep));
            });
            // Cleanup on unmount or new deps: unsubscribe, which ends the feeding task.
            move || drop(stopper)
        },
    );
    UseSubscriptionHandle(state)
}
