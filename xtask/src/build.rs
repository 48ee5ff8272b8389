//! Builds the npm package into `pkg/`: release wasm, wasm-bindgen ESM glue, binaryen `-Oz`,
//! and `package.json` from the hand-kept `pkg.json`.

use std::path::Path;

use crate::paths;
use crate::proc::{self, cargo};
use crate::setup::Tools;
use crate::Result;

/// Builds `pkg/`.
pub fn package(tools: &Tools) -> Result<()> {
    proc::run(cargo().current_dir(paths::root()).args([
        "build",
        "-p",
        "tidings",
        "--lib",
        "--features",
        "js",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm",
    ]))?;
    let wasm = paths::target_dir()
        .join("wasm32-unknown-unknown")
        .join("wasm")
        .join("tidings.wasm");
    let pkg = paths::pkg_dir();
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).map_err(|e| format!("cannot clear pkg/: {e}"))?;
    }
    proc::run(
        std::process::Command::new(&tools.wasm_bindgen)
            .args(["--target", "web", "--out-name", "tidings", "--out-dir"])
            .arg(&pkg)
            .arg(&wasm),
    )?;
    let bg = pkg.join("tidings_bg.wasm");
    // No --all-features: binaryen then emits compact imports that Chromium refuses.
    proc::run(
        std::process::Command::new(&tools.wasm_opt)
            .args(["-Oz", "--strip-debug", "--strip-producers"])
            .arg(&bg)
            .arg("-o")
            .arg(&bg),
    )?;
    write_manifest(&pkg)?;
    write_global(&pkg)?;
    for f in ["tidings_bg.wasm", "tidings.js"] {
        let len = std::fs::metadata(pkg.join(f)).map(|m| m.len()).unwrap_or(0);
        eprintln!("pkg/{f}: {len} bytes");
    }
    Ok(())
}

/// The script-tag build: the loader next to the ESM build, with its SRI hash beside it.
fn write_global(pkg: &Path) -> Result<()> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let src = paths::root()
        .join("src")
        .join("js")
        .join("tidings.global.js");
    let text = std::fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    std::fs::write(pkg.join("tidings.global.js"), &text)
        .map_err(|e| format!("cannot write pkg/tidings.global.js: {e}"))?;
    let digest = sha2::Sha384::digest(&text);
    let sri = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    );
    std::fs::write(pkg.join("tidings.global.js.sri"), format!("{sri}\n"))
        .map_err(|e| format!("cannot write pkg/tidings.global.js.sri: {e}"))?;
    eprintln!("pkg/tidings.global.js integrity=\"{sri}\"");
    Ok(())
}

/// `pkg/package.json`: `pkg.json` plus the crate version and the files wasm-bindgen wrote.
fn write_manifest(pkg: &Path) -> Result<()> {
    let text = std::fs::read_to_string(paths::root().join("pkg.json"))
        .map_err(|e| format!("cannot read pkg.json: {e}"))?;
    let mut manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("pkg.json is not valid JSON: {e}"))?;
    let obj = manifest
        .as_object_mut()
        .ok_or("pkg.json must hold a JSON object")?;
    obj.insert("version".into(), crate_version()?.into());
    let out = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(pkg.join("package.json"), out + "\n")
        .map_err(|e| format!("cannot write pkg/package.json: {e}"))
}

/// The `tidings` crate's version, from the root Cargo.toml's `[package]` table.
fn crate_version() -> Result<String> {
    let text = std::fs::read_to_string(paths::root().join("Cargo.toml"))
        .map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    text.lines()
        .skip_while(|l| l.trim() != "[package]")
        .take_while(|l| !l.starts_with('[') || l.trim() == "[package]")
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .ok_or_else(|| "Cargo.toml has no [package] version".into())
}
