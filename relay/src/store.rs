//! The history file: one JSON line per message, appended before a publish is acknowledged.
//!
//! A line is `{"channel":"/a","seq":5,"data":<the payload>}`; a line without `data` only
//! carries a channel's sequence number forward (written when compaction keeps no message of
//! that channel, so numbering continues after a restart). Appends are written to the operating
//! system before the publisher gets its answer, which survives the relay being killed (not a
//! power cut: there is no fsync per message). On open the file is read (a torn last line left by
//! a kill is skipped), trimmed to the history size and rewritten through a temporary file and a
//! rename; while running it is compacted the same way when it has grown to about twice what the
//! history holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tidings::core::channel::parse_bayeux_concrete;

use crate::history::{History, Message};
use crate::Error;

/// Lines the file may hold beyond twice the retained messages before it is compacted.
const COMPACT_SLACK: usize = 4096;

#[derive(Serialize)]
struct LineOut<'a> {
    channel: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct LineIn {
    channel: String,
    seq: u64,
    data: Option<Box<RawValue>>,
}

/// An open store file.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: File,
    /// The file's length: an append that fails is cut back to it.
    len: u64,
    /// Lines in the file.
    lines: usize,
    /// Compact when `lines` passes this.
    compact_at: usize,
}

impl Store {
    /// Opens (or creates) the store at `path` and returns it with the history it holds, keeping
    /// the last `capacity` messages of each channel. The file is rewritten compacted.
    pub fn open(path: &Path, capacity: usize) -> Result<(Store, History), Error> {
        let io_err = |source| Error::Store {
            path: path.to_owned(),
            source,
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(e)),
        };
        let history = load(path, &bytes, capacity)?;
        let mut store = Store {
            path: path.to_owned(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io_err)?,
            len: 0,
            lines: 0,
            compact_at: 0,
        };
        store.compact(&history).map_err(io_err)?;
        Ok((store, history))
    }

    /// Appends `messages` and hands them to the operating system. On failure the file is cut
    /// back to where it was, so a half-written line cannot stay in the middle of it.
    pub fn append(&mut self, messages: &[Arc<Message>]) -> io::Result<()> {
        let mut buf = Vec::new();
        for m in messages {
            let data: &RawValue = serde_json::from_str(&m.payload).map_err(io::Error::other)?;
            write_line(&mut buf, &m.channel, m.seq, Some(data))?;
        }
        let result = self.file.write_all(&buf).and_then(|()| self.file.flush());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.lines += messages.len();
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Whether the file has grown enough since the last compaction to rewrite it.
    pub fn wants_compaction(&self) -> bool {
        self.lines > self.compact_at
    }

    /// Rewrites the file to hold exactly `history`: written to a temporary file, synced, and
    /// renamed over the store, so a crash leaves either the old or the new file.
    pub fn compact(&mut self, history: &History) -> io::Result<()> {
        let tmp = tmp_path(&self.path);
        let mut buf = Vec::new();
        let mut lines = 0;
        for (channel, seq, messages) in history.channels() {
            if messages.is_empty() && seq > 0 {
                write_line(&mut buf, channel, seq, None)?;
                lines += 1;
            }
            for m in messages {
                let data: &RawValue = serde_json::from_str(&m.payload).map_err(io::Error::other)?;
                write_line(&mut buf, channel, m.seq, Some(data))?;
                lines += 1;
            }
        }
        // The handle stays with the new file through the rename: no window in which appends
        // could go to a file that is no longer the store.
        {
            let mut file = File::create(&tmp)?;
            file.write_all(&buf)?;
            file.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(&tmp)?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable where the platform allows it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.file = file;
        self.len = buf.len() as u64;
        self.lines = lines;
        self.compact_at = lines.max(history.retained()) * 2 + COMPACT_SLACK;
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_line(
    buf: &mut Vec<u8>,
    channel: &str,
    seq: u64,
    data: Option<&RawValue>,
) -> io::Result<()> {
    serde_json::to_writer(&mut *buf, &LineOut { channel, seq, data }).map_err(io::Error::other)?;
    buf.push(b'\n');
    Ok(())
}

/// Reads the lines of a store file into a history.
fn load(path: &Path, bytes: &[u8], capacity: usize) -> Result<History, Error> {
    let mut history = History::new(capacity);
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last_nonempty = lines.iter().rposition(|l| !l.trim_ascii().is_empty());
    for (i, line) in lines.iter().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let applied = parse_line(line).and_then(|l| apply(&mut history, l));
        if let Err(reason) = applied {
            if Some(i) == last_nonempty {
                // A line torn by a kill in the middle of an append: it was never acknowledged.
                continue;
            }
            return Err(Error::CorruptStore {
                path: path.to_owned(),
                line: i + 1,
                reason,
            });
        }
    }
    Ok(history)
}

fn parse_line(line: &[u8]) -> Result<LineIn, String> {
    serde_json::from_slice(line).map_err(|e| format!("not a message line: {e}"))
}

fn apply(history: &mut History, line: LineIn) -> Result<(), String> {
    parse_bayeux_concrete(&line.channel).map_err(|e| format!("channel {:?}: {e}", line.channel))?;
    let current = history.current(&line.channel);
    if line.seq <= current {
        return Err(format!(
            "seq {} of {} does not follow {current}",
            line.seq, line.channel
        ));
    }
    match line.data {
        Some(data) => {
            history.push(Arc::new(Message {
                channel: Arc::from(line.channel),
                seq: line.seq,
                payload: Arc::from(data.get()),
            }));
        }
        None => {
            history.advance(&line.channel, line.seq);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Resume;

    fn msg(channel: &str, seq: u64, payload: &str) -> Arc<Message> {
        Arc::new(Message {
            channel: Arc::from(channel),
            seq,
            payload: Arc::from(payload),
        })
    }

    #[test]
    fn round_trips_trims_and_keeps_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.jsonl");
        let (mut store, _) = Store::open(&path, 2).unwrap();
        store
            .append(&[
                msg("/a", 1, "1"),
                msg("/a", 2, "{\"x\":[1,2]}"),
                msg("/a", 3, "\"three\""),
            ])
            .unwrap();
        store.append(&[msg("/b", 1, "null")]).unwrap();
        drop(store);

        let (_, h) = Store::open(&path, 2).unwrap();
        assert_eq!(h.current("/a"), 3);
        assert_eq!(h.current("/b"), 1);
        let Resume::Replay(m) = h.resume("/a", 1) else {
            panic!("expected a replay")
        };
        assert_eq!(m[0].payload.as_ref(), "{\"x\":[1,2]}");
        assert_eq!(m[1].payload.as_ref(), "\"three\"");

        // With no history at all the numbering still survives two restarts.
        drop(Store::open(&path, 0).unwrap());
        let (_, h) = Store::open(&path, 0).unwrap();
        assert_eq!(h.current("/a"), 3);
        assert_eq!(h.retained(), 0);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("{\"channel\":\"/a\",\"seq\":3}\n"), "{text}");
    }

    #[test]
    fn skips_a_torn_last_line_but_refuses_a_bad_middle_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        fs::write(
            &path,
            "{\"channel\":\"/a\",\"seq\":1,\"data\":1}\n{\"channel\":\"/a\",\"seq\":2,\"da",
        )
        .unwrap();
        let (_, h) = Store::open(&path, 10).unwrap();
        assert_eq!(h.current("/a"), 1);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"channel\":\"/a\",\"seq\":1,\"data\":1}\n"
        );

        fs::write(
            &path,
            "{\"channel\":\"/a\",\"seq\":1,\"data\":1}\ngarbage\n{\"channel\":\"/a\",\"seq\":2,\"data\":2}\n",
        )
        .unwrap();
        match Store::open(&path, 10) {
            Err(Error::CorruptStore { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        let ok = "{\"channel\":\"/a\",\"seq\":3,\"data\":1}\n";
        for bad in [
            "{\"channel\":\"nope\",\"seq\":1,\"data\":1}\n",
            "{\"channel\":\"/a\",\"seq\":0,\"data\":1}\n",
            "{\"channel\":\"/a\",\"seq\":1,\"data\":1}\n{\"channel\":\"/a\",\"seq\":1,\"data\":1}\n",
        ] {
            fs::write(&path, format!("{bad}{ok}")).unwrap();
            let lines = bad.lines().count();
            assert!(
                matches!(Store::open(&path, 10), Err(Error::CorruptStore { line, .. }) if line == lines),
                "{bad}"
            );
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("{bad}{ok}"));
        }
    }
}
