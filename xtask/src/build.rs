//! Builds the npm package into `pkg/`: release wasm through wasm-bindgen and binaryen `-Oz`,
//! the hand-written glue and TypeScript declarations, the lazy entry (`tidings/lazy`), the script-tag
//! loader with its SRI hash, the versioned files for a CDN (`pkg/cdn/`), and `package.json`
//! from the hand-kept `pkg.json`.
//!
//! Everything is written into a staging directory that replaces `pkg/` at the end, so tests
//! reading `pkg/` never see it half-written.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::dead_data;
use crate::glue;
use crate::paths;
use crate::proc::{self, cargo};
use crate::setup::Tools;
use crate::Result;

/// The script-tag loader's size budget, gzip.
const LOADER_GZIP_BUDGET: usize = 1_500;

/// The package's ESM entries: the name of its module (`<name>.js`, `<name>_bg.wasm`) and the
/// crate features of its wasm. `tidings` has every protocol; `tidings-sse` and
/// `tidings-bayeux` (imported as `tidings/sse`, `tidings/bayeux`) compile the other protocol
/// out, for pages that know which one their server speaks; the lazy entry and the script tag
/// load the one a client's protocol needs. All three have the same API (client.js) and
/// declarations. The all-in-one build goes last: `cargo xtask size` reads its unoptimized
/// wasm from target/.
pub const ENTRIES: [(&str, &str); 3] = [
    ("tidings-sse", "js,sse"),
    ("tidings-bayeux", "js,bayeux"),
    ("tidings", "js,sse,bayeux"),
];

/// The protocols the lazy entry and the script tag load one module each for: `tidings-<p>`.
pub const PROTOCOLS: [&str; 2] = ["sse", "bayeux"];

/// Builds `pkg/`.
pub fn package(tools: &Tools) -> Result<()> {
    // In the clone's target/ (ignored by git), on the same file system as pkg/ so the final
    // rename is one step; one per build process, so two builds at once do not mix files.
    let stage = paths::root()
        .join("target")
        .join(format!("pkg-staging-{}", std::process::id()));
    let built = fill(tools, &stage);
    let pkg = paths::pkg_dir();
    let moved = built.and_then(|version| {
        if pkg.exists() {
            std::fs::remove_dir_all(&pkg).map_err(|e| format!("cannot clear pkg/: {e}"))?;
        }
        std::fs::rename(&stage, &pkg).map_err(|e| format!("cannot move the build to pkg/: {e}"))?;
        Ok(version)
    });
    let _ = std::fs::remove_dir_all(&stage);
    let version = moved?;
    let entries = ENTRIES
        .iter()
        .flat_map(|(name, _)| [format!("{name}_bg.wasm"), format!("{name}.js")]);
    let others = ["lazy.js", "tidings.global.js"].map(String::from);
    for f in entries.chain(others) {
        let bytes = std::fs::read(pkg.join(&f)).unwrap_or_default();
        eprintln!("pkg/{f}: {} bytes, {} gzip", bytes.len(), gzip_len(&bytes));
    }
    check_readme(&pkg, &version);
    Ok(())
}

/// Writes the whole package into `stage`; returns the version.
fn fill(tools: &Tools, stage: &Path) -> Result<String> {
    if stage.exists() {
        std::fs::remove_dir_all(stage)
            .map_err(|e| format!("cannot clear {}: {e}", stage.display()))?;
    }
    std::fs::create_dir_all(stage)
        .map_err(|e| format!("cannot create {}: {e}", stage.display()))?;
    for (name, features) in ENTRIES {
        entry(tools, stage, name, features)?;
    }
    let version = crate_version()?;
    write_manifest(stage, &version)?;
    write_types(stage)?;
    write_lazy(stage)?;
    write_global(tools, stage)?;
    write_cdn(stage, &version)?;
    for doc in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        copy(&paths::root().join(doc), &stage.join(doc))?;
    }
    Ok(version)
}

/// `cargo <command>` on the crate's library for wasm32 with exactly `features` (no defaults):
/// how an npm entry is built and linted.
pub fn wasm_lib(command: &str, features: &str) -> std::process::Command {
    let mut c = cargo();
    c.current_dir(paths::root()).args([
        command,
        "-p",
        "tidings",
        "--lib",
        "--no-default-features",
        "--features",
        features,
        "--target",
        "wasm32-unknown-unknown",
    ]);
    c
}

/// binaryen's passes for the npm wasm (the size report's named build runs the same).
///
/// Flattening and re-looping the control flow before `-Oz` lets it find smaller structures
/// than `-Oz` alone, and more rounds of `-Oz` pick up what the first one exposed (about 240 B
/// gzip of the SSE build for the second, up to 60 B for the third; a fourth gains nothing).
/// Last, the functions are put in the order of their names (wasm-bindgen's output keeps
/// them): functions of one module or type sit together, and gzip's window finds more of
/// the same code in reach. That is 240-270 B gzip of every build, for a file of the same
/// size and behaviour.
pub const OPT_PASSES: [&str; 6] = [
    "--flatten",
    "--rereloop",
    "-Oz",
    "-Oz",
    "-Oz",
    "--reorder-functions-by-name",
];

/// One ESM entry into `stage`: `<name>.js` and `<name>_bg.wasm`, the wasm built with
/// `features`.
fn entry(tools: &Tools, stage: &Path, name: &str, features: &str) -> Result<()> {
    proc::run(wasm_lib("build", features).args(["--profile", "wasm"]))?;
    // The same path for every feature set: wasm-bindgen reads it before the next build.
    let wasm = paths::target_dir()
        .join("wasm32-unknown-unknown")
        .join("wasm")
        .join("tidings.wasm");
    proc::run(
        std::process::Command::new(&tools.wasm_bindgen)
            .args(["--target", "web", "--no-typescript", "--out-name", name])
            .arg("--out-dir")
            .arg(stage)
            .arg(&wasm),
    )?;
    let bg = stage.join(format!("{name}_bg.wasm"));
    // No --all-features: binaryen then emits compact imports that Chromium refuses.
    // --low-memory-unused lets binaryen fold constant offsets into loads and stores: Rust's
    // stack sits below the data and grows down from 1 MiB, so the first 1 KiB is never used.
    // --strip-target-features: the section only tells tools which wasm features the code
    // uses; browsers ignore it (about 110 B gzip).
    // --minify-imports-and-exports-and-modules: see `glue`; it prints its name map.
    let mut opt = std::process::Command::new(&tools.wasm_opt);
    opt.args(OPT_PASSES)
        .args([
            "--low-memory-unused",
            "--strip-debug",
            "--strip-producers",
            "--strip-target-features",
            "--minify-imports-and-exports-and-modules",
        ])
        .arg(&bg)
        .arg("-o")
        .arg(&bg);
    eprintln!("$ {}", proc::show(&opt));
    let out = opt
        .output()
        .map_err(|e| format!("cannot start wasm-opt: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            proc::show(&opt),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Texts that nothing refers to any more go (see `dead_data`).
    let mut wasm = std::fs::read(&bg).map_err(|e| format!("cannot read {}: {e}", bg.display()))?;
    let zeroed =
        dead_data::zero_unreferenced(&mut wasm).map_err(|e| format!("{}: {e}", bg.display()))?;
    eprintln!("{name}_bg.wasm: {zeroed} B of text nothing refers to zeroed");
    write(&bg, &wasm)?;
    let modules = import_modules(&wasm)?;
    let [module] = modules.as_slice() else {
        return Err(format!(
            "the renamed wasm imports from {modules:?}, not one module"
        ));
    };
    bundle_js(
        tools,
        stage,
        name,
        features,
        &String::from_utf8_lossy(&out.stdout),
        module,
    )
}

/// The module names of a wasm file's imports, each once, in order. Only function imports are
/// expected (the glue provides functions only).
fn import_modules(wasm: &[u8]) -> Result<Vec<String>> {
    let mut modules: Vec<String> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("the wasm does not parse: {e}"))?;
        let wasmparser::Payload::ImportSection(imports) = payload else {
            continue;
        };
        for import in imports.into_imports() {
            let import = import.map_err(|e| format!("an import does not parse: {e}"))?;
            if !matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                return Err("the wasm imports something other than a function".into());
            }
            if !modules.iter().any(|m| m == import.module) {
                modules.push(import.module.to_owned());
            }
        }
    }
    Ok(modules)
}

/// rolldown: `input` and what it imports, bundled into one minified file of `format`.
fn minify(tools: &Tools, input: &Path, format: &str, out: &Path) -> Result<()> {
    proc::run(
        std::process::Command::new(&tools.rolldown)
            .arg(input)
            .args(["--format", format, "--minify", "--file"])
            .arg(out),
    )
}

/// An entry's `<name>.js`: the hand-written API (`src/js/client.js`) and glue
/// (`src/js/wasm.js`, its names filled in by [`glue::fill`] from binaryen's name `map`) with
/// the browser I/O modules (`src/web/*.js`) bundled into one minified module. wasm-bindgen's
/// own glue and its copies of the snippets are not used: they go. `module` is the one module
/// the renamed wasm imports from.
fn bundle_js(
    tools: &Tools,
    stage: &Path,
    name: &str,
    features: &str,
    map: &str,
    module: &str,
) -> Result<()> {
    let out = stage.join(format!("{name}.js"));
    std::fs::remove_file(&out).map_err(|e| format!("cannot remove wasm-bindgen's glue: {e}"))?;
    let snippets = stage.join("snippets");
    if snippets.exists() {
        std::fs::remove_dir_all(&snippets).map_err(|e| format!("cannot remove snippets/: {e}"))?;
    }
    // The sources as they sit in the repository, so their relative imports hold.
    let src = stage.join("src");
    for dir in ["js", "web"] {
        std::fs::create_dir_all(src.join(dir))
            .map_err(|e| format!("cannot make {}: {e}", src.join(dir).display()))?;
    }
    let template = read(&js_source("wasm.js"))?;
    write(
        &src.join("js/wasm.js"),
        glue::fill(&template, map, module, &format!("{name}_bg.wasm"))?,
    )?;
    copy(&js_source("client.js"), &src.join("js/client.js"))?;
    for io in ["io.js", "sse_io.js", "bayeux_io.js"] {
        copy(
            &paths::root().join("src/web").join(io),
            &src.join("web").join(io),
        )?;
    }
    let has = |p: &str| features.split(',').any(|f| f == p);
    let config = stage.join("rolldown.config.mjs");
    write(
        &config,
        rolldown_config(&src.join("js/client.js"), &out, has("sse"), has("bayeux")),
    )?;
    proc::run(
        std::process::Command::new(&tools.rolldown)
            .current_dir(stage)
            .arg("--config")
            .arg(&config),
    )?;
    std::fs::remove_file(&config).map_err(|e| format!("cannot remove the rolldown config: {e}"))?;
    std::fs::remove_dir_all(&src).map_err(|e| format!("cannot remove {}: {e}", src.display()))?;
    let text = read(&out)?;
    glue::check_bundle(&text, &template)?;
    if text.contains("TIDINGS_SSE") || text.contains("TIDINGS_BAYEUX") {
        return Err(format!(
            "the bundled {name}.js still names its protocol flags"
        ));
    }
    // One self-contained module, still finding its wasm next to itself (bundlers rely on it).
    if text.contains("import ") || text.contains("import{") {
        return Err(format!(
            "the bundled {name}.js still imports another module"
        ));
    }
    if !text.contains(&format!("{name}_bg.wasm")) {
        return Err(format!(
            "the bundled {name}.js no longer names {name}_bg.wasm"
        ));
    }
    Ok(())
}

/// The rolldown config of an entry's bundle: `input` and what it imports into one minified
/// ES module at `out`, with client.js's protocol flags defined (for the minifier to drop what
/// the entry's wasm leaves out). The CLI cannot say the rest:
/// - no comments at all: the bundle is generated, its sources are in the repository (the
///   minifier's `@__PURE__` marks and legal comments would otherwise stay);
/// - property names starting with `_` are mangled: they are the private members of client.js,
///   io.js and wasm.js, which nothing outside the bundle reads. [`glue::fill`] makes sure
///   the wasm's imports and exports are not among them.
fn rolldown_config(input: &Path, out: &Path, sse: bool, bayeux: bool) -> String {
    let path = |p: &Path| serde_json::Value::from(p.to_string_lossy()).to_string();
    let (input, out) = (path(input), path(out));
    format!(
        "export default {{
  input: {input},
  transform: {{ define: {{ TIDINGS_SSE: '{sse}', TIDINGS_BAYEUX: '{bayeux}' }} }},
  output: {{
    file: {out},
    format: 'esm',
    comments: false,
    minify: {{ mangleProps: {{ include: /^_/ }} }},
  }},
}};
"
    )
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

fn js_source(name: &str) -> PathBuf {
    paths::root().join("src").join("js").join(name)
}

/// The gzip size (level 9) of `bytes`: what a page pays over the wire.
fn gzip_len(bytes: &[u8]) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = enc.write_all(bytes);
    enc.finish().map(|v| v.len()).unwrap_or(0)
}

/// The hand-written declarations replace wasm-bindgen's (which type every value as `any`);
/// the lazy entry's declarations sit next to them.
fn write_types(pkg: &Path) -> Result<()> {
    copy(&js_source("tidings.d.ts"), &pkg.join("tidings.d.ts"))?;
    copy(&js_source("lazy.d.ts"), &pkg.join("lazy.d.ts"))
}

/// `tidings/lazy`: the ESM lazy entry, as written (bundlers minify it).
fn write_lazy(pkg: &Path) -> Result<()> {
    copy(&js_source("lazy.js"), &pkg.join("lazy.js"))
}

/// The part of `lazy.js` the script-tag loader shares: between `// <shared>` and `// </shared>`.
fn shared_body(lazy: &str) -> Result<String> {
    let start = lazy
        .find("// <shared>")
        .ok_or("src/js/lazy.js has no // <shared> line")?;
    let end = lazy
        .find("// </shared>")
        .ok_or("src/js/lazy.js has no // </shared> line")?;
    Ok(lazy[start..end].to_owned())
}

/// The script-tag loader's source: `tidings.global.js` with `lazy.js`'s shared body included
/// (minified by [`write_global`]).
fn global_loader() -> Result<String> {
    let lazy = read(&js_source("lazy.js"))?;
    let src = read(&js_source("tidings.global.js"))?;
    let include = src
        .lines()
        .find(|l| l.trim() == "//#include lazy.js")
        .ok_or("src/js/tidings.global.js has no //#include lazy.js line")?;
    Ok(src.replacen(include, &shared_body(&lazy)?, 1))
}

/// `sha384-…` of `bytes`, as SRI spells it.
fn sri(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
    )
}

/// The script-tag build: the loader next to the ESM builds, with its SRI hash beside it. The
/// assembled source is minified by rolldown (a classic script in, an IIFE out; its `/*! … */`
/// header kept): the loader is what every page pays, whether it subscribes or not.
fn write_global(tools: &Tools, pkg: &Path) -> Result<()> {
    let source = pkg.join("loader-source.js");
    write(&source, global_loader()?)?;
    let out = pkg.join("tidings.global.js");
    minify(tools, &source, "iife", &out)?;
    std::fs::remove_file(&source).map_err(|e| format!("cannot remove loader-source.js: {e}"))?;
    let text = read(&out)?;
    if !text.contains("/*! tidings") || text.contains("export") || text.contains("import.meta") {
        return Err(format!(
            "the minified loader is not a classic script with its header: {text}"
        ));
    }
    let gz = gzip_len(text.as_bytes());
    if gz > LOADER_GZIP_BUDGET {
        return Err(format!(
            "the script-tag loader is {gz} bytes gzip, over its budget of {LOADER_GZIP_BUDGET}"
        ));
    }
    let hash = sri(text.as_bytes());
    write(&pkg.join("tidings.global.js.sri"), format!("{hash}\n"))?;
    eprintln!("pkg/tidings.global.js integrity=\"{hash}\"");
    Ok(())
}

/// `pkg/cdn/`: the script-tag build under versioned names a CDN can cache forever:
/// `tidings-<version>.global.js` (+ `.sri`), and per protocol the glue
/// `tidings-<version>-<protocol>.js` and its wasm `tidings-<version>-<protocol>_bg.wasm`. The
/// loader is the same file as `pkg/tidings.global.js` (same hash): it finds its siblings from
/// its own name (`<stem>.global.js` loads `<stem>-<protocol>.js`).
fn write_cdn(pkg: &Path, version: &str) -> Result<()> {
    let cdn = pkg.join("cdn");
    let stem = format!("tidings-{version}");
    std::fs::create_dir_all(&cdn).map_err(|e| format!("cannot create pkg/cdn: {e}"))?;
    let mut files = vec![
        ("tidings.global.js".to_owned(), format!("{stem}.global.js")),
        (
            "tidings.global.js.sri".to_owned(),
            format!("{stem}.global.js.sri"),
        ),
    ];
    for p in PROTOCOLS {
        files.push((format!("tidings-{p}.js"), format!("{stem}-{p}.js")));
        files.push((
            format!("tidings-{p}_bg.wasm"),
            format!("{stem}-{p}_bg.wasm"),
        ));
    }
    for (from, to) in files {
        copy(&pkg.join(from), &cdn.join(to))?;
    }
    Ok(())
}

/// Warns when README.md's script-tag snippet does not carry the built loader's name and hash
/// (tests/browser/package.test.mjs fails on it).
fn check_readme(pkg: &Path, version: &str) {
    let hash = std::fs::read_to_string(pkg.join("tidings.global.js.sri")).unwrap_or_default();
    let readme = std::fs::read_to_string(paths::root().join("README.md")).unwrap_or_default();
    let want = format!(
        "tidings-{version}.global.js\" integrity=\"{}\"",
        hash.trim()
    );
    if !readme.contains(&want) {
        eprintln!("warning: README.md's script-tag snippet should read: {want}");
    }
}

/// `pkg/package.json`: `pkg.json` plus the crate version and the files wasm-bindgen wrote.
fn write_manifest(pkg: &Path, version: &str) -> Result<()> {
    let text = std::fs::read_to_string(paths::root().join("pkg.json"))
        .map_err(|e| format!("cannot read pkg.json: {e}"))?;
    let mut manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("pkg.json is not valid JSON: {e}"))?;
    let obj = manifest
        .as_object_mut()
        .ok_or("pkg.json must hold a JSON object")?;
    obj.insert("version".into(), version.into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_is_a_classic_script_with_the_lazy_body_inside() {
        let loader = global_loader().unwrap();
        assert!(loader.starts_with("/*! tidings"), "{loader}");
        assert!(
            loader.contains("class Client {"),
            "the shared body is included"
        );
        assert!(loader.contains("window.tidings = { Client, poll, load };"));
        // Nothing of the ESM entry: a classic script cannot export, and it fetches the client
        // from next to itself, not from './tidings.js'.
        assert!(!loader.contains("export "), "{loader}");
        assert!(!loader.contains("import('./tidings.js')"), "{loader}");
        assert!(!loader.contains("#include"), "{loader}");
        // Deterministic: the same sources give the same bytes (and SRI hash).
        assert_eq!(
            sri(loader.as_bytes()),
            sri(global_loader().unwrap().as_bytes())
        );
    }

    #[test]
    fn the_bundle_config_mangles_private_names_and_drops_comments() {
        let config = rolldown_config(Path::new("/s/client.js"), Path::new("/s/t.js"), true, false);
        assert!(config.contains("input: \"/s/client.js\""), "{config}");
        assert!(config.contains("file: \"/s/t.js\""), "{config}");
        assert!(
            config.contains("TIDINGS_SSE: 'true', TIDINGS_BAYEUX: 'false'"),
            "{config}"
        );
        assert!(config.contains("comments: false"), "{config}");
        assert!(
            config.contains("mangleProps: { include: /^_/ }"),
            "{config}"
        );
        // Paths are JSON strings: quotes and backslashes escaped.
        let odd = rolldown_config(Path::new("/a\"b\\c.js"), Path::new("/o.js"), false, true);
        assert!(odd.contains(r#"input: "/a\"b\\c.js""#), "{odd}");
    }

    #[test]
    fn import_modules_reads_the_import_section() {
        // (import "ab" "f" (func (type 0))) and (import "ab" "g" (func (type 0))), after a
        // type section.
        let wasm = [
            &b"\0asm\x01\0\0\0"[..],
            &[1, 4, 1, 0x60, 0, 0],
            &[
                2, 15, 2, 2, b'a', b'b', 1, b'f', 0, 0, 2, b'a', b'b', 1, b'g', 0, 0,
            ][..],
        ]
        .concat();
        assert_eq!(import_modules(&wasm).unwrap(), ["ab"]);
        assert!(import_modules(b"nope").is_err());
    }
}
