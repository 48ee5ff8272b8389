//! The relay over real HTTP: `app()` served on 127.0.0.1:0, and the `tidings-relay` binary.

mod binary;
mod events;
mod props;
mod publish;
mod statics;
mod store;
mod support;
