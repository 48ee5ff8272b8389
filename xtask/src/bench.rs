//! `cargo xtask bench [clients|pushpin]`: benchmarks, written under `bench/` (not part of the
//! test run).

use std::process::Command;
use std::time::Duration;

use crate::proc::{self, cargo};
use crate::{build, paths, setup, Result};

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

/// How long the client benchmark may run before it is killed (it takes about five minutes).
const CLIENTS_LIMIT: Duration = Duration::from_secs(12 * 60);

/// tidings side by side with the Faye browser client and reconnecting-eventsource.
///
/// Builds `pkg/` and a release relay, then runs `tests/bench/clients.mjs` (headless Chromium),
/// which writes `bench/clients.md` and `bench/clients.svg`. `--quick` runs a tenth of the
/// messages and writes under `target/bench-quick/` instead, leaving the committed results alone.
fn clients(args: &[String]) -> Result<()> {
    let mut quick = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: cargo xtask bench clients [--quick]"
                ))
            }
        }
    }
    let tools = setup::ensure(true)?;
    build::package(&tools)?;
    let root = paths::root();
    let relay = release_relay()?;
    let mut node = Command::new("node");
    node.current_dir(&root)
        .arg(root.join("tests").join("bench").join("clients.mjs"))
        .env("TIDINGS_RELAY", relay)
        .env("TIDINGS_ROOT", &root)
        .env("CHROMIUM", tools.chromium.clone().unwrap_or_default());
    if quick {
        node.env("BENCH_LATENCY", "200")
            .env("BENCH_THROUGHPUT", "2000")
            .env("BENCH_OUT", paths::target_dir().join("bench-quick"));
    }
    eprintln!(
        "benchmark: one run on a shared machine ({} cores); expect noise of tens of per cent",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (_, ok) = proc::run_tests(&mut node, CLIENTS_LIMIT);
    if ok {
        Ok(())
    } else {
        Err("the client benchmark failed (see its output above)".into())
    }
}

/// Builds the relay as it would be deployed (a release build, so the servers are not the
/// bottleneck of a benchmark) and returns the binary's path.
pub fn release_relay() -> Result<std::path::PathBuf> {
    proc::run(cargo().current_dir(paths::root()).args([
        "build",
        "--release",
        "-p",
        "tidings-relay",
    ]))?;
    Ok(paths::target_dir().join("release").join("tidings-relay"))
}
