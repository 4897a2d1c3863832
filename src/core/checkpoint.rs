//! Checkpoints: where a connector resumes after a stop, a crash or `kill -9`.
//!
//! The store is a trait so other backends can follow; the default keeps one JSON file per
//! connector, written atomically (write temp file, fsync, rename, fsync directory). A write whose
//! position is not newer than the stored one is a no-op, so the store never regresses no matter
//! who calls it or how often.

use crate::core::position::{Lsn, Position};
use crate::core::snapshot::SnapshotProgress;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What was delivered, and which source it belongs to (so a checkpoint is never applied to a
/// different database, or to a replication slot that was recreated behind our back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// File format version.
    pub version: u32,
    pub connector: String,
    pub position: Position,
    pub source: SourceIdentity,
    /// Each captured table's snapshot state. Absent in checkpoints written before snapshots were
    /// tracked: every table they knew counts as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
}

impl Checkpoint {
    pub const VERSION: u32 = 1;

    /// Whether `self` is ahead of `other`: a later log position, or the same one with more
    /// snapshot progress.
    pub fn is_ahead_of(&self, other: &Checkpoint) -> bool {
        match self.position.partial_cmp(&other.position) {
            Some(std::cmp::Ordering::Greater) => true,
            Some(std::cmp::Ordering::Equal) => step(self) > step(other),
            _ => false,
        }
    }
}

fn step(cp: &Checkpoint) -> u64 {
    cp.snapshot.as_ref().map_or(0, |s| s.step)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceIdentity {
    Postgres {
        /// `IDENTIFY_SYSTEM`'s systemid: changes when the database cluster is replaced.
        system_identifier: String,
        database: String,
        slot: String,
        /// The slot's consistent point when cdcd created it; informational.
        slot_created_at: Option<Lsn>,
        /// The primary's timeline the position was read on (`IDENTIFY_SYSTEM`); none when read
        /// on a standby, or written before cdcd recorded it. A promoted standby's timeline
        /// history tells whether the log it continues is the one delivered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeline: Option<u32>,
    },
    Mysql {
        /// "mysql" or "mariadb".
        flavor: String,
        /// `@@server_uuid` (MySQL) or `@@server_id` (MariaDB): changes when the server is replaced.
        server: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is corrupt ({source}); move it away to re-snapshot, or restore a backup")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot write checkpoint {path}: {source} (check that the directory exists and is writable, and the disk is not full)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "checkpoint directory {path} is locked by another running cdcd (pid file {lock}); run one daemon per connector"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("checkpoint {path} belongs to connector `{found}`, not `{expected}`; give each connector its own checkpoint.path")]
    WrongConnector { path: PathBuf, found: String, expected: String },
    /// A Kafka store's transaction or read failed in a way a new attempt may mend.
    #[error("Kafka checkpoint store: {0}")]
    Kafka(String),
    /// The Kafka store cannot work with what it found (a checkpoint topic that does not
    /// compact); the message says what to change.
    #[error("Kafka checkpoint store: {0}")]
    Refused(String),
    /// A Kafka store's producer is finished: another process took the connector's
    /// transactional id, or the producer hit a fatal error.
    #[error("Kafka checkpoint store: {0}")]
    Fenced(String),
}

/// A place that keeps checkpoints.
pub trait CheckpointStore: Send {
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError>;
    /// Persists `cp` unless the stored checkpoint is as far or further ([`Checkpoint::is_ahead_of`]).
    /// Returns whether it wrote. A store that shares the sink's transaction (exactly-once)
    /// commits every record sent since the last save with it, so it is called only between
    /// source transactions, with the place the last one ended.
    fn save(&mut self, cp: &Checkpoint) -> Result<bool, CheckpointError>;
    /// Drops what was sent since the last save, for a store that shares the sink's
    /// transaction; the next session re-reads it from [`CheckpointStore::load`].
    fn abort(&mut self) -> Result<(), CheckpointError> {
        Ok(())
    }
    /// Before each session of a store several processes share: proves this process may still
    /// write (a replaced one learns it here, before it touches the source).
    fn claim(&mut self) -> Result<(), CheckpointError> {
        Ok(())
    }
    /// Whether [`CheckpointStore::save`] returns before its checkpoint is stored (the Kafka
    /// store commits in the background): its outcome then comes from
    /// [`CheckpointStore::settled`], and only then is the checkpoint durable.
    fn commits_in_background(&self) -> bool {
        false
    }
    /// For a store that commits in the background: the save that finished since the last call
    /// (its checkpoint, and whether it was written), waiting for one under way if `wait`. A
    /// failed commit is its error, and what it held is read again.
    fn settled(&mut self, _wait: bool) -> Result<Option<(Checkpoint, bool)>, CheckpointError> {
        Ok(None)
    }
}

/// The embedded default: `<dir>/checkpoint.json`, plus `<dir>/lock` held with `flock` while the
/// connector runs so two daemons cannot interleave writes for the same connector.
pub struct FileCheckpointStore {
    dir: PathBuf,
    file: PathBuf,
    last: Option<Checkpoint>,
    loaded: bool,
    _lock: fs::File,
}

impl FileCheckpointStore {
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        fs::create_dir_all(dir).map_err(|source| CheckpointError::Write { path: dir.to_path_buf(), source })?;
        let lock_path = dir.join("lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| CheckpointError::Write { path: lock_path.clone(), source })?;
        if !try_lock_exclusive(&lock) {
            return Err(CheckpointError::Locked { path: dir.to_path_buf(), lock: lock_path });
        }
        Ok(Self { dir: dir.to_path_buf(), file: dir.join("checkpoint.json"), last: None, loaded: false, _lock: lock })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    fn read(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        read_file(&self.file)
    }
}

/// How `cdcd check` reads a connector's stored checkpoint without taking the store over (no lock,
/// no transactional id).
pub struct CheckpointProbe<'a> {
    /// Where the store keeps it: "checkpoint /var/lib/cdcd/x/checkpoint.json".
    pub place: String,
    read: Box<dyn Fn() -> Result<Option<StoredCheckpoint>, CheckpointError> + Send + Sync + 'a>,
}

/// A checkpoint `cdcd check` found, and where.
pub struct StoredCheckpoint {
    pub checkpoint: Checkpoint,
    /// Where it was found, for messages.
    pub place: String,
    /// What starting over from scratch does to it: "move /var/lib/cdcd/x/checkpoint.json away".
    pub reset: String,
}

impl StoredCheckpoint {
    /// `checkpoint`, read from `file`.
    pub fn in_file(checkpoint: Checkpoint, file: &Path) -> Self {
        Self {
            checkpoint,
            place: format!("checkpoint {}", file.display()),
            reset: format!("move {} away", file.display()),
        }
    }
}

impl<'a> CheckpointProbe<'a> {
    pub fn new(
        place: String,
        read: impl Fn() -> Result<Option<StoredCheckpoint>, CheckpointError> + Send + Sync + 'a,
    ) -> Self {
        Self { place, read: Box::new(read) }
    }

    /// The file store's checkpoint in `dir`.
    pub fn file(dir: &Path) -> CheckpointProbe<'static> {
        let file = dir.join("checkpoint.json");
        CheckpointProbe {
            place: format!("checkpoint {}", file.display()),
            read: Box::new(move || Ok(read_file(&file)?.map(|cp| StoredCheckpoint::in_file(cp, &file)))),
        }
    }

    /// The checkpoint as stored now.
    pub fn read(&self) -> Result<Option<StoredCheckpoint>, CheckpointError> {
        (self.read)()
    }
}

/// The checkpoint in `file`, if there is one (without taking the directory's lock: for a
/// store that imports it).
pub fn read_file(file: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    match fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| CheckpointError::Corrupt { path: file.to_path_buf(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read { path: file.to_path_buf(), source }),
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        let cp = self.read()?;
        self.last = cp.clone();
        self.loaded = true;
        Ok(cp)
    }

    fn save(&mut self, cp: &Checkpoint) -> Result<bool, CheckpointError> {
        if !self.loaded {
            self.load()?;
        }
        if self.last.as_ref().is_some_and(|last| !cp.is_ahead_of(last)) {
            return Ok(false);
        }
        let werr = |source| CheckpointError::Write { path: self.file.clone(), source };
        let tmp = self.dir.join("checkpoint.json.tmp");
        let body = serde_json::to_vec_pretty(cp).map_err(|e| werr(std::io::Error::other(e)))?;
        {
            let mut f = fs::File::create(&tmp).map_err(werr)?;
            f.write_all(&body).map_err(werr)?;
            f.write_all(b"\n").map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        fs::rename(&tmp, &self.file).map_err(werr)?;
        // The rename is only durable once the directory entry is.
        fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(werr)?;
        self.last = Some(cp.clone());
        Ok(true)
    }
}

fn try_lock_exclusive(f: &fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is touched.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(lsn: u64) -> Checkpoint {
        Checkpoint {
            version: Checkpoint::VERSION,
            connector: "t".into(),
            position: Position::Postgres { lsn: Lsn(lsn) },
            source: SourceIdentity::Postgres {
                system_identifier: "1".into(),
                database: "db".into(),
                slot: "s".into(),
                slot_created_at: None,
                timeline: None,
            },
            snapshot: None,
        }
    }

    #[test]
    fn saves_only_forward_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = FileCheckpointStore::open(dir.path()).unwrap();
            assert_eq!(store.load().unwrap(), None);
            assert!(store.save(&cp(100)).unwrap());
            assert!(!store.save(&cp(100)).unwrap(), "same position is a no-op");
            assert!(!store.save(&cp(50)).unwrap(), "older position is a no-op");
            assert!(store.save(&cp(200)).unwrap());
        }
        let mut store = FileCheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp(200)));
        assert!(!store.save(&cp(150)).unwrap(), "a fresh handle must not regress either");
        assert_eq!(store.load().unwrap(), Some(cp(200)));
        assert!(!dir.path().join("checkpoint.json.tmp").exists());
    }

    #[test]
    fn snapshot_progress_at_the_same_position_is_newer_only_with_a_higher_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileCheckpointStore::open(dir.path()).unwrap();
        let with_step =
            |lsn, step| Checkpoint { snapshot: Some(SnapshotProgress { step, tables: Vec::new() }), ..cp(lsn) };
        assert!(store.save(&with_step(100, 3)).unwrap());
        assert!(store.save(&with_step(100, 4)).unwrap(), "a delivered chunk at the same position");
        assert!(!store.save(&with_step(100, 2)).unwrap(), "older snapshot progress");
        assert!(!store.save(&cp(100)).unwrap(), "no snapshot progress at all is not newer");
        assert!(!store.save(&with_step(99, 9)).unwrap(), "an older position, whatever its step");
        assert!(store.save(&with_step(101, 1)).unwrap(), "a newer position");
        assert_eq!(store.load().unwrap(), Some(with_step(101, 1)));
    }

    #[test]
    fn second_open_of_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FileCheckpointStore::open(dir.path()).unwrap();
        match FileCheckpointStore::open(dir.path()) {
            Err(CheckpointError::Locked { .. }) => {}
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("checkpoint.json"), b"{not json").unwrap();
        let mut store = FileCheckpointStore::open(dir.path()).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("re-snapshot"), "{err}");
    }
}
