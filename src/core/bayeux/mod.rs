//! Bayeux 1.0 (Faye, CometD, tidings-relay): the message model and the client session.

pub mod message;
pub mod session;
