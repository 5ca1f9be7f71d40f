//! The rollout journal: an append-only, event-sourced log in a state directory. Every record is
//! written and flushed to disk (`fsync`) before `append` returns, so the action it allows
//! happens only once the record is durable. One controller at a time holds the directory's
//! exclusive lock.
//!
//! Format: `journal.jsonl`, one JSON record per line. A crash can leave a torn last line; it
//! is dropped on open (and reported). A damaged line anywhere else is an error naming its line:
//! a journal is never silently skipped over.

use super::event::{Event, Record};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "journal.jsonl";
pub const LOCK_FILE: &str = "controller.lock";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use state directory `{}`: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rollout state `{}` is held by another controller ({holder}); stop it first, or wait for it to finish", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("journal `{}` line {line} is damaged: {message}", file.display())]
    Damaged {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// The shared copy refused a record: nothing was written, and the action it would have
    /// allowed must not happen.
    /// The mirror's reason is the message itself, not a source the chain would print again.
    #[error("record {seq} was not written: {why}")]
    Mirror { seq: u64, why: MirrorError },
}

crate::error::message_error! {
    /// Why a journal's shared copy refused a record, in words.
    pub struct MirrorError;
}

/// A copy of the journal shared with other controllers (etcd, when controllers run per
/// shard). A record goes to the mirror first and to the local file only once the mirror took
/// it: the mirror is the rollout's record, and the local file a copy a crash may leave behind.
pub trait Mirror: Send {
    /// Stores record `seq`, serialized as `line` (no newline), or refuses it.
    fn append(&mut self, seq: u64, line: &[u8]) -> Result<(), MirrorError>;
}

/// What opening a journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last record that were dropped.
    pub torn_bytes: u64,
}

/// An open journal, holding the state directory's lock until dropped.
pub struct Journal {
    dir: PathBuf,
    file: File,
    _lock: File,
    records: Vec<Record>,
    recovery: Recovery,
    durable: bool,
    mirror: Option<Box<dyn Mirror>>,
    /// Tests: fail every append from the n-th on, as a crash would (after writing it, if
    /// the flag says so).
    #[cfg(test)]
    pub(crate) crash_at: Option<(usize, bool)>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("records", &self.records.len())
            .field("mirrored", &self.mirror.is_some())
            .finish()
    }
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

/// How long `open` waits for a lock this very process holds (see `take_lock`).
const OWN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the state directory's exclusive lock, or says who holds it.
///
/// The lock (`flock`) belongs to the open file, which a child process shares from its fork
/// until its `exec` closes it. A journal this process dropped can so stay locked for a moment
/// while another thread starts a command, and a reopen would be refused with this process
/// named as the holder. A lock held by this process is therefore retried for `OWN_LOCK_WAIT`;
/// one held by another process is refused at once.
fn take_lock(lock: &mut File, dir: &Path) -> Result<(), JournalError> {
    let ours = format!("pid {}", std::process::id());
    let deadline = std::time::Instant::now() + OWN_LOCK_WAIT;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.seek(SeekFrom::Start(0));
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                if holder == ours && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                return Err(JournalError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown process".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(dir)(e)),
        }
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, taking the exclusive lock and reading
    /// every record.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(dir))?;
        take_lock(&mut lock, dir)?;
        lock.set_len(0).map_err(io(dir))?;
        lock.seek(SeekFrom::Start(0)).map_err(io(dir))?;
        write!(lock, "pid {}", std::process::id()).map_err(io(dir))?;
        lock.sync_data().map_err(io(dir))?;

        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(dir))?;
        let (records, good_len, total_len) = read_records(&mut file, &path)?;
        let torn = total_len - good_len;
        if torn > 0 {
            file.set_len(good_len).map_err(io(dir))?;
            file.sync_data().map_err(io(dir))?;
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            file,
            _lock: lock,
            records,
            recovery: Recovery { torn_bytes: torn },
            durable: true,
            mirror: None,
            #[cfg(test)]
            crash_at: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// From now on, every record goes to `mirror` before the local file.
    pub fn set_mirror(&mut self, mirror: Box<dyn Mirror>) {
        self.mirror = Some(mirror);
    }

    /// Makes the local file hold exactly `lines` (serialized records, the shared copy's), as
    /// a controller that takes over a shard does before it acts: written whole to a temporary
    /// file, flushed and renamed over the journal, then read back.
    pub fn adopt(self, lines: &[Vec<u8>]) -> Result<Journal, JournalError> {
        let dir = self.dir.clone();
        let ours: Vec<Vec<u8>> = self
            .records
            .iter()
            .filter_map(|r| serde_json::to_vec(r).ok())
            .collect();
        if ours == lines {
            return Ok(self);
        }
        let tmp = dir.join(format!("{JOURNAL_FILE}.adopt"));
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        {
            let mut f = File::create(&tmp).map_err(io(&dir))?;
            f.write_all(&body).map_err(io(&dir))?;
            f.sync_all().map_err(io(&dir))?;
        }
        std::fs::rename(&tmp, dir.join(JOURNAL_FILE)).map_err(io(&dir))?;
        drop(self);
        Journal::open(&dir)
    }

    /// Whether `append` flushes each record to disk (on by default). Simulations, whose
    /// "fleet" vanishes with the process, turn it off.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Appends an event decided under policy set `policy_hash` at `at` (RFC 3339), and returns
    /// its sequence number once it is on disk.
    pub fn append(
        &mut self,
        event: Event,
        policy_hash: &str,
        at: &str,
    ) -> Result<u64, JournalError> {
        let seq = self.records.last().map(|r| r.seq + 1).unwrap_or(1);
        let record = Record {
            seq,
            at: at.to_string(),
            policy: policy_hash.to_string(),
            event,
        };
        #[cfg(test)]
        let crash_after_write = match &mut self.crash_at {
            Some((0, written)) => {
                if *written {
                    *written = false;
                    true
                } else {
                    return Err(io(&self.dir)(std::io::Error::other("simulated crash")));
                }
            }
            Some((n, _)) => {
                *n -= 1;
                false
            }
            None => false,
        };
        let mut line = serde_json::to_vec(&record).map_err(|e| JournalError::Io {
            dir: self.dir.clone(),
            source: std::io::Error::other(e),
        })?;
        if let Some(m) = self.mirror.as_mut() {
            m.append(seq, &line)
                .map_err(|why| JournalError::Mirror { seq, why })?;
        }
        line.push(b'\n');
        self.file.write_all(&line).map_err(io(&self.dir))?;
        if self.durable {
            self.file.sync_data().map_err(io(&self.dir))?;
        }
        #[cfg(test)]
        if crash_after_write {
            return Err(io(&self.dir)(std::io::Error::other("simulated crash")));
        }
        self.records.push(record);
        Ok(seq)
    }

    /// Who holds the state directory's lock (a running controller), if anyone.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut f = File::open(dir.join(LOCK_FILE)).ok()?;
        match f.try_lock_shared() {
            Ok(()) => None,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                Some(if holder.trim().is_empty() {
                    "unknown process".into()
                } else {
                    holder.trim().to_string()
                })
            }
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// Reads a journal without taking the lock: for `rollout status` while a controller runs.
    /// A torn last line is ignored, not repaired.
    pub fn read_only(dir: &Path) -> Result<Vec<Record>, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let mut file = File::open(&path).map_err(io(dir))?;
        Ok(read_records(&mut file, &path)?.0)
    }
}

/// Reads every complete record. Returns them, the length of the intact prefix, and the file's
/// length.
fn read_records(file: &mut File, path: &Path) -> Result<(Vec<Record>, u64, u64), JournalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let total = file.seek(SeekFrom::End(0)).map_err(io(dir))?;
    file.seek(SeekFrom::Start(0)).map_err(io(dir))?;
    let mut reader = BufReader::new(&*file);
    let mut records: Vec<Record> = Vec::new();
    let mut good = 0u64;
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io(dir))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let complete = buf.last() == Some(&b'\n');
        let parsed = serde_json::from_slice::<Record>(&buf);
        match (parsed, complete) {
            (Ok(r), true) => {
                let want = records.last().map(|p| p.seq + 1).unwrap_or(1);
                if r.seq != want {
                    return Err(JournalError::Damaged {
                        file: path.to_path_buf(),
                        line: line_no,
                        message: format!("sequence number {} where {want} was expected", r.seq),
                    });
                }
                records.push(r);
                good += n as u64;
            }
            // The last line, cut short by a crash: drop it.
            (_, false) => break,
            (Err(e), true) => {
                // A complete but unreadable last line is also a torn write (the newline made
                // it out, part of the record did not); anywhere else it is damage.
                let at_end = good + n as u64 == total;
                if at_end {
                    break;
                }
                return Err(JournalError::Damaged {
                    file: path.to_path_buf(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok((records, good, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::event::Event;

    fn started() -> Event {
        Event::Paused {
            reason: "test".into(),
        }
    }

    /// Finding (CI, stop 39): a crash test reopened a journal it had just dropped and was
    /// refused, "held by another controller (pid N)", N being the test process itself: another
    /// test's thread had forked a command, and the child shared the lock until its `exec`. A
    /// duplicate of the lock's file stands in for that child here.
    #[test]
    fn a_lock_shared_for_a_moment_by_a_forked_child_does_not_refuse_the_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let child = j._lock.try_clone().unwrap();
        drop(j);
        let exec = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(child);
        });
        let j = Journal::open(dir.path()).unwrap();
        exec.join().unwrap();
        let holder = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(holder, format!("pid {}", std::process::id()));
        drop(j);
    }

    #[test]
    fn appends_survive_reopen_and_the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            assert_eq!(
                j.append(started(), "abc", "2026-12-07T14:00:00Z").unwrap(),
                1
            );
            assert_eq!(
                j.append(
                    Event::Resumed {
                        acknowledged: vec![]
                    },
                    "abc",
                    "2026-12-07T14:01:00Z"
                )
                .unwrap(),
                2
            );
            let e = Journal::open(dir.path()).unwrap_err();
            assert!(matches!(e, JournalError::Locked { .. }), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("pid {}", std::process::id())),
                "{e}"
            );
            // Status reads while the controller holds the lock.
            assert_eq!(Journal::read_only(dir.path()).unwrap().len(), 2);
        }
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.records().len(), 2);
        assert_eq!(
            j.records()[1].event,
            Event::Resumed {
                acknowledged: vec![]
            }
        );
        assert_eq!(j.records()[0].policy, "abc");
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_damage_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.append(started(), "h", "t").unwrap();
            j.append(
                Event::Resumed {
                    acknowledged: vec![],
                },
                "h",
                "t",
            )
            .unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let good = std::fs::read(&path).unwrap();
        // Crash mid-write: half a record, no newline.
        let mut torn = good.clone();
        torn.extend_from_slice(br#"{"seq":3,"at":"t","pol"#);
        std::fs::write(&path, &torn).unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            assert_eq!(j.records().len(), 2);
            assert_eq!(j.recovery().torn_bytes, (torn.len() - good.len()) as u64);
            // The next append starts on a clean line.
            assert_eq!(
                j.append(
                    Event::Resumed {
                        acknowledged: vec![]
                    },
                    "h",
                    "t"
                )
                .unwrap(),
                3
            );
        }
        assert_eq!(Journal::open(dir.path()).unwrap().records().len(), 3);
        // Damage in the middle is never skipped.
        let mut bad =
            b"{\"seq\":1,\"at\":\"t\",\"policy\":\"h\",\"event\":{\"bogus\":1}}\n".to_vec();
        bad.extend_from_slice(&good);
        std::fs::write(&path, &bad).unwrap();
        let e = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(e, JournalError::Damaged { line: 1, .. }), "{e}");
    }
}
