//! `cargo xtask bench pushpin`: subscribers through Pushpin vs straight to one relay.

use crate::Result;

/// Runs the Pushpin load check and writes `bench/pushpin.md`.
pub fn run(_args: &[String]) -> Result<()> {
    Err("the Pushpin benchmark is not written yet".into())
}
