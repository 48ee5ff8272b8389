//! Where things are: the repository, cargo's target dir, the tool cache.

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root().join(d)
            }
        }
        _ => root().join("target"),
    }
}

/// Installed tools that outlive a clone: `$TIDINGS_TOOLS`, else `~/.cache/tidings/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TIDINGS_TOOLS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| root().join("target"));
    cache.join("tidings").join("tools")
}

/// The npm project holding the build and test tools (binaryen, playwright-core).
pub fn node_tools() -> PathBuf {
    root().join("tests")
}

/// The npm package output.
pub fn pkg_dir() -> PathBuf {
    root().join("pkg")
}
