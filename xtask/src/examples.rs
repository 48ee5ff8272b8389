//! The example apps under `examples/` (`yew-chat`, `leptos-dashboard`): each a crate of its own
//! with its own lockfile, built for wasm32 (dev profile with light optimisation, the quickest
//! to build on two cores) and run through wasm-bindgen into `<target>/examples/dist/<name>/`
//! next to its `index.html` and `main.js`, ready for `tidings-relay --www`. No trunk, no wasm-opt.
//!
//! They build into a target directory of their own (`<target>/examples`) so the frameworks'
//! feature sets never invalidate the workspace's builds, and the workspace's lock is not held
//! for minutes.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::paths;
use crate::proc::{self, cargo};
use crate::setup::Tools;
use crate::Result;

/// The example apps, by directory name under `examples/`.
pub const EXAMPLES: &[&str] = &["yew-chat", "leptos-dashboard"];

/// Where the examples' cargo builds go.
fn target() -> PathBuf {
    paths::target_dir().join("examples")
}

/// Where the built examples go, one directory each.
pub fn dist_dir() -> PathBuf {
    target().join("dist")
}

/// Builds every example into [`dist_dir`].
pub fn build(tools: &Tools) -> Result<PathBuf> {
    let dist = dist_dir();
    for name in EXAMPLES {
        let started = Instant::now();
        let dir = paths::root().join("examples").join(name);
        proc::run(
            cargo()
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", target())
                .args(["build", "--target", "wasm32-unknown-unknown"]),
        )?;
        let wasm = target()
            .join("wasm32-unknown-unknown")
            .join("debug")
            .join(format!("tidings-{name}.wasm"));
        let out = dist.join(name);
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
        }
        proc::run(
            Command::new(&tools.wasm_bindgen)
                .args([
                    "--target",
                    "web",
                    "--no-typescript",
                    "--out-name",
                    "app",
                    "--out-dir",
                ])
                .arg(&out)
                .arg(&wasm),
        )?;
        for file in ["index.html", "main.js"] {
            std::fs::copy(dir.join(file), out.join(file))
                .map_err(|e| format!("cannot copy examples/{name}/{file}: {e}"))?;
        }
        let len = std::fs::metadata(out.join("app_bg.wasm"))
            .map(|m| m.len())
            .unwrap_or(0);
        eprintln!(
            "examples/{name}: built in {:.1} s, app_bg.wasm {len} bytes",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(dist)
}
