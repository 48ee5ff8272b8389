//! The Rust API: the same client as the JavaScript API, for Rust apps compiled to wasm.
//!
//! [`Client`] runs the sans-IO core on the browser driver the JavaScript API uses; a
//! [`Subscription`] is a [`Stream`](futures_core::Stream) of [`Message`]s that unsubscribes when
//! dropped; payloads decode into any `serde::Deserialize` type; errors are one [`Error`] enum.
//! The options ([`ClientBuilder`], [`SubscribeOptions`], [`Message`], [`Error`]) exist on every
//! target, so they are checked natively; the client itself only on `wasm32`.
//!
//! Size of the npm build: that build (feature `js`) compiles this module but calls none of
//! it, and yet code compiled eagerly here changes how the shared driver and core are
//! optimised. So serde code sits behind the `serde` feature, and the functions here are
//! `#[inline]`, which (like generics) compiles them only into the crates that call them:
//! measured on `pkg/tidings_bg.wasm`, +952 bytes without either measure, +65 with both.

mod error;
mod message;
mod options;

#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod hub;
#[cfg(target_arch = "wasm32")]
mod subscription;
#[cfg(target_arch = "wasm32")]
mod task;

#[cfg(all(target_arch = "wasm32", any(feature = "yew", feature = "leptos")))]
mod hooks;
#[cfg(all(target_arch = "wasm32", feature = "leptos"))]
pub mod leptos;
#[cfg(all(target_arch = "wasm32", feature = "yew"))]
pub mod yew;

pub use error::{Error, Failure};
pub use message::{Message, Meta};
pub use options::{ClientBuilder, PollFallback, PollFn, PollSource, Protocol, SubscribeOptions};

#[cfg(target_arch = "wasm32")]
pub use client::Client;
#[cfg(target_arch = "wasm32")]
pub use hub::Event;
#[cfg(all(target_arch = "wasm32", feature = "serde"))]
pub use subscription::Typed;
#[cfg(target_arch = "wasm32")]
pub use subscription::{Events, Stopper, Subscription};

#[cfg(test)]
mod tests;
