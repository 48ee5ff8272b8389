//! `cargo xtask demo`: the relay serving `www/` with live data, on 127.0.0.1.

use std::process::Command;

use crate::proc::{self, cargo};
use crate::{build, paths, setup, Result};

/// Sets up, builds the package and the relay, then runs the relay until interrupted.
pub fn run(args: &[String]) -> Result<()> {
    let mut port = String::from("8080");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => port = it.next().ok_or("--port needs a number")?.clone(),
            other => {
                return Err(format!(
                    "unknown flag {other}; usage: cargo xtask demo [--port N]"
                ))
            }
        }
    }
    port.parse::<u16>()
        .map_err(|_| format!("--port {port}: not a port number"))?;
    let tools = setup::ensure(false)?;
    build::package(&tools)?;
    proc::run(cargo().current_dir(paths::root()).args([
        "build",
        "-p",
        "tidings-relay",
        "--release",
    ]))?;
    let relay = paths::target_dir().join("release").join("tidings-relay");
    let root = paths::root();
    eprintln!("tidings demo: open http://127.0.0.1:{port}/ (Ctrl-C stops it)");
    proc::run(
        Command::new(relay)
            .current_dir(&root)
            .args(["--port", &port, "--demo", "--no-auth", "--www"])
            .arg(root.join("www"))
            .arg("--pkg")
            .arg(paths::pkg_dir()),
    )
}
