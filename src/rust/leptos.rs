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
//! # }
//! ```

use ::leptos::prelude::{
    on_cleanup, provide_context, signal, use_context, GetValue, LocalStorage, ReadSignal,
    StoredValue, Update, WithValue,
};

use super::client::Client;

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
pub fn use_subscription(
    client: &Client,
    channel: &str,
    keep: usize,
) -> ReadSignal<SubscriptionState> {
    let (state, set_state) = signal(SubscriptionState::default());
    let stopper = super::hooks::feed(client, channel, move |change| {
        // After the owner is gone the signal is disposed: nothing to update.
        set_state.try_update(|s| s.apply(change, keep));
    });
    // Local storage: the stopper holds the client, which never leaves the browser's thread.
    let stopper = StoredValue::new_local(stopper);
    on_cleanup(move || {
        stopper.try_with_value(|s| {
            if let Some(s) = s {
                s.stop();
            }
        });
    });
    state
}
