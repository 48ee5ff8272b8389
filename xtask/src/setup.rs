//! Installs what is missing, and nothing that is already there.
//!
//! - the `wasm32-unknown-unknown` target (rustup);
//! - `wasm-bindgen` matching the exact version pinned in Cargo.lock, built once into the tool
//!   cache (`cargo install --locked` of wasm-bindgen-cli fails against this registry, so it is
//!   installed unlocked, by exact version);
//! - the npm tools in `tests/` (binaryen's `wasm-opt`, `rolldown`, `playwright-core`) with
//!   `npm ci`;
//! - for browser tests, Debian's `chromium` and `chromium-driver`, and `pushpin` and `zurl`
//!   (the tests behind Pushpin start their own from a private config).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths;
use crate::proc::{self, in_dir};
use crate::Result;

/// The tools a build or test uses.
pub struct Tools {
    /// `wasm-bindgen` CLI matching the library.
    pub wasm_bindgen: PathBuf,
    /// binaryen's `wasm-opt` from npm (never Debian's, which corrupts modern modules).
    pub wasm_opt: PathBuf,
    /// `rolldown` from npm: bundles and minifies the package's JavaScript.
    pub rolldown: PathBuf,
    /// Chromium for browser tests, when requested.
    pub chromium: Option<PathBuf>,
}

/// Makes sure every tool is there; `browser` adds Chromium, Pushpin and zurl.
pub fn ensure(browser: bool) -> Result<Tools> {
    ensure_wasm_target()?;
    let wasm_bindgen = ensure_wasm_bindgen()?;
    let (wasm_opt, rolldown) = ensure_node_tools()?;
    let chromium = if browser {
        Some(ensure_chromium()?)
    } else {
        None
    };
    Ok(Tools {
        wasm_bindgen,
        wasm_opt,
        rolldown,
        chromium,
    })
}

fn ensure_wasm_target() -> Result<()> {
    let installed = proc::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .unwrap_or_default();
    if installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        return Ok(());
    }
    proc::run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// The wasm-bindgen version in Cargo.lock.
fn pinned_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(paths::root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(v.trim_matches('"').to_owned());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry".into())
}

fn ensure_wasm_bindgen() -> Result<PathBuf> {
    let version = pinned_wasm_bindgen()?;
    let root = paths::tools_dir();
    let bin = root.join("bin").join("wasm-bindgen");
    let want = format!("wasm-bindgen {version}");
    if proc::output(Command::new(&bin).arg("--version")).as_deref() == Some(want.as_str()) {
        return Ok(bin);
    }
    eprintln!(
        "installing wasm-bindgen-cli {version} into {} (a few minutes, once)",
        root.display()
    );
    proc::run(proc::cargo().args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={version}"),
        "--root",
        &root.to_string_lossy(),
        "--force",
    ]))?;
    Ok(bin)
}

fn newer(a: &Path, b: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((time(a), time(b)), (Some(x), Some(y)) if x >= y)
}

/// `wasm-opt` and `rolldown`.
fn ensure_node_tools() -> Result<(PathBuf, PathBuf)> {
    let dir = paths::node_tools();
    let installed = dir.join("node_modules").join(".package-lock.json");
    if !newer(&installed, &dir.join("package-lock.json")) {
        proc::run(in_dir("npm", &dir).args(["ci", "--no-audit", "--no-fund"]))?;
    }
    let bin = dir.join("node_modules").join(".bin");
    let (wasm_opt, rolldown) = (bin.join("wasm-opt"), bin.join("rolldown"));
    for tool in [&wasm_opt, &rolldown] {
        if !tool.exists() {
            return Err(format!("{} is missing after npm ci", tool.display()));
        }
    }
    Ok((wasm_opt, rolldown))
}

fn ensure_chromium() -> Result<PathBuf> {
    let given = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty());
    let chromium = given
        .clone()
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let mut missing: Vec<&str> = Vec::new();
    if given.is_none() && !(chromium.exists() && Path::new("/usr/bin/chromedriver").exists()) {
        missing.extend(["chromium", "chromium-driver"]);
    }
    if !has_command("pushpin", &["/usr/bin/pushpin", "/usr/sbin/pushpin"]) {
        missing.push("pushpin");
    }
    if !has_command("zurl", &["/usr/bin/zurl"]) {
        missing.push("zurl");
    }
    if missing.is_empty() {
        return Ok(chromium);
    }
    eprintln!("installing Debian's {}", missing.join(", "));
    let root = proc::output(Command::new("id").arg("-u")).as_deref() == Some("0");
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    proc::run(&mut apt(&["update", "-q"]))?;
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    proc::run(&mut apt(&install))?;
    if !chromium.exists() {
        return Err("chromium is still missing after apt-get install".into());
    }
    if !has_command("pushpin", &["/usr/bin/pushpin", "/usr/sbin/pushpin"]) {
        return Err("pushpin is still missing after apt-get install".into());
    }
    Ok(chromium)
}

/// Whether `name` is at one of `paths` or on `PATH`.
fn has_command(name: &str, paths: &[&str]) -> bool {
    paths.iter().any(|p| Path::new(p).exists())
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}
