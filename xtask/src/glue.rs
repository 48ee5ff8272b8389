//! The package's wasm glue: `src/js/wasm.js`, written by hand, with the names binaryen gave
//! the wasm's imports, exports and import module filled in.
//!
//! wasm-bindgen names each import after its function plus a 16-digit hash
//! (`__wbg_s_d71c023516e45950`); binaryen's `--minify-imports-and-exports-and-modules` renames
//! them, and the exports, to one or two letters (random digits compress to nothing: about
//! 1.2 KB of gzip in the wasm alone) and prints what it did. wasm.js names each import by its
//! function (`$s`), each export by its name (`$core_new`) and the module as `$module`; [`fill`]
//! puts binaryen's names there.
//!
//! Why not wasm-bindgen's own glue: it was about 1.4 KB of gzip per entry, much of it for
//! cases the package never has. wasm.js follows the calling conventions of the wasm-bindgen
//! the build pins; [`fill`] fails when the wasm imports something wasm.js does not provide,
//! and [`check_bundle`] when a name was left unfilled in code the bundle kept.

use crate::Result;

/// The placeholder of the wasm's import module.
const MODULE: &str = "module";
/// The placeholder of the entry's wasm file name.
const WASM_FILE: &str = "wasm_file";

/// `template` (wasm.js) with its `$name`s replaced: imports and exports by binaryen's `map`
/// (what `--minify-imports-and-exports-and-modules` printed, from its first `{` on), `$module`
/// by `module` (the one module the renamed wasm imports from) and `$wasm_file` by `wasm_file`.
/// A `$name` this wasm neither imports nor exports stays (code for another build, which the
/// bundle drops; [`check_bundle`] makes sure of that).
pub fn fill(template: &str, map: &str, module: &str, wasm_file: &str) -> Result<String> {
    let (names, imports) = names(map)?;
    let used = placeholders(template);
    for (what, short) in &names {
        let imported = imports.iter().any(|i| i == what);
        if imported && !used.iter().any(|u| u == what) {
            return Err(format!(
                "the wasm needs `{what}` (now `{short}`), which src/js/wasm.js does not name as `${what}`"
            ));
        }
        // The bundle mangles `_` names, and `$` ones are the placeholders.
        if short.starts_with(['_', '$']) {
            return Err(format!(
                "binaryen renamed `{what}` to `{short}`, which the bundle would not keep"
            ));
        }
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = ident_len(after);
        let ident = &after[..len];
        let short = match ident {
            "" => None,
            MODULE => Some(module),
            WASM_FILE => Some(wasm_file),
            _ => names
                .iter()
                .find(|(n, _)| n == ident)
                .map(|(_, s)| s.as_str()),
        };
        match short {
            Some(s) => out.push_str(s),
            None => {
                out.push('$');
                out.push_str(ident);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fails when the bundled entry still has one of `template`'s placeholders: code the entry
/// runs names an import or export its wasm does not have.
pub fn check_bundle(bundle: &str, template: &str) -> Result<()> {
    let left = placeholders(bundle);
    match placeholders(template)
        .into_iter()
        .find(|p| left.contains(p))
    {
        Some(p) => Err(format!(
            "the bundle still calls `${p}`, which its wasm neither imports nor exports"
        )),
        None => Ok(()),
    }
}

/// `(name, new name)` pairs.
type Renames = Vec<(String, String)>;

/// What binaryen renamed, as `(name, new name)`: imports by their function's name (without
/// wasm-bindgen's `__wbg_` prefix and hash), then exports; and the names of the imports.
fn names(map: &str) -> Result<(Renames, Vec<String>)> {
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
    let mut names: Renames = Vec::new();
    let mut add = |name: String, short: &str| -> Result<()> {
        if names.iter().any(|(n, _)| *n == name) {
            return Err(format!("two imports or exports are both named `{name}`"));
        }
        names.push((name, short.to_owned()));
        Ok(())
    };
    let mut imports = Vec::new();
    for row in rows("imports")? {
        let [_, old, new] = row.as_slice() else {
            return Err(format!("an import row of wasm-opt's name map is {row:?}"));
        };
        add(function_name(old).to_owned(), new)?;
        imports.push(function_name(old).to_owned());
    }
    for row in rows("exports")? {
        let [old, new] = row.as_slice() else {
            return Err(format!("an export row of wasm-opt's name map is {row:?}"));
        };
        add(old.clone(), new)?;
    }
    Ok((names, imports))
}

/// An import's function: `__wbg_s_d71c023516e45950` is `s`, `__wbg___wbindgen_throw_…` is
/// `__wbindgen_throw`; a name without the prefix and hash (a snippet's function, or
/// `__wbindgen_init_externref_table`) is itself.
fn function_name(import: &str) -> &str {
    let Some(rest) = import.strip_prefix("__wbg_") else {
        return import;
    };
    match rest.rsplit_once('_') {
        Some((f, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => f,
        _ => import,
    }
}

/// The `$name`s of `text`, each once.
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (at, _) in text.match_indices('$') {
        let after = &text[at + 1..];
        let name = &after[..ident_len(after)];
        if !name.is_empty() && !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// The length of the identifier `text` starts with (0: none).
fn ident_len(text: &str) -> usize {
    let mut bytes = text.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
            1 + bytes
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"[wasm-opt] some text first
{
 "imports": [
  ["./tidings_bg.js", "__wbg_s_d71c023516e45950", "a"],
  ["./tidings_bg.js", "__wbg___wbindgen_throw_4c88d8bf264fd984", "b"],
  ["./snippets/tidings-a43c678b7485425b/src/web/sse_io.js", "stream", "c"],
  ["./tidings_bg.js", "__wbindgen_init_externref_table", "d"]
 ],
"exports": [
  ["memory", "e"],
  ["core_new", "f"]
 ]
}"#;

    #[test]
    fn imports_are_named_by_their_function() {
        assert_eq!(function_name("__wbg_s_d71c023516e45950"), "s");
        assert_eq!(
            function_name("__wbg___wbindgen_throw_4c88d8bf264fd984"),
            "__wbindgen_throw"
        );
        assert_eq!(
            function_name("__wbg_close_socket_de1e2350b3a33261"),
            "close_socket"
        );
        assert_eq!(function_name("stream"), "stream");
        assert_eq!(
            function_name("__wbindgen_init_externref_table"),
            "__wbindgen_init_externref_table"
        );
        // Not a 16-digit hash: the name as it is.
        assert_eq!(function_name("__wbg_s_d71c"), "__wbg_s_d71c");
    }

    #[test]
    fn the_template_gets_binaryen_names() {
        let template = "const i = () => ({ $module: { $s: (p, n) => 1, $__wbindgen_throw: f, \
            $stream: stream, $__wbindgen_init_externref_table: g, ...(B && { $socket: socket }) } });\n\
            wasm.$core_new(`${x}`); new URL('$wasm_file', import.meta.url); wasm.$memory.buffer;";
        let out = fill(template, MAP, "m", "tidings-sse_bg.wasm").unwrap();
        assert_eq!(
            out,
            "const i = () => ({ m: { a: (p, n) => 1, b: f, c: stream, d: g, ...(B && { $socket: socket }) } });\n\
            wasm.f(`${x}`); new URL('tidings-sse_bg.wasm', import.meta.url); wasm.e.buffer;"
        );
        // The unfilled `$socket` is for another build: fine while the bundle drops it.
        assert!(check_bundle("m:{a:1}", template).is_ok());
        let err = check_bundle("m:{a:1,$socket:s}", template).unwrap_err();
        assert!(err.contains("$socket"), "{err}");
    }

    #[test]
    fn an_import_the_template_lacks_fails() {
        let err = fill("{ $module: { $s: f } } wasm.$core_new", MAP, "m", "x").unwrap_err();
        assert!(err.contains("__wbindgen_throw"), "{err}");
        // An export it does not use is fine.
        let all = "$s $__wbindgen_throw $stream $__wbindgen_init_externref_table";
        assert_eq!(fill(all, MAP, "m", "x").unwrap(), "a b c d");
    }

    #[test]
    fn a_name_the_bundle_would_mangle_fails() {
        let map = r#"{"imports": [["m", "__wbg_s_d71c023516e45950", "_a"]], "exports": []}"#;
        assert!(fill("$s", map, "m", "x").unwrap_err().contains("_a"));
    }

    #[test]
    fn two_imports_of_one_name_fail() {
        let map = r#"{"imports": [["m", "__wbg_s_d71c023516e45950", "a"], ["n", "s", "b"]], "exports": []}"#;
        assert!(fill("$s", map, "m", "x").unwrap_err().contains("`s`"));
    }

    #[test]
    fn placeholders_are_whole_identifiers() {
        assert_eq!(
            placeholders("a $b_1 ${c} $ $b_1.x $d"),
            vec!["b_1".to_owned(), "d".to_owned()]
        );
    }
}
