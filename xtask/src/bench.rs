//! `cargo xtask bench [clients|pushpin]`: benchmarks, written under `bench/` (not part of the
//! test run).

use crate::Result;

/// Runs the named benchmark, or all of them.
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None => {
            clients(&[])?;
            crate::bench_pushpin::run(&[])
        }
        Some("clients") => clients(&args[1..]),
        Some("pushpin") => crate::bench_pushpin::run(&args[1..]),
        Some(other) => Err(format!(
            "unknown benchmark {other}; usage: cargo xtask bench [clients|pushpin]"
        )),
    }
}

/// tidings side by side with the Faye browser client and reconnecting-eventsource.
fn clients(_args: &[String]) -> Result<()> {
    Err("the client benchmark is not written yet".into())
}
