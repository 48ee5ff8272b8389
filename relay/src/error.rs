//! Why a relay could not be built.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why [`crate::app`] or [`crate::Relay::new`] failed.
#[derive(Debug)]
pub enum Error {
    /// A setting is out of range (the text says which).
    Config(String),
    /// The store file could not be read, written or replaced.
    Store {
        /// The store file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A line of the store file, other than a torn last line, is not a message this relay
    /// wrote. Nothing is changed: fix or move the file.
    CorruptStore {
        /// The store file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The demo publisher was asked for outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(text) => write!(f, "bad configuration: {text}"),
            Error::Store { path, source } => {
                write!(f, "store file {}: {source}", path.display())
            }
            Error::CorruptStore { path, line, reason } => {
                write!(f, "store file {} line {line}: {reason}", path.display())
            }
            Error::NoRuntime => f.write_str("the demo publisher needs a tokio runtime"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store { source, .. } => Some(source),
            _ => None,
        }
    }
}
