//! `cargo xtask <task>`: the project's commands.
//!
//! - `demo [--port N]`: set up what is missing, build the npm package, run the relay serving
//!   `www/` with live demo data.
//! - `test`: set up what is missing (browser included), run every check and test, end with a
//!   `N passed, M failed` line.
//! - `build`: build the npm package into `pkg/`.
//! - `setup [--browser]`: only install what is missing.
//! - `size`: the size report of the builds, failing over the budget.
//! - `bench [clients|pushpin]`: the benchmarks, written under `bench/`.
//! - `wasm-doctest FILE.wasm`: runs one doctest compiled for wasm32 in Node (cargo's runner
//!   for them in `test`).

mod bench;
mod bench_pushpin;
mod build;
mod dead_data;
mod demo;
mod examples;
mod glue;
mod paths;
mod proc;
mod setup;
mod size;
mod test;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match task {
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "build" => setup::ensure(false).and_then(|tools| build::package(&tools)),
        "size" => size::run(rest),
        "bench" => bench::run(rest),
        "wasm-doctest" => test::wasm_doctest(rest),
        "setup" => setup::ensure(rest.iter().any(|a| a == "--browser")).map(|_| ()),
        _ => {
            eprintln!("usage: cargo xtask <demo [--port N] | test | build | setup [--browser] | size | bench [clients|pushpin]>");
            return if task == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors are reported as sentences; the tasks have no use for more structure.
pub type Result<T, E = String> = std::result::Result<T, E>;
