//! `cargo xtask test`: every check and test, ending with a line CI reads.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc::{self, cargo, Counts};
use crate::{build, paths, setup, Result};

/// Runs everything, even after a failure, then reports and fails if anything failed.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        return Err(format!("unknown argument {a}; usage: cargo xtask test"));
    }
    let started = Instant::now();
    let tools = setup::ensure(true)?;
    let root = paths::root();
    let mut total = Counts::default();
    let mut failed_steps: Vec<&str> = Vec::new();
    let mut check = |name: &'static str, ok: bool, total: &mut Counts| {
        if ok {
            total.passed += 1;
        } else {
            total.failed += 1;
            failed_steps.push(name);
        }
    };

    let fmt = proc::run(
        cargo()
            .current_dir(&root)
            .args(["fmt", "--all", "--", "--check"]),
    );
    check("cargo fmt", fmt.is_ok(), &mut total);
    let clippy = proc::run(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]));
    check("clippy", clippy.is_ok(), &mut total);
    // Each npm entry's feature set: a single-protocol build compiles code out.
    let clippy_wasm = crate::build::ENTRIES.iter().all(|(_, features)| {
        proc::run(crate::build::wasm_lib("clippy", features).args(["--", "-D", "warnings"])).is_ok()
    });
    check("clippy (wasm32)", clippy_wasm, &mut total);

    let (native, ok) = proc::run_tests(
        cargo().current_dir(&root).args(["test", "--workspace"]),
        Duration::from_secs(20 * 60),
    );
    add(&mut total, native);
    check("native tests", ok && native.passed > 0, &mut total);

    let built = build::package(&tools).and_then(|()| {
        proc::run(
            cargo()
                .current_dir(&root)
                .args(["build", "-p", "tidings-relay"]),
        )
    });
    check("package and relay build", built.is_ok(), &mut total);
    if built.is_ok() {
        let files = browser_test_files()?;
        let mut node = Command::new("node");
        node.current_dir(&root)
            .args([
                "--test",
                "--test-reporter=spec",
                "--test-concurrency=1",
                // A hang fails its test instead of stalling the run.
                "--test-timeout=120000",
            ])
            .args(&files)
            .env(
                "TIDINGS_RELAY",
                paths::target_dir().join("debug").join("tidings-relay"),
            )
            .env("TIDINGS_ROOT", &root)
            .env("CHROMIUM", tools.chromium.clone().unwrap_or_default());
        let (browser, ok) = proc::run_tests(&mut node, Duration::from_secs(20 * 60));
        add(&mut total, browser);
        check("browser tests", ok && browser.passed > 0, &mut total);
    }

    // The size budget (a ratchet on wasm + glue gzip bytes, see xtask/src/size.rs), on the
    // package just built: no rebuild, no twiggy.
    if built.is_ok() {
        let size = crate::size::check(&paths::pkg_dir());
        if let Err(e) = &size {
            eprintln!("{e}");
        }
        check("size budget", size.is_ok(), &mut total);
    }

    // The Rust API's framework hooks and the example apps: wasm clippy with the yew and leptos
    // features (and without js), the apps built, then their browser test against the relay.
    let clippy_hooks = proc::run(cargo().current_dir(&root).args([
        "clippy",
        "-p",
        "tidings",
        "--lib",
        "--features",
        "yew,leptos",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ]));
    check(
        "clippy (wasm32, yew + leptos)",
        clippy_hooks.is_ok(),
        &mut total,
    );
    // Doctests compiled for wasm32 with the hooks' features: the examples of the wasm-only
    // items (`Client`, `Subscription`, the hooks) are configured out natively and compiled
    // here; they, and the ones that also run natively, run in Node (`xtask wasm-doctest`).
    // Examples that need a server are `no_run`: compiled and linked, not run.
    let runner =
        std::env::current_exe().map_err(|e| format!("cannot find the xtask binary: {e}"))?;
    let runner = format!(
        "target.wasm32-unknown-unknown.runner = [{:?}, \"wasm-doctest\"]",
        runner.to_string_lossy()
    );
    let (docs, ok) = proc::run_tests(
        cargo()
            .current_dir(&root)
            .env("TIDINGS_WASM_BINDGEN", &tools.wasm_bindgen)
            .args([
                "test",
                "--doc",
                "-p",
                "tidings",
                "--target",
                "wasm32-unknown-unknown",
                "--features",
                "yew,leptos,serde",
                "--config",
                &runner,
            ]),
        Duration::from_secs(10 * 60),
    );
    add(&mut total, docs);
    check("doctests (wasm32)", ok && docs.passed > 0, &mut total);
    let example_apps = crate::examples::build(&tools);
    check("example apps build", example_apps.is_ok(), &mut total);
    if let (Ok(dist), true) = (&example_apps, built.is_ok()) {
        let mut node = Command::new("node");
        node.current_dir(&root)
            .args(["--test", "--test-reporter=spec", "--test-timeout=120000"])
            .arg(
                root.join("tests")
                    .join("browser")
                    .join("rust-examples.test.mjs"),
            )
            .env("TIDINGS_EXAMPLES", dist)
            .env(
                "TIDINGS_RELAY",
                paths::target_dir().join("debug").join("tidings-relay"),
            )
            .env("TIDINGS_ROOT", &root)
            .env("CHROMIUM", tools.chromium.clone().unwrap_or_default());
        let (apps, ok) = proc::run_tests(&mut node, Duration::from_secs(10 * 60));
        add(&mut total, apps);
        check(
            "example apps browser test",
            ok && apps.passed > 0,
            &mut total,
        );
    }

    let secs = started.elapsed().as_secs();
    if failed_steps.is_empty() {
        println!("tidings: every step passed in {secs} s");
    } else {
        println!(
            "tidings: failed steps: {} ({secs} s)",
            failed_steps.join(", ")
        );
    }
    println!(
        "summary: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if failed_steps.is_empty() {
        Ok(())
    } else {
        Err(format!("{} step(s) failed", failed_steps.len()))
    }
}

/// Loads a wasm module with no imports and runs its `main` (a doctest that reaches nothing of
/// wasm-bindgen's); `process.argv[1]` is the file.
const RUN_BARE_WASM: &str = "const m = new WebAssembly.Module(require('fs').readFileSync(process.argv[1])); \
if (WebAssembly.Module.imports(m).length > 0) { console.error('it imports from JS, and wasm-bindgen failed'); process.exit(2); } \
new WebAssembly.Instance(m, {}).exports.main(0, 0);";

/// `cargo xtask wasm-doctest FILE.wasm`: cargo's runner for doctests compiled for wasm32
/// (`cargo test --doc --target wasm32-unknown-unknown`; see the step in [`run`]). It runs the
/// doctest's `main` in Node: through wasm-bindgen's `nodejs` glue, which calls `main` on load,
/// or as it is when the doctest uses nothing of wasm-bindgen's (wasm-bindgen then finds no
/// intrinsics and fails). A panic traps and Node exits non-zero, which fails the doctest.
pub fn wasm_doctest(args: &[String]) -> Result<()> {
    let [wasm] = args else {
        return Err("usage: cargo xtask wasm-doctest FILE.wasm".into());
    };
    let wasm = PathBuf::from(wasm);
    let bindgen = std::env::var_os("TIDINGS_WASM_BINDGEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::tools_dir().join("bin").join("wasm-bindgen"));
    // Doctests run in parallel: one directory each.
    let out = paths::target_dir()
        .join("tmp")
        .join(format!("wasm-doctest-{}", std::process::id()));
    let glue = Command::new(&bindgen)
        .args(["--target", "nodejs", "--no-typescript", "--out-dir"])
        .arg(&out)
        .arg(&wasm)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bindgen.display()))?;
    let status = if glue.status.success() {
        let stem = wasm
            .file_stem()
            .ok_or("the doctest has no file name")?
            .to_string_lossy()
            .into_owned();
        Command::new("node")
            .arg(out.join(format!("{stem}.js")))
            .status()
    } else {
        Command::new("node")
            .args(["-e", RUN_BARE_WASM])
            .arg(&wasm)
            .status()
    };
    let _ = std::fs::remove_dir_all(&out);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            if !glue.status.success() {
                let why = String::from_utf8_lossy(&glue.stderr);
                eprintln!("wasm-bindgen: {}", why.lines().next().unwrap_or(""));
            }
            Err(format!("the doctest failed in Node ({s})"))
        }
        Err(e) => Err(format!("cannot run node: {e}")),
    }
}

fn add(total: &mut Counts, c: Counts) {
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
}

/// The node test files: `tests/browser/*.test.mjs` (headless Chromium) and
/// `tests/interop/*.test.mjs` (other clients and servers against tidings), sorted.
fn browser_test_files() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for sub in ["browser", "interop"] {
        let dir = paths::root().join("tests").join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".test.mjs")),
        );
    }
    files.sort();
    if files.is_empty() {
        return Err("no tests in tests/browser or tests/interop".into());
    }
    Ok(files)
}
