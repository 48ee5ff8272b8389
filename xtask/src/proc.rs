//! Running commands: echoing them, failing with a sentence, capturing test summaries.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// Runs `cmd` with inherited output; an error names the command when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", show(cmd)))
    }
}

/// Runs `cmd` and returns its standard output (trimmed), or `None` if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What a test step reported.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests skipped or ignored.
    pub skipped: u64,
}

/// Runs a test command, echoing its output while reading the summary lines of cargo test
/// (`test result: ok. 3 passed; 0 failed; 1 ignored`) and node's runner (`ℹ pass 3`). The
/// command is killed after `limit`. Returns the counts and whether it exited successfully.
pub fn run_tests(cmd: &mut Command, limit: Duration) -> (Counts, bool) {
    eprintln!("$ {}", show(cmd));
    let mut child = match cmd.stdout(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", show(cmd));
            return (Counts::default(), false);
        }
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut counts = Counts::default();
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            println!("{line}");
            parse_summary(&line, &mut counts);
        }
        counts
    });
    let start = Instant::now();
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if start.elapsed() > limit => {
                eprintln!("{} ran over {limit:?}: killing it", show(cmd));
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(_) => break false,
        }
    };
    let counts = reader.join().unwrap_or_default();
    (counts, ok)
}

fn parse_summary(line: &str, counts: &mut Counts) {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("test result: ") {
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    match what {
                        "passed" => counts.passed += n,
                        "failed" => counts.failed += n,
                        "ignored" => counts.skipped += n,
                        _ => {}
                    }
                }
            }
        }
        return;
    }
    // node --test's closing lines: "ℹ pass 12", "ℹ fail 0", "ℹ skipped 1".
    if let Some(rest) = line.strip_prefix("ℹ ") {
        let mut words = rest.split_whitespace();
        if let (Some(what), Some(n)) = (words.next(), words.next()) {
            if let Ok(n) = n.parse::<u64>() {
                match what {
                    "pass" => counts.passed += n,
                    "fail" => counts.failed += n,
                    "skipped" | "todo" => counts.skipped += n,
                    _ => {}
                }
            }
        }
    }
}

/// The command line, for messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `cargo` as invoked by this process (rustup's proxy otherwise).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A command run from `dir`.
pub fn in_dir(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_and_node_summaries() {
        let mut c = Counts::default();
        parse_summary(
            "test result: ok. 16 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            &mut c,
        );
        parse_summary("ℹ pass 5", &mut c);
        parse_summary("ℹ fail 1", &mut c);
        parse_summary("ℹ skipped 2", &mut c);
        parse_summary("ℹ tests 8", &mut c);
        parse_summary("some other line with 3 passed", &mut c);
        assert_eq!((c.passed, c.failed, c.skipped), (21, 3, 3));
    }
}
