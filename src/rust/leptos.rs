//! Leptos hooks (feature `leptos`, Leptos 0.8).
//!
//! ```no_run
//! # #[cfg(target_arch = "wasm32")]
//! # mod app {
//! use leptos::prelude::*;
//! use tidings::leptos::use_subscription;
//!
//! #[component]
//! pub fn Ticker() -> impl IntoView {
//!     // An ancestor called `tidings::leptos::provide_client(Client::new("/events/")?)`.
//!     let client = tidings::leptos::use_client().expect("a client is provided");
//!     let sub = use_subscription(&client, "/ticker", 1);
//!     let price = move || {
//!         sub.with(|s| s.latest().and_then(|m| m.data_as::<f64>().ok()))
//!             .map(|p| p.to_string())
//!             .unwrap_or_else(|| "…".into())
//!     };
//!     view! { <p>{price}</p> }
//! }
//!
//! /// The channel can follow a signal: choosing another room drops the old subscription and
//! /// subscribes to the new one.
//! #[component]
//! pub fn Room(room: ReadSignal<String>) -> impl IntoView {
//!     let client = tidings::leptos::use_client().expect("a client is provided");
//!     let sub = use_subscription(&client, Signal::derive(move || format!("/rooms/{}", room.get())), 20);
//!     view! { <p>{move || sub.with(|s| s.received)}" messages"</p> }
//! }
//! # }
//! ```

use ::leptos::prelude::{
    on_cleanup, provide_context, signal, use_context, Effect, Get, GetUntracked, GetValue,
    LocalStorage, ReadSignal, Set, Signal, StoredValue, Update, UpdateValue, WithValue,
};

use super::client::Client;
use super::subscription::Stopper;

pub use super::hooks::SubscriptionState;

/// The client in a context: a [`Client`] is not `Send`, so the context holds a handle on
/// browser-thread storage.
#[derive(Clone, Copy)]
struct ClientContext(StoredValue<Client, LocalStorage>);

/// Makes `client` the one [`use_client`] finds in this component and below (Leptos views
/// must be `Send`, which a `Client` is not, so pass it this way rather than in props).
pub fn provide_client(client: Client) {
    provide_context(ClientContext(StoredValue::new_local(client)));
}

/// The client [`provide_client`] gave an ancestor, if any.
pub fn use_client() -> Option<Client> {
    use_context::<ClientContext>().and_then(|c| c.0.try_get_value())
}

/// Subscribes to `channel` for as long as the current reactive owner (the component) lives:
/// the returned signal updates on every message with the last `keep` messages. When the
/// component unmounts, the subscription is dropped (the stream closes when it was the last
/// one) and the signal stops changing.
///
/// `channel` is a name (`"/ticker"`, a `String`) or anything reactive that gives one (a
/// `ReadSignal<String>`, a `Memo`, `Signal::derive(…)`). When it changes, the subscription to
/// the old channel is dropped, the state starts over, and the new channel is subscribed. The
/// first subscription is made at once, the later ones when the reactive system runs effects.
pub fn use_subscription(
    client: &Client,
    channel: impl Into<Signal<String>>,
    keep: usize,
) -> ReadSignal<SubscriptionState> {
    let channel: Signal<String> = channel.into();
    let (state, set_state) = signal(SubscriptionState::default());
    let subscribe = {
        let client = client.clone();
        move |name: &str| {
            super::hooks::feed(&client, name, move |change| {
                // After the owner is gone the signal is disposed: nothing to update.
                set_state.try_update(|s| s.apply(change, keep));
            })
        }
    };
    // The channel subscribed now and its subscription (local storage: the stopper holds the
    // client, which never leaves the browser's thread).
    let first = channel.get_untracked();
    let stopper = subscribe(&first);
    let current: StoredValue<(String, Option<Stopper>), LocalStorage> =
        StoredValue::new_local((first, stopper));
    Effect::new(move |_| {
        let name = channel.get();
        if current.with_value(|(now, _)| *now == name) {
            return;
        }
        // Stopped first: the old subscription's last changes do not reach the new state.
        let old = current
            .try_update_value(|(now, stopper)| {
                *now = name.clone();
                stopper.take()
            })
            .flatten();
        if let Some(old) = old {
            old.stop();
        }
        set_state.set(SubscriptionState::default());
        let stopper = subscribe(&name);
        current.update_value(|(_, s)| *s = stopper);
    });
    on_cleanup(move || {
        current.try_with_value(|(_, s)| {
            if let Some(s) = s {
                s.stop();
            }
        });
    });
    state
}
