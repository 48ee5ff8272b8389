//! `cargo xtask size`: raw / gzip / brotli bytes of the builds, the biggest contributors, and
//! the enforced budget.
//!
//! - `cargo xtask size` builds `pkg/` first (like `cargo xtask build`); `--no-build` measures
//!   the `pkg/` that is there.
//! - The table: every file of each ESM entry (wasm, minified JS glue), their totals,
//!   and the script-tag build (the loader plus the build of the protocol it imports on first
//!   use).
//! - Where the bytes go: `twiggy top` on the same wasm optimized the same way but with its name
//!   section kept (wasm-bindgen `--keep-debug`, wasm-opt `-Oz -g`), the ten biggest items and a
//!   rollup per module. twiggy is installed into the tool cache when missing.
//! - The budget ([`check`], also run by `cargo xtask test`): gzip bytes of wasm + glue must not
//!   exceed its entry's [`BUDGETS`] row (the all-in-one build and the single-protocol ones).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::proc;
use crate::setup::Tools;
use crate::{build, paths, setup, Result};

/// The enforced budgets: gzip -9 bytes of wasm + JS glue, per ESM entry of the package
/// (`tidings`: every protocol; `tidings-sse`, `tidings-bayeux`: one each, see
/// [`build::ENTRIES`]).
///
/// `tidings-sse` is held to the issue's budget, [`ISSUE_BUDGET_GZIP`] (29,455 B on
/// 2026-12-08). The other two are still over it, and the test run must stay green while the
/// savings in `bench/size.md` land, so theirs are a ratchet: the sizes measured when they were
/// last lowered (42,137 / 33,679 B for tidings / bayeux on 2026-12-08), rounded up to the next
/// 500 B with at least 250 B to spare. Any real growth fails; lower them whenever a saving
/// lands, until they reach 30,000.
pub const BUDGETS: [(&str, u64); 3] = [
    ("tidings", 42_500),
    ("tidings-sse", ISSUE_BUDGET_GZIP),
    ("tidings-bayeux", 34_000),
];

/// The budget the issue asks CI to enforce (wasm + glue, gzip -9).
pub const ISSUE_BUDGET_GZIP: u64 = 30_000;

/// The size the issue aims for (wasm + glue, gzip -9).
pub const TARGET_GZIP: u64 = 15_000;

/// How many of the biggest twiggy items are listed.
const TOP: usize = 10;

/// The twiggy release that reads wasm-bindgen 0.2.130's output.
const TWIGGY_VERSION: &str = "0.8.0";

/// Prints the size report; fails when the budget is exceeded.
pub fn run(args: &[String]) -> Result<()> {
    let mut build_first = true;
    for a in args {
        match a.as_str() {
            "--no-build" => build_first = false,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: cargo xtask size [--no-build]"
                ))
            }
        }
    }
    let tools = setup::ensure(false)?;
    if build_first {
        build::package(&tools)?;
    }
    let pkg = paths::pkg_dir();
    let loader = pkg.join("tidings.global.js");

    println!("\nsizes of pkg/ (bytes; gzip -9 via flate2, brotli -q 11 via the brotli crate)\n");
    println!(
        "{:<44} {:>9} {:>9} {:>11}",
        "file", "raw", "gzip -9", "brotli q11"
    );
    let mut total = Sizes::default();
    let mut entries = Vec::new();
    // The all-in-one entry comes last (see `build::ENTRIES`), so `total` is its build's.
    for (name, _) in build::ENTRIES {
        let mut sum = Sizes::default();
        for f in &esm_files(&pkg, name)? {
            let s = Sizes::of(f)?;
            print_row(&format!("  {}", rel(&pkg, f)), &s);
            sum.add(&s);
        }
        let label = match name {
            "tidings" => "ESM build: wasm + glue".to_owned(),
            one => format!("{}: wasm + glue", one.replace('-', "/")),
        };
        print_row(&label, &sum);
        entries.push((name, sum));
        total = sum;
    }
    let l = Sizes::of(&loader)?;
    print_row("  tidings.global.js (loader, eager)", &l);
    // The loader imports the build of the protocol a client uses (`tidings-<protocol>.js`).
    for (name, sum) in entries.iter().filter(|(name, _)| *name != "tidings") {
        let mut script_tag = *sum;
        script_tag.add(&l);
        let protocol = name.trim_start_matches("tidings-");
        print_row(
            &format!("script-tag build, {protocol}: loader + wasm + glue"),
            &script_tag,
        );
    }
    // Other entry points of the package (e.g. a lazy wrapper): shown, not part of the budget.
    for f in other_js(&pkg) {
        print_row(&format!("  other: {}", rel(&pkg, &f)), &Sizes::of(&f)?);
    }

    match contributors(&tools, &pkg) {
        Ok(()) => {}
        // The breakdown is a help, not the budget: say why it is missing and go on.
        Err(e) => eprintln!("\nno breakdown of the wasm: {e}"),
    }

    println!();
    let checked = check(&pkg);
    println!(
        "gap to the issue budget ({ISSUE_BUDGET_GZIP} B): {:+} B; to the target ({TARGET_GZIP} B): {:+} B",
        total.gzip as i64 - ISSUE_BUDGET_GZIP as i64,
        total.gzip as i64 - TARGET_GZIP as i64,
    );
    checked.map(|_| ())
}

/// Checks the enforced budgets on a built `pkg/`: gzip -9 bytes of each entry's wasm + JS glue
/// must not exceed its [`BUDGETS`] row. Cheap (no build, no twiggy); prints a line per entry
/// and returns the all-in-one build's bytes.
pub fn check(pkg: &Path) -> Result<u64> {
    let mut all_in_one = 0;
    let mut over = Vec::new();
    for (name, budget) in BUDGETS {
        let mut gzip = 0;
        for f in esm_files(pkg, name)? {
            gzip += gzip_len(&read(&f)?);
        }
        if name == "tidings" {
            all_in_one = gzip;
        }
        if gzip > budget {
            over.push(format!("{name}: {gzip} B gzip, the budget is {budget} B"));
            continue;
        }
        println!(
            "size budget ({name}): wasm + glue {gzip} B gzip, within {budget} B ({} B to spare; issue budget {ISSUE_BUDGET_GZIP} B, target {TARGET_GZIP} B)",
            budget - gzip
        );
    }
    if !over.is_empty() {
        return Err(format!(
            "size budget exceeded (wasm + glue): {} (xtask/src/size.rs; run `cargo xtask size` to see where the bytes go)",
            over.join("; ")
        ));
    }
    Ok(all_in_one)
}

/// An ESM entry's files: the wasm and the glue (one module: its snippets are bundled in).
fn esm_files(pkg: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let files = vec![
        pkg.join(format!("{name}_bg.wasm")),
        pkg.join(format!("{name}.js")),
    ];
    for f in &files {
        if !f.is_file() {
            return Err(format!(
                "{} is missing: run `cargo xtask build` (or `cargo xtask size` without --no-build)",
                f.display()
            ));
        }
    }
    Ok(files)
}

/// JavaScript files at the top of `pkg/` besides the glue and the loader.
fn other_js(pkg: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pkg)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "js")
                        && !build::ENTRIES
                            .iter()
                            .any(|(name, _)| p.ends_with(format!("{name}.js")))
                        && !p.ends_with("tidings.global.js")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn rel(base: &Path, f: &Path) -> String {
    f.strip_prefix(base).unwrap_or(f).display().to_string()
}

fn read(f: &Path) -> Result<Vec<u8>> {
    std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))
}

/// Raw, gzip and brotli bytes of one file or a sum of files (each compressed on its own, as
/// each is served on its own).
#[derive(Debug, Default, Clone, Copy)]
struct Sizes {
    raw: u64,
    gzip: u64,
    brotli: u64,
}

impl Sizes {
    fn of(f: &Path) -> Result<Sizes> {
        let bytes = read(f)?;
        Ok(Sizes {
            raw: bytes.len() as u64,
            gzip: gzip_len(&bytes),
            brotli: brotli_len(&bytes),
        })
    }

    fn add(&mut self, o: &Sizes) {
        self.raw += o.raw;
        self.gzip += o.gzip;
        self.brotli += o.brotli;
    }
}

fn print_row(name: &str, s: &Sizes) {
    println!("{name:<44} {:>9} {:>9} {:>11}", s.raw, s.gzip, s.brotli);
}

/// gzip -9 (header and trailer included, no file name: what a server sends).
fn gzip_len(bytes: &[u8]) -> u64 {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory").len() as u64
}

/// brotli -q 11 with a 4 MiB window (bigger than any file here, so the window does not matter).
fn brotli_len(bytes: &[u8]) -> u64 {
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        enc.write_all(bytes).expect("brotli into memory");
    }
    out.len() as u64
}

/// Where the wasm bytes go: the ten biggest items and a rollup per module, from twiggy on a
/// named build of the same wasm.
fn contributors(tools: &Tools, pkg: &Path) -> Result<()> {
    let twiggy = ensure_twiggy()?;
    let named = named_build(tools)?;
    let out = proc::output(
        Command::new(&twiggy)
            .args(["top", "--format", "json"])
            .arg(&named),
    )
    .ok_or_else(|| format!("twiggy top {} failed", named.display()))?;
    let rows: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("twiggy's JSON: {e}"))?;
    let items: Vec<(String, u64)> = rows
        .as_array()
        .ok_or("twiggy's JSON is not a list")?
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["shallow_size"].as_u64()?)))
        // Custom sections (the name section kept for twiggy) are not shipped.
        .filter(|(name, _)| !is_custom_section(name))
        .collect();
    let shipped: u64 = items.iter().map(|(_, s)| s).sum();
    let pkg_wasm = std::fs::metadata(pkg.join("tidings_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "\nwhere the wasm bytes go (twiggy {TWIGGY_VERSION} on {}: {shipped} B without its name section; pkg/tidings_bg.wasm is {pkg_wasm} B)",
        named.display()
    );
    println!(
        "\n{:>7} {:>6}  top {TOP} items (shallow bytes)",
        "bytes", "%"
    );
    for (name, size) in items.iter().take(TOP) {
        println!(
            "{size:>7} {:>5.1}%  {}",
            percent(*size, shipped),
            shorten(name, 100)
        );
    }
    let mut groups: Vec<(String, u64, usize)> = Vec::new();
    for (name, size) in &items {
        let g = group(name);
        match groups.iter_mut().find(|(n, _, _)| *n == g) {
            Some(entry) => {
                entry.1 += size;
                entry.2 += 1;
            }
            None => groups.push((g, *size, 1)),
        }
    }
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!(
        "\n{:>7} {:>6} {:>6}  per module (shallow bytes)",
        "bytes", "%", "items"
    );
    for (name, size, count) in &groups {
        println!(
            "{size:>7} {:>5.1}% {count:>6}  {name}",
            percent(*size, shipped)
        );
    }
    Ok(())
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn shorten(name: &str, max: usize) -> String {
    let name = strip_crate_hashes(strip_hash_suffix(name));
    if name.chars().count() <= max {
        name
    } else {
        let cut: String = name.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// `foo::bar::h0123456789abcdef` without its `::h…` symbol hash.
fn strip_hash_suffix(name: &str) -> &str {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            &name[..i]
        }
        _ => name,
    }
}

/// `core[c5930c85a12de822]::fmt` → `core::fmt`.
fn strip_crate_hashes(name: &str) -> String {
    let mut clean = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '[' {
            let rest: String = chars.clone().take(17).collect();
            if rest.len() == 17
                && rest.ends_with(']')
                && rest[..16].bytes().all(|b| b.is_ascii_hexdigit())
            {
                for _ in 0..17 {
                    chars.next();
                }
                continue;
            }
        }
        clean.push(c);
    }
    clean
}

fn is_custom_section(name: &str) -> bool {
    name.starts_with("custom section") || name.ends_with("subsection")
}

/// The module an item is counted under. Formatting and panics are counted apart from the code
/// that reaches them because they are what the size plan removes; tidings' own code is split by
/// module, everything else by crate.
fn group(name: &str) -> String {
    let clean = strip_crate_hashes(name);
    let n = clean.as_str();
    if n.starts_with("data segment") {
        return "data segments (.rodata: strings, tables)".into();
    }
    if n.contains("core::fmt") || n.starts_with("alloc::fmt") {
        return "core::fmt (formatting)".into();
    }
    if n.contains("panicking") || n.contains("panic_") || n.contains("::panic") {
        return "panics (core/std::panicking)".into();
    }
    if n.contains("dlmalloc") || n.starts_with("__rdl_") || n.starts_with("__rustc::__rdl") {
        return "dlmalloc (allocator)".into();
    }
    if n.starts_with("core::ptr::drop_in_place") {
        return "drop glue (core::ptr::drop_in_place)".into();
    }
    // `<tidings::js::page::Page as tidings::web::Sink>::dispatch` is tidings::js's code.
    let path = n.trim_start_matches('<');
    let segs: Vec<&str> = path
        .split("::")
        .map(|s| s.split(['<', ' ', '>', '(']).next().unwrap_or(""))
        .collect();
    match segs.as_slice() {
        ["tidings", "core", module, ..] if !module.is_empty() => {
            return format!("tidings::core::{module}")
        }
        ["tidings", area, ..] => return format!("tidings::{area}"),
        _ => {}
    }
    let krate = segs.first().copied().unwrap_or("");
    match krate {
        "alloc" if segs.get(1) == Some(&"collections") => {
            "alloc::collections (BTreeMap, VecDeque)".into()
        }
        "alloc" => "alloc (Vec, String, Rc)".into(),
        "core" | "char" | "str" | "u8" | "u16" | "u32" | "u64" | "usize" | "i64" | "f64" | "T"
        | "[T]" => "core (str, iter, slice, …)".into(),
        "std" => "std".into(),
        "hashbrown" => "hashbrown (HashMap)".into(),
        "js_sys" | "web_sys" | "wasm_bindgen" | "wasm_bindgen_futures" | "gloo_timers" => {
            "js-sys, web-sys, wasm-bindgen runtime".into()
        }
        "percent_encoding" => "percent-encoding".into(),
        "import" | "export" | "type" | "elem" | "table" | "memory" | "global" => {
            "imports, exports, types, tables".into()
        }
        _ if n.contains("shim") => "wasm-bindgen export shims".into(),
        // wasm-bindgen's exported wrappers are plain snake_case names (`client_publish`).
        _ if !n.contains("::") && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            "wasm-bindgen exports".into()
        }
        _ => "other".into(),
    }
}

/// The package's wasm as `cargo xtask build` optimizes it, but with its name section kept, so
/// twiggy can name what it sees: wasm-bindgen `--keep-debug`, then wasm-opt with the same flags
/// plus `-g`. Its size without the name section is within a few bytes of the shipped file.
fn named_build(tools: &Tools) -> Result<PathBuf> {
    let wasm = paths::target_dir()
        .join("wasm32-unknown-unknown")
        .join("wasm")
        .join("tidings.wasm");
    if !wasm.is_file() {
        return Err(format!(
            "{} is missing: run `cargo xtask size` without --no-build",
            wasm.display()
        ));
    }
    let dir = paths::target_dir().join("size");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    proc::run(
        Command::new(&tools.wasm_bindgen)
            .args([
                "--keep-debug",
                "--target",
                "web",
                "--out-name",
                "tidings",
                "--out-dir",
            ])
            .arg(&dir)
            .arg(&wasm),
    )?;
    let named = dir.join("tidings_named.wasm");
    proc::run(
        Command::new(&tools.wasm_opt)
            .args(build::OPT_PASSES)
            .args(["-g", "--strip-producers"])
            .arg(dir.join("tidings_bg.wasm"))
            .arg("-o")
            .arg(&named),
    )?;
    Ok(named)
}

/// twiggy from the tool cache, installed there once when missing (about two minutes).
fn ensure_twiggy() -> Result<PathBuf> {
    let root = paths::tools_dir();
    let bin = root.join("bin").join("twiggy");
    if proc::output(Command::new(&bin).arg("--version")).is_some() {
        return Ok(bin);
    }
    eprintln!(
        "installing twiggy {TWIGGY_VERSION} into {} (a couple of minutes, once)",
        root.display()
    );
    proc::run(proc::cargo().args([
        "install",
        "twiggy",
        "--version",
        &format!("={TWIGGY_VERSION}"),
        "--root",
        &root.to_string_lossy(),
    ]))?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_module() {
        let g = |n: &str| group(n);
        assert_eq!(
            g("tidings::core::client::ClientCore<P>::pump::h79d1e182c31219b2"),
            "tidings::core::client"
        );
        assert_eq!(
            g("<tidings::js::page::Page as tidings::web::Sink>::dispatch::h630476f0fb07ca46"),
            "tidings::js"
        );
        assert_eq!(
            g("tidings::web::fetch::run::{{closure}}::h8b791659cf3dd4a6"),
            "tidings::web"
        );
        assert_eq!(
            g("<dlmalloc[e24a27700634d609]::dlmalloc::Dlmalloc<dlmalloc[e24a27700634d609]::sys::System>>::malloc"),
            "dlmalloc (allocator)"
        );
        assert_eq!(
            g("<&usize as core::fmt::Debug>::fmt"),
            "core::fmt (formatting)"
        );
        assert_eq!(
            g("core[c5930c85a12de822]::str::slice_error_fail"),
            "core (str, iter, slice, …)"
        );
        assert_eq!(
            g("data segment \".rodata\""),
            "data segments (.rodata: strings, tables)"
        );
        assert_eq!(
            g("core::ptr::drop_in_place<tidings::web::Driver>::hf43cacd42bd42b51"),
            "drop glue (core::ptr::drop_in_place)"
        );
        assert_eq!(g("client_publish"), "wasm-bindgen exports");
        assert_eq!(
            g("poll externref shim multivalue shim"),
            "wasm-bindgen export shims"
        );
    }

    #[test]
    fn strips_symbol_hashes() {
        assert_eq!(strip_hash_suffix("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(strip_hash_suffix("a::hello"), "a::hello");
    }

    #[test]
    fn compresses() {
        let text = b"tidings tidings tidings tidings tidings tidings".repeat(20);
        assert!(gzip_len(&text) < text.len() as u64);
        assert!(brotli_len(&text) < text.len() as u64);
    }
}
