//! tidings: a realtime subscribe client for web pages.
//!
//! A page subscribes to channels such as `/comments/123` and tidings delivers what is published
//! there over Server-Sent Events or Bayeux (WebSocket, falling back to long-polling),
//! reconnecting by itself and resuming from the last message id so nothing is lost across
//! reconnects. When push cannot work it polls, and it throttles bursts per channel.
//!
//! # Layers
//!
//! - [`core`]: the sans-IO protocol logic (SSE parser, Bayeux session, subscriptions,
//!   throttle, back-off). Plain Rust, driven by inputs and the current time, tested natively.
//! - The browser driver (on `wasm32`): performs the requests, sockets and timers the core asks
//!   for. Two thin faces share it:
//!   - the Rust API (`Client`, `Subscription`, [`Message`], [`Error`]; on `wasm32`, no
//!     feature needed), with hooks for Yew (`tidings::yew`, feature `yew`) and Leptos
//!     (`tidings::leptos`, feature `leptos`);
//!   - the JavaScript API (`js`, feature `js`, used by the npm and script-tag builds).
//!
//! # The Rust API in the browser
//!
//! ```no_run
//! # #[cfg(all(target_arch = "wasm32", feature = "serde"))]
//! # async fn chat() -> Result<(), tidings::Error> {
//! use std::time::Duration;
//! use tidings::{Client, Protocol};
//!
//! #[derive(serde::Deserialize)]
//! struct Line { user: String, text: String }
//!
//! let client = Client::builder("/bayeux")        // or Client::new("/events/") for SSE
//!     .protocol(Protocol::Bayeux)
//!     .throttle(Duration::ZERO)                   // every message, no folding
//!     .build()?;
//! let mut lines = client.subscribe("/chat/room")?.typed::<Line>();
//! lines.subscription().ready().await?;           // the server confirmed it
//! client.publish("/chat/room", &serde_json::json!({ "user": "ada", "text": "hi" })).await?;
//! while let Some(line) = lines.next().await {     // also a futures Stream
//!     let line = line?;                           // Error::Decode if a payload does not fit
//!     web_sys::console::log_1(&format!("{}: {}", line.user, line.text).into());
//! }
//! // Dropping `lines` unsubscribes; the connection closes with the last subscription.
//! # Ok(()) }
//! ```
//!
//! `Client` and `Subscription` exist only on `wasm32`: native doctests configure their
//! examples out, and `cargo xtask test` also compiles every doctest for wasm32 (with the
//! `yew`, `leptos` and `serde` features) and runs it in Node. Examples that need a server,
//! like the one above, are `no_run` there: compiled and linked, not run. The example apps under
//! `examples/`, built and tested in a browser by `cargo xtask test`, use the same API. The
//! options, messages and errors are plain Rust and run anywhere:
//!
//! ```
//! use std::time::Duration;
//! use tidings::{ClientBuilder, Error, PollFallback, Protocol};
//!
//! let builder = ClientBuilder::new("/events/")
//!     .protocol(Protocol::Sse)
//!     .max_channels_per_stream(20)
//!     .poll_fallback(PollFallback::new("/poll/comments/123").interval(Duration::from_secs(10)));
//! # let _ = builder;
//! // Checked before anything connects (on wasm32, `build()` returns this error):
//! let bad = ClientBuilder::new("/bayeux").protocol(Protocol::Bayeux).max_channels_per_stream(5);
//! assert!(matches!(bad.check(), Err(Error::InvalidOption(_))));
//! ```
//!
//! # Tokens and polling the app's way
//!
//! A Bayeux server that wants a token in the handshake gets it from an async
//! [`auth`](ClientBuilder::auth) hook, called before every handshake (so a reconnect after the
//! server forgot the session fetches a fresh one); its error is an [`Error::Auth`] event and
//! the client retries. When push cannot work, a subscription can poll through an async
//! function of the app's ([`PollFallback::function`]) instead of a URL:
//!
//! ```
//! # #[cfg(target_arch = "wasm32")]
//! # fn main() -> Result<(), tidings::Error> {
//! use std::time::Duration;
//! use tidings::core::client::State;
//! use tidings::{Client, PollFallback, Protocol};
//!
//! let client = Client::builder("https://example.com/bayeux")
//!     .protocol(Protocol::Bayeux)
//!     // Its JSON object is the `ext` of the handshake and of the messages after it.
//!     .auth(|| async {
//!         let token = fetch_token().await?;
//!         Ok::<_, String>(Some(format!(r#"{{"token": "{token}"}}"#)))
//!     })
//!     // While push is down: what the function returns is delivered (when it changed).
//!     .poll_fallback(PollFallback::function(fetch_comments).interval(Duration::from_secs(10)))
//!     .build()?;
//! // Lazy: nothing connects, and nothing is called, before the first subscription.
//! assert_eq!(client.state(), State::Idle);
//! # Ok(()) }
//! # #[cfg(not(target_arch = "wasm32"))]
//! # fn main() {}
//! /// The app's own calls (a `fetch()` to its server, say).
//! async fn fetch_token() -> Result<String, String> {
//!     Ok("t0k3n".into())
//! }
//! async fn fetch_comments() -> Result<String, String> {
//!     Ok(r#"{"count": 3}"#.into())
//! }
//! ```
//!
//! # Features
//!
//! - `yew`: `tidings::yew::use_subscription` for Yew 0.21 function components.
//! - `leptos`: `tidings::leptos::use_subscription` (and `provide_client` / `use_client`) for
//!   Leptos 0.8 components.
//! - `serde`: typed payloads (`Message::data_as`, `Subscription::typed`) and
//!   `Client::publish` of any `Serialize` value; on with `yew` and `leptos`. Without it,
//!   payloads are text (`Message::text`) and `Client::publish_json` takes JSON text.
//! - `js`: the wasm-bindgen JavaScript API (the npm build).
//! - `std` (default): the Rust API. Without it the crate is `no_std` + `alloc`: the core and
//!   the JavaScript API, which is how the npm build is made.
//! - `sse`, `bayeux` (default): the protocols. A build without one compiles its engine out,
//!   and its client refuses that protocol with an invalid-option error.
//!
//! The default build pulls in neither framework nor the JavaScript classes.

#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod core;

mod prelude;

#[cfg(feature = "std")]
mod rust;

#[cfg(feature = "std")]
pub use rust::{
    ClientBuilder, Error, Failure, Message, Meta, PollFallback, PollFn, PollSource, Protocol,
    SubscribeOptions,
};

#[cfg(all(target_arch = "wasm32", feature = "serde"))]
pub use rust::Typed;
#[cfg(all(target_arch = "wasm32", feature = "std"))]
pub use rust::{Client, Event, Events, Stopper, Subscription};

#[cfg(all(target_arch = "wasm32", feature = "leptos"))]
pub use rust::leptos;
#[cfg(all(target_arch = "wasm32", feature = "yew"))]
pub use rust::yew;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub mod js;

#[cfg(any(test, all(target_arch = "wasm32", feature = "js")))]
mod heap;

/// Without std (the npm build) a panic is a trap: nothing formats its message, so neither
/// std's panic machinery nor most of `core::fmt` is linked. The core does not panic on any
/// input (its parsers are fuzzed and property-tested); a trap would be a bug.
#[cfg(all(target_arch = "wasm32", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &::core::panic::PanicInfo) -> ! {
    ::core::arch::wasm32::unreachable()
}
