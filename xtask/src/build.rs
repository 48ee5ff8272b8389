//! Builds the npm package into `pkg/`: release wasm, wasm-bindgen ESM glue, binaryen `-Oz`,
//! the hand-written TypeScript declarations, the lazy entry (`tidings/lazy`), the script-tag
//! loader with its SRI hash, the versioned files for a CDN (`pkg/cdn/`), and `package.json`
//! from the hand-kept `pkg.json`.
//!
//! Everything is written into a staging directory that replaces `pkg/` at the end, so tests
//! reading `pkg/` never see it half-written.

use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    // --minify-imports-and-exports-and-modules: see `shorten_names`; it prints its name map.
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
    shorten_names(stage, name, &String::from_utf8_lossy(&out.stdout))?;
    bundle_js(tools, stage, name, features)
}

/// Gives the glue the one- or two-letter names binaryen gave the wasm's imports, exports and
/// import module (`map`: what its `--minify-imports-and-exports-and-modules` printed).
/// wasm-bindgen names each import after its function plus a 16-digit hash
/// (`__wbg_closeSocket_de1e2350b3a33261`), and those names sit in both files: random digits
/// that compress to nothing (about 1.2 KB of gzip in the wasm alone). The glue names them in
/// two ways only, as keys of its imports object (under the module's name) and as
/// `wasm.<export>`, so the map is applied to exactly those.
fn shorten_names(stage: &Path, name: &str, map: &str) -> Result<()> {
    let bg = stage.join(format!("{name}_bg.wasm"));
    let wasm = std::fs::read(&bg).map_err(|e| format!("cannot read {}: {e}", bg.display()))?;
    let modules = import_modules(&wasm)?;
    let [module] = modules.as_slice() else {
        return Err(format!(
            "the renamed wasm imports from {modules:?}, not one module"
        ));
    };
    let glue = stage.join(format!("{name}.js"));
    let text = rename_in_glue(&read(&glue)?, map, module)?;
    write(&glue, text)
}

/// Applies binaryen's name map (`{"imports": [[module, name, new]…], "exports": [[name,
/// new]…]}`, after whatever else it printed) to wasm-bindgen's glue, every import now coming
/// from `module`. Fails when a name is not where the glue should have it, since the module
/// would then not link.
fn rename_in_glue(glue: &str, map: &str, module: &str) -> Result<String> {
    let start = map.find('{').ok_or("wasm-opt printed no name map")?;
    let map: serde_json::Value = serde_json::Deserializer::from_str(&map[start..])
        .into_iter()
        .next()
        .ok_or("wasm-opt printed no name map")?
        .map_err(|e| format!("wasm-opt's name map is not JSON: {e}"))?;
    let rows = |key: &str| -> Result<Vec<Vec<String>>> {
        let rows = map[key]
            .as_array()
            .ok_or_else(|| format!("wasm-opt's name map has no {key}"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let cells = r.as_array().map(Vec::as_slice).unwrap_or_default();
                cells
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect())
    };
    let mut out = glue.to_owned();
    let mut old_modules: Vec<String> = Vec::new();
    // Functions of a snippet that need no glue are imported from its module directly
    // (`import * as import1 from "./snippets/…"`): under their new names they become members
    // of the glue's own imports object, which then is the one module.
    let mut direct: Vec<String> = Vec::new();
    for row in rows("imports")? {
        let [from, old, new] = row.as_slice() else {
            return Err(format!("an import row of wasm-opt's name map is {row:?}"));
        };
        let namespaces = namespaces_of(glue, from);
        if let Some(namespace) = namespaces.first() {
            direct.push(format!("{new}: {namespace}.{old},"));
            if !old_modules.contains(from) {
                // wasm-bindgen imports such a module once per function (`import3`, `import4`
                // … of the same file): every entry goes, or the bundle would carry the
                // module's namespace object (its exports by name, a getter each).
                for ns in &namespaces {
                    out = out.replacen(&format!("\"{from}\": {ns},"), "", 1);
                }
                old_modules.push(from.clone());
            }
            continue;
        }
        out = replace_token(&out, &format!("{old}:"), &format!("{new}:"))?;
        if !old_modules.contains(from) {
            out = replace_token(&out, &format!("\"{from}\":"), &format!("\"{module}\":"))?;
            old_modules.push(from.clone());
        }
    }
    if !direct.is_empty() {
        // The glue's own imports object: the one module entry left in the returned object.
        let own = out
            .find(&format!("\"{module}\": "))
            .and_then(|i| {
                let rest = &out[i + module.len() + 4..];
                rest.find(',').map(|end| rest[..end].trim().to_owned())
            })
            .ok_or("the glue has no imports object of its own")?;
        let head = format!("const {own} = {{");
        let at = out
            .find(&head)
            .ok_or_else(|| format!("the glue does not define {own}"))?
            + head.len();
        out.insert_str(at, &direct.concat());
    }
    for row in rows("exports")? {
        let [old, new] = row.as_slice() else {
            return Err(format!("an export row of wasm-opt's name map is {row:?}"));
        };
        // Exports the glue does not call (e.g. `__instance_terminated`) are left alone.
        if find_token(&out, &format!("wasm.{old}")).is_some() {
            out = replace_token(&out, &format!("wasm.{old}"), &format!("wasm.{new}"))?;
        }
    }
    check_namespaces_folded(&out)?;
    Ok(out)
}

/// The `import * as <name> from "<module>"` lines of the glue: (name, module).
fn namespace_imports(glue: &str) -> Vec<(&str, &str)> {
    glue.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("import * as ")?;
            let (name, module) = rest.split_once(" from ")?;
            Some((name, module.trim_end_matches(';').trim_matches('"')))
        })
        .collect()
}

/// The names of the namespaces the glue imports module `from` as, in order.
fn namespaces_of(glue: &str, from: &str) -> Vec<String> {
    namespace_imports(glue)
        .into_iter()
        .filter(|(_, module)| *module == from)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Fails when the glue uses an imported namespace other than by its members (`import1.f`):
/// the bundler then keeps the whole module as an object, its functions out of reach of
/// tree-shaking and mangling, instead of binding `import1.f` to `f` itself.
fn check_namespaces_folded(glue: &str) -> Result<()> {
    for (name, _) in namespace_imports(glue) {
        let mut rest = glue;
        while let Some(i) = find_token(rest, name) {
            let after = &rest[i + name.len()..];
            if !after.starts_with('.') && !rest[..i].ends_with("import * as ") {
                return Err(format!(
                    "the glue uses the namespace {name} as a value: `{}`",
                    &after[..after.len().min(40)]
                ));
            }
            rest = after;
        }
    }
    Ok(())
}

/// Whether `c` can continue a JavaScript identifier.
fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// The first place `what` stands in `text` as a whole token: where it begins or ends with an
/// identifier character, no identifier character touches it there.
fn find_token(text: &str, what: &str) -> Option<usize> {
    let (bytes, w) = (text.as_bytes(), what.as_bytes());
    let (first, last) = (*w.first()?, *w.last()?);
    let mut from = 0;
    while let Some(i) = text[from..].find(what).map(|i| i + from) {
        let end = i + w.len();
        let clear_before = !ident_char(first) || i == 0 || !ident_char(bytes[i - 1]);
        let clear_after = !ident_char(last) || bytes.get(end).is_none_or(|c| !ident_char(*c));
        if clear_before && clear_after {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Replaces every token `from` in `text` by `to`; fails when there is none.
fn replace_token(text: &str, from: &str, to: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut found = false;
    while let Some(i) = find_token(rest, from) {
        out.push_str(&rest[..i]);
        out.push_str(to);
        rest = &rest[i + from.len()..];
        found = true;
    }
    if !found {
        return Err(format!("the glue has no `{from}` to rename"));
    }
    out.push_str(rest);
    Ok(out)
}

/// The module names of a wasm file's imports, each once, in order. Only function imports are
/// expected (wasm-bindgen's glue provides functions only).
fn import_modules(wasm: &[u8]) -> Result<Vec<String>> {
    fn leb(bytes: &[u8], at: &mut usize) -> Result<usize> {
        let mut v = 0usize;
        for shift in (0..35).step_by(7) {
            let b = *bytes.get(*at).ok_or("the wasm ends inside a number")?;
            *at += 1;
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number in the wasm is too long".into())
    }
    fn name<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a str> {
        let len = leb(bytes, at)?;
        let s = bytes
            .get(*at..*at + len)
            .ok_or("the wasm ends inside a name")?;
        *at += len;
        std::str::from_utf8(s).map_err(|_| "a name in the wasm is not UTF-8".into())
    }
    if wasm.get(..4) != Some(b"\0asm") {
        return Err("not a wasm file".into());
    }
    let mut at = 8;
    let mut modules = Vec::new();
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at)?;
        let end = at + size;
        if id == 2 {
            for _ in 0..leb(wasm, &mut at)? {
                let module = name(wasm, &mut at)?.to_owned();
                name(wasm, &mut at)?;
                if wasm.get(at) != Some(&0) {
                    return Err("the wasm imports something other than a function".into());
                }
                at += 1;
                leb(wasm, &mut at)?;
                if !modules.contains(&module) {
                    modules.push(module);
                }
            }
            return Ok(modules);
        }
        at = end;
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

/// An entry's `<name>.js`: the hand-written API (`src/js/client.js`) bundled with
/// wasm-bindgen's glue and its snippets into one minified module (the glue alone shrinks by a
/// third of its gzip size). The wasm's import names are string keys of the glue's imports
/// object, which a minifier keeps; the snippets' directory goes, as nothing imports it any more.
fn bundle_js(tools: &Tools, stage: &Path, name: &str, features: &str) -> Result<()> {
    let glue = stage.join(format!("{name}.js"));
    // client.js imports the glue as './wasm.js'.
    let wasm_js = stage.join("wasm.js");
    std::fs::rename(&glue, &wasm_js).map_err(|e| format!("cannot move the glue: {e}"))?;
    let text = trim_glue(&read(&wasm_js)?)?;
    check_mangle_safe(&text)?;
    write(&wasm_js, &text)?;
    let entry = stage.join("client.js");
    let client = link_io(&read(&js_source("client.js"))?, &text)?;
    write(&entry, client)?;
    let has = |p: &str| features.split(',').any(|f| f == p);
    let config = stage.join("rolldown.config.mjs");
    write(
        &config,
        rolldown_config(&entry, &glue, has("sse"), has("bayeux")),
    )?;
    proc::run(
        std::process::Command::new(&tools.rolldown)
            .current_dir(stage)
            .arg("--config")
            .arg(&config),
    )?;
    std::fs::remove_file(&config).map_err(|e| format!("cannot remove the rolldown config: {e}"))?;
    let text = read(&glue)?;
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
    for f in [&wasm_js, &entry] {
        std::fs::remove_file(f).map_err(|e| format!("cannot remove {}: {e}", f.display()))?;
    }
    let snippets = stage.join("snippets");
    if snippets.exists() {
        std::fs::remove_dir_all(&snippets).map_err(|e| format!("cannot remove snippets/: {e}"))?;
    }
    Ok(())
}

/// Parts of wasm-bindgen's glue that the package never runs, cut before bundling (a minifier
/// cannot know they are dead): what each is, and its exact text. A part that is not found
/// fails the build, so a wasm-bindgen upgrade that changes one shows here rather than
/// shipping it again, or cutting something else.
const GLUE_CUTS: [(&str, &str, &str); 8] = [
    (
        // client.js keeps `Core` to itself, and frees it by `free()`.
        "Core's Symbol.dispose",
        "if (Symbol.dispose) Core.prototype[Symbol.dispose] = Core.prototype.free;\n",
        "",
    ),
    (
        // client.js needs WeakRef, which every engine shipped with FinalizationRegistry.
        "the stand-in for a missing FinalizationRegistry",
        "(typeof FinalizationRegistry === 'undefined')\n    ? { register: () => {}, unregister: () => {} }\n    : new FinalizationRegistry(",
        "new FinalizationRegistry(",
    ),
    (
        // TextEncoder.encodeInto predates WeakRef in every engine.
        "the TextEncoder.encodeInto polyfill",
        "\nif (!('encodeInto' in cachedTextEncoder)) {\n    cachedTextEncoder.encodeInto = function (arg, view) {\n        const buf = cachedTextEncoder.encode(arg);\n        view.set(buf);\n        return {\n            read: arg.length,\n            written: buf.length\n        };\n    };\n}\n",
        "",
    ),
    (
        // Every call passes the wasm's realloc (checked by `check_realloc_given`).
        "passStringToWasm0 without realloc",
        "    if (realloc === undefined) {\n        const buf = cachedTextEncoder.encode(arg);\n        const ptr = malloc(buf.length, 1) >>> 0;\n        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);\n        WASM_VECTOR_LEN = buf.length;\n        return ptr;\n    }\n\n",
        "",
    ),
    (
        // Only `free()` takes the pointer out: the step inlined there.
        "Core's __destroy_into_raw",
        "    __destroy_into_raw() {\n        const ptr = this.__wbg_ptr;\n        this.__wbg_ptr = 0;\n        CoreFinalization.unregister(this);\n        return ptr;\n    }\n    free() {\n        const ptr = this.__destroy_into_raw();\n",
        "    free() {\n        const ptr = this.__wbg_ptr;\n        this.__wbg_ptr = 0;\n        CoreFinalization.unregister(this);\n",
    ),
    (
        // tidings.d.ts declares the bare module or bytes as an input of `initSync` of its
        // own (the README's `initSync(module)`), not a deprecated one: no warning for it.
        "initSync's warning about a bare argument",
        "        } else {\n            console.warn('using deprecated parameters for `initSync()`; pass a single object instead')\n        }\n",
        "        }\n",
    ),
    (
        // Likewise `init(input)`.
        "init's warning about a bare argument",
        "        } else {\n            console.warn('using deprecated parameters for the initialization function; pass a single object instead')\n        }\n",
        "        }\n",
    ),
    (
        // The fallback stays; its warning says the same in fewer words.
        "the warning about the wasm's MIME type",
        "console.warn(\"`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\\n\", e);",
        "console.warn('tidings: the wasm is not served as application/wasm, so it is compiled the slower way:', e);",
    ),
];

/// wasm-bindgen's glue without [`GLUE_CUTS`] and the freeing of passed arguments on a throw
/// ([`drop_free_on_throw`]), the functions of its imports object as arrow functions
/// ([`arrow_imports`]).
fn trim_glue(glue: &str) -> Result<String> {
    let mut out = glue.to_owned();
    for (what, from, to) in GLUE_CUTS {
        match out.matches(from).count() {
            1 => out = out.replacen(from, to, 1),
            n => {
                return Err(format!(
                    "wasm-bindgen's glue has {n} copies of {what} where one was expected: \
                     check GLUE_CUTS in xtask/src/build.rs against this wasm-bindgen"
                ))
            }
        }
    }
    check_realloc_given(&out)?;
    arrow_imports(&drop_free_on_throw(&out)?)
}

/// `Core`'s methods pass their arguments inside `try { … } catch (e) { free what was passed;
/// throw e; }`. Passing them cannot throw short of a trap (client.js hands over strings,
/// numbers and arrays of numbers it has checked), after which the instance is lost anyway:
/// the try goes, its body stays. Fails unless there is such a block and every `try` of a
/// method is one.
fn drop_free_on_throw(glue: &str) -> Result<String> {
    const TRY: &str = "        try {\n";
    const CATCH: &str = "        } catch (e) {\n";
    let lines: Vec<&str> = glue.split_inclusive('\n').collect();
    let mut out = String::with_capacity(glue.len());
    let (mut i, mut cut) = (0, 0);
    while i < lines.len() {
        if lines[i] != TRY {
            out.push_str(lines[i]);
            i += 1;
            continue;
        }
        let catch = (i + 1..lines.len())
            .find(|&j| lines[j] == CATCH)
            .ok_or("a try block of the glue has no catch")?;
        let mut end = catch + 1;
        while lines[end..].first().is_some_and(|l| {
            l.starts_with("            if (ptr") && l.contains(") { wasm.") && l.ends_with("); }\n")
        }) {
            end += 1;
        }
        if end == catch + 1
            || lines[end..].get(..2) != Some(&["            throw e;\n", "        }\n"])
        {
            return Err(format!(
                "a try block of the glue does more than free the arguments it passed: {}",
                lines[catch..lines.len().min(end + 2)].concat()
            ));
        }
        for line in &lines[i + 1..catch] {
            out.push_str(line.strip_prefix("    ").unwrap_or(line));
        }
        i = end + 2;
        cut += 1;
    }
    if cut == 0 {
        return Err(
            "the glue has no try block that frees passed arguments: check \
                    drop_free_on_throw against this wasm-bindgen"
                .into(),
        );
    }
    Ok(out)
}

/// Fails unless every call of `passStringToWasm0` passes a realloc (its third argument): the
/// branch for none is cut.
fn check_realloc_given(glue: &str) -> Result<()> {
    const CALL: &str = "passStringToWasm0(";
    for (i, _) in glue.match_indices(CALL) {
        if glue[..i].ends_with("function ") {
            continue;
        }
        let args = &glue[i + CALL.len()..];
        let args = &args[..args.find(')').unwrap_or(args.len())];
        if args.split(',').count() != 3 {
            return Err(format!(
                "the glue calls passStringToWasm0({args}) without a realloc"
            ));
        }
    }
    Ok(())
}

/// The functions of the glue's imports object (`name: function(arg0) {`, one a line, in
/// `__wbg_get_imports`) as arrow functions, which the minifier shortens further (`k:e=>!e`).
/// The wasm calls them as plain functions; the build fails if one reads `this` or `arguments`.
fn arrow_imports(glue: &str) -> Result<String> {
    const HEAD: &str = "function __wbg_get_imports() {\n";
    let start = glue.find(HEAD).ok_or("the glue has no __wbg_get_imports")? + HEAD.len();
    let len = glue[start..]
        .find("\n}\n")
        .ok_or("the glue's __wbg_get_imports has no end")?;
    let body = &glue[start..start + len];
    if find_token(body, "this").is_some() || find_token(body, "arguments").is_some() {
        return Err("an import of the glue reads this or arguments: it cannot be an arrow".into());
    }
    let mut converted = 0;
    let lines: Vec<String> = body
        .lines()
        .map(|line| {
            let arrow = line.split_once(": function(").and_then(|(key, rest)| {
                let params = rest.strip_suffix(") {")?;
                let simple = key.trim_start().bytes().all(ident_char)
                    && params
                        .bytes()
                        .all(|c| ident_char(c) || c == b',' || c == b' ');
                simple.then(|| format!("{key}: ({params}) => {{"))
            });
            converted += usize::from(arrow.is_some());
            arrow.unwrap_or_else(|| line.to_owned())
        })
        .collect();
    if converted == 0 {
        return Err("the glue's imports object has no `name: function(…) {` line".into());
    }
    Ok(format!(
        "{}{}{}",
        &glue[..start],
        lines.join("\n"),
        &glue[start + len..]
    ))
}

/// client.js shares io.js's helpers, importing it as `'../web/io.js'` (where it sits in the
/// repository); in the stage io.js is the glue's snippet: the import is pointed at the path the
/// glue imports it from, so the bundle holds the module once.
fn link_io(client: &str, glue: &str) -> Result<String> {
    const SOURCE: &str = "from '../web/io.js'";
    let snippet = glue
        .lines()
        .filter(|l| l.starts_with("import "))
        .filter_map(|l| l.split_once(" from ").map(|(_, m)| m.trim_end_matches(';')))
        .map(|m| m.trim_matches(['"', '\'']))
        .find(|m| m.starts_with("./snippets/") && m.ends_with("/src/web/io.js"))
        .ok_or("the glue does not import src/web/io.js")?;
    if !client.contains(SOURCE) {
        return Err(format!("src/js/client.js has no import {SOURCE}"));
    }
    Ok(client.replacen(SOURCE, &format!("from '{snippet}'"), 1))
}

/// The rolldown config of an entry's bundle: `input` and what it imports into one minified
/// ES module at `out`, with client.js's protocol flags defined (for the minifier to drop what
/// the entry's wasm leaves out). The CLI cannot say the rest:
/// - no comments at all: the bundle is generated, its sources are in the repository (the
///   minifier's `@__PURE__` marks and legal comments would otherwise stay);
/// - property names starting with `_` are mangled: they are the private members of client.js
///   and io.js and wasm-bindgen's own (`__wbg_ptr`), which nothing outside the bundle reads.
///   `__proto__` is never mangled; [`check_mangle_safe`] makes sure the wasm's imports and
///   exports are not among them.
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

/// Fails when the renamed glue (see [`rename_in_glue`]) names a wasm import or export with a
/// leading `_`: the bundle's property mangling would rename it, and the wasm would not link.
fn check_mangle_safe(glue: &str) -> Result<()> {
    let bytes = glue.as_bytes();
    for (i, _) in glue.match_indices('_') {
        if i > 0 && ident_char(bytes[i - 1]) {
            continue;
        }
        let end = (i..bytes.len())
            .find(|&j| !ident_char(bytes[j]))
            .unwrap_or(bytes.len());
        let ident = &glue[i..end];
        let export = glue[..i].ends_with("wasm.");
        // A key of the imports object: `_name: function(…)` or `_name: import1.f`.
        let key = bytes.get(end) == Some(&b':')
            && glue[..i].trim_end().ends_with(['{', ','])
            && ident != "__proto__";
        if export || key {
            return Err(format!(
                "the glue names a wasm import or export `{ident}`, which the bundle's property mangling would rename"
            ));
        }
    }
    Ok(())
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
    fn tokens_are_whole_identifiers() {
        assert_eq!(
            find_token("a.core_free2 wasm.core_free(", "wasm.core_free"),
            Some(13)
        );
        assert_eq!(find_token("xwasm.f wasm.fx", "wasm.f"), None);
        assert_eq!(
            find_token("{__wbg_a_1: f, __wbg_a_12: g}", "__wbg_a_12:"),
            Some(15)
        );
        assert_eq!(find_token("x__wbg_a_1: f", "__wbg_a_1:"), None);
    }

    #[test]
    fn the_glue_gets_the_names_binaryen_gave() {
        let glue = "const i = { __wbg_x_0a: function() {}, __wbg_y_1b: function() {} };\n\
                    return { \"./t_bg.js\": i };\nwasm.core_new(); wasm.memory.buffer; wasm.core_new2;";
        let map = "warning: something\n{\"imports\": [[\"./t_bg.js\", \"__wbg_x_0a\", \"a\"], \
                   [\"./t_bg.js\", \"__wbg_y_1b\", \"b\"]], \"exports\": [[\"core_new\", \"c\"], \
                   [\"memory\", \"d\"], [\"unused\", \"e\"]]}";
        let out = rename_in_glue(glue, map, "m").unwrap();
        assert_eq!(
            out,
            "const i = { a: function() {}, b: function() {} };\n\
             return { \"m\": i };\nwasm.c(); wasm.d.buffer; wasm.core_new2;"
        );
        // A snippet function imported from its module directly joins the glue's own object.
        let glue = "import * as import1 from \"./snippets/x/io.js\"\n\
                    const import0 = { __proto__: null, __wbg_x_0a: function() {} };\n\
                    return { \"./t_bg.js\": import0, \"./snippets/x/io.js\": import1, };";
        let map = "{\"imports\": [[\"./t_bg.js\", \"__wbg_x_0a\", \"a\"], \
                   [\"./snippets/x/io.js\", \"stream\", \"b\"]], \"exports\": []}";
        let out = rename_in_glue(glue, map, "m").unwrap();
        assert_eq!(
            out,
            "import * as import1 from \"./snippets/x/io.js\"\n\
             const import0 = {b: import1.stream, __proto__: null, a: function() {} };\n\
             return { \"m\": import0,  };"
        );
        // A name the glue lacks means the two files would not link.
        let lacking = "{\"imports\": [[\"./t_bg.js\", \"__wbg_z_2c\", \"a\"]], \"exports\": []}";
        assert!(rename_in_glue(glue, lacking, "m").is_err());
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
    fn mangling_must_not_reach_the_wasm_names() {
        let ok = "const i = {a: f, __proto__: null, b: function(x) { this.__wbg_ptr = x; }};\n\
                  wasm.c(this.__wbg_ptr); return { \"m\": i };";
        assert!(check_mangle_safe(ok).is_ok());
        // An export or an import key the name map left alone would be renamed.
        assert!(check_mangle_safe("wasm.__wbindgen_start();").is_err());
        assert!(check_mangle_safe("const i = { a: f,\n    __wbg_x_0a: function() {} };").is_err());
        assert!(check_mangle_safe("const i = {_x: f};").is_err());
    }

    #[test]
    fn client_js_imports_the_snippet_io_js() {
        let glue = "import { Io } from './snippets/tidings-0123/src/web/io.js';\n\
                    import * as import1 from \"./snippets/tidings-0123/src/web/sse_io.js\"\n";
        let client = "import init from './wasm.js';\nimport { describe } from '../web/io.js';\n";
        assert_eq!(
            link_io(client, glue).unwrap(),
            "import init from './wasm.js';\n\
             import { describe } from './snippets/tidings-0123/src/web/io.js';\n"
        );
        assert!(link_io("import init from './wasm.js';", glue).is_err());
        assert!(link_io(
            client,
            "import * as import1 from \"./snippets/x/src/web/sse_io.js\""
        )
        .is_err());
    }

    #[test]
    fn every_namespace_of_a_direct_module_goes() {
        // wasm-bindgen imports bayeux_io.js once per function; each entry must go.
        let glue = "import * as import1 from \"./snippets/x/b.js\"\n\
                    import * as import2 from \"./snippets/x/b.js\"\n\
                    const import0 = { __proto__: null, __wbg_x_0a: function() {} };\n\
                    return { \"./t_bg.js\": import0, \"./snippets/x/b.js\": import1, \"./snippets/x/b.js\": import2, };";
        let map = "{\"imports\": [[\"./t_bg.js\", \"__wbg_x_0a\", \"a\"], \
                   [\"./snippets/x/b.js\", \"post\", \"b\"], [\"./snippets/x/b.js\", \"send\", \"c\"]], \
                   \"exports\": []}";
        let out = rename_in_glue(glue, map, "m").unwrap();
        assert!(out.ends_with("return { \"m\": import0,   };"), "{out}");
        assert!(out.contains("{b: import1.post,c: import1.send,"), "{out}");
        // A namespace left as a value fails the build.
        assert!(check_namespaces_folded("import * as import1 from \"x\"\nf(import1.a);").is_ok());
        let err = check_namespaces_folded("import * as import1 from \"x\"\nreturn { x: import1 };");
        assert!(err.is_err());
    }

    #[test]
    fn the_glue_loses_what_the_package_never_runs() {
        let imports = "function __wbg_get_imports() {\n    const import0 = {\n        __proto__: null,\n        \
                       k: function(arg0, arg1) {\n            arg0.v(arg1);\n        },\n        \
                       l: function() {\n            const ret = Date.now();\n            return ret;\n        },\n    };\n    \
                       return { __proto__: null, \"a\": import0 };\n}\n";
        let calls = "    publish(channel) {\n        let ptr0, len0;\n        try {\n            \
                     ptr0 = passStringToWasm0(channel, wasm.E, wasm.F);\n            len0 = WASM_VECTOR_LEN;\n        \
                     } catch (e) {\n            if (ptr0) { wasm.G(ptr0, len0 * 1, 1); }\n            throw e;\n        \
                     }\n        return wasm.A(ptr0, len0);\n    }\n\
                     function passStringToWasm0(arg, malloc, realloc) {\n";
        let parts: String = GLUE_CUTS.iter().map(|(_, from, _)| *from).collect();
        let glue = format!("{imports}{calls}{parts}");
        let out = trim_glue(&glue).unwrap();
        for (what, from, to) in GLUE_CUTS {
            assert!(!out.contains(from), "{what} is still there: {out}");
            assert!(out.contains(to), "{what}'s replacement is missing: {out}");
        }
        assert!(
            out.contains("        k: (arg0, arg1) => {\n            arg0.v(arg1);\n        },\n"),
            "{out}"
        );
        assert!(out.contains("        l: () => {\n"), "{out}");
        assert!(
            out.contains(
                "        let ptr0, len0;\n        ptr0 = passStringToWasm0(channel, wasm.E, wasm.F);\n        \
                 len0 = WASM_VECTOR_LEN;\n        return wasm.A(ptr0, len0);\n"
            ),
            "{out}"
        );
        assert!(
            out.starts_with("function __wbg_get_imports() {\n    const import0 = {\n"),
            "{out}"
        );
        // What a wasm-bindgen upgrade could change fails the build.
        for (what, from, _) in GLUE_CUTS {
            let without = glue.replacen(from, "", 1);
            assert!(trim_glue(&without).is_err(), "{what} missing must fail");
        }
        let twice = format!("{glue}{}", GLUE_CUTS[0].1);
        assert!(trim_glue(&twice).is_err());
        let no_realloc = glue.replace("(channel, wasm.E, wasm.F)", "(channel, wasm.E)");
        assert!(trim_glue(&no_realloc).is_err());
        let this = glue.replace("arg0.v(arg1);", "this.v(arg1);");
        assert!(trim_glue(&this).is_err());
        // A catch that does more than free, or no such block at all.
        let more = glue.replace(
            "            throw e;\n",
            "            report(e);\n            throw e;\n",
        );
        assert!(trim_glue(&more).is_err());
        let none = glue.replace("        try {\n", "        {\n");
        assert!(trim_glue(&none).is_err());
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
