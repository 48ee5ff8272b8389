//! tidings: a realtime subscribe client for web pages.
//!
//! A page subscribes to channels such as `/comments/123` and tidings delivers what is published
//! there over Server-Sent Events, reconnecting by itself and resuming from the last event id so
//! nothing is lost across reconnects.
//!
//! The crate has two layers:
//! - [`core`]: the sans-IO protocol logic (SSE parser, stream state machine, subscriptions,
//!   back-off). Plain Rust, driven by inputs and the current time, tested natively.
//! - `web` and `js` (only on `wasm32`, `js` with the `js` feature): the browser shell that
//!   performs the requests and timers the core asks for, and the JavaScript API
//!   (`new Client(url, options)`).

#![warn(missing_docs)]

pub mod core;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
mod web;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub mod js;
