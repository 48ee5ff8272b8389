//! The names std's prelude gives every module, from `alloc`, so the core and the browser shell
//! read the same with and without std.

#[allow(unused_imports)]
pub(crate) use alloc::{
    borrow::ToOwned,
    boxed::Box,
    format,
    string::{String, ToString},
    vec,
    vec::Vec,
};
