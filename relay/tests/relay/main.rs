//! The relay over real HTTP: `app()` served on 127.0.0.1:0, and the `tidings-relay` binary.

mod bayeux;
mod bayeux_input;
mod bayeux_replay;
mod bayeux_ws;
mod binary;
mod comments;
mod events;
mod faults;
mod poll;
mod props;
mod publish;
mod statics;
mod store;
mod support;
