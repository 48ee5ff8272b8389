//! `cargo xtask bench pushpin`: subscribers through Pushpin vs straight to one relay.
//!
//! Builds the relay with `--release`, makes sure Pushpin and the npm tools are there, and runs
//! `tests/bench/pushpin.mjs`, which starts the relay and a private Pushpin on 127.0.0.1, runs
//! bounded load rounds with raw HTTP subscribers and writes `bench/pushpin.md` (and the raw
//! numbers in `bench/pushpin.json`). Extra arguments are passed to nothing: sizes come from
//! the environment (`BENCH_SUBSCRIBERS`, `BENCH_RATES`, `BENCH_SECONDS`, `BENCH_MODES`).

use std::process::Command;

use crate::paths;
use crate::proc;
use crate::Result;

/// Runs the Pushpin load check and writes `bench/pushpin.md`.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        return Err(format!(
            "cargo xtask bench pushpin takes no arguments (got {extra:?}); set BENCH_SUBSCRIBERS, BENCH_RATES, BENCH_SECONDS or BENCH_MODES instead"
        ));
    }
    // Chromium is not needed, but the same set-up step installs Pushpin and zurl.
    crate::setup::ensure(true)?;
    let root = paths::root();
    let relay = crate::bench::release_relay()?;
    proc::run(
        Command::new("node")
            .current_dir(&root)
            .arg(root.join("tests").join("bench").join("pushpin.mjs"))
            .env("TIDINGS_RELAY", &relay)
            .env("TIDINGS_ROOT", &root),
    )?;
    println!("wrote {}", root.join("bench").join("pushpin.md").display());
    Ok(())
}
