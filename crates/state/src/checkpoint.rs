//! Checkpoints off the recording path.
//!
//! In WAL mode every commit appends to the `-wal` file; a checkpoint copies those pages
//! back into the database file and syncs it. SQLite's default is to checkpoint inside
//! whichever commit pushes the WAL past 1,000 pages, so one step record in a few dozen
//! paid for a copy and an `fsync` (milliseconds, against ~40 µs for the record itself).
//! A `Store` therefore runs its checkpoints on a thread of its own, with a connection
//! of its own (opened with the store, before the runner hides `.sluice/`), every
//! [`INTERVAL`]: `PASSIVE`, so it never blocks a writer or a reader. The recording
//! connection keeps an automatic checkpoint only as a safety net, at [`SAFETY_NET_PAGES`].
//!
//! The log starts over from its beginning only at a write that begins once every page
//! in it has been copied back. A runner that writes without pause (a hundred quick
//! steps) never gives a passive checkpoint that moment, and the log of every run was
//! appended to the previous one's: each new process read the whole history back before
//! its first statement. So the runner starts this thread before it loads the pipeline
//! ([`super::Store::open_ahead`]): the read-back and the copy happen while
//! plugins load, and the run's first write starts the log over. Should the log still
//! outgrow [`super::schema::WAL_SIZE_LIMIT`], the next store to open folds it back
//! once ([`log_outgrew_its_limit`]).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the checkpoint thread copies the WAL back.
pub(super) const INTERVAL: Duration = Duration::from_millis(250);

/// The recording connection's own automatic checkpoint (pages of 4 KiB: 32 MiB), should
/// the checkpoint thread fall behind or be missing.
pub(super) const SAFETY_NET_PAGES: u32 = 8000;

/// The checkpoint thread; stopped and joined on drop.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Told once the thread's connection has read the log back (in a mutex: a
    /// receiver alone is not `Sync`, and a `Store` is shared).
    read_back: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checkpointer")
    }
}

impl Checkpointer {
    /// Open a second connection to `path` and start checkpointing through it. `None`
    /// when either fails: the recording connection's automatic checkpoint then stays.
    pub(super) fn start(path: &std::path::Path) -> Option<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        super::schema::wait_when_busy(&conn).ok()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let (read, read_back) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sluice-state-checkpoint".into())
            .spawn(move || {
                // The first read of the first connection reads back the log the
                // previous process left (the store waits for that: see
                // `wait_until_read_back`). A header field: no statement that needs the
                // schema, which this connection never parses.
                let _ = conn.query_row("PRAGMA user_version", [], |_| Ok(()));
                let _ = read.send(());
                // At once: what the previous process left in the WAL (no connection
                // checkpoints on close). On stop, no last checkpoint: the next store
                // to open does it.
                checkpoint(&conn);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    checkpoint(&conn);
                }
            })
            .ok()?;
        Some(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            read_back: std::sync::Mutex::new(read_back),
        })
    }

    /// Wait (at most `limit`) until the thread's connection has read the log back: a
    /// connection that opened meanwhile would find the log locked and sleep.
    pub(super) fn wait_until_read_back(&self, limit: Duration) {
        if let Ok(read_back) = self.read_back.lock() {
            let _ = read_back.recv_timeout(limit);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether the `-wal` file next to `db` grew past the size it is cut back to when it
/// starts over: it then has not started over for a while.
pub(super) fn log_outgrew_its_limit(db: &std::path::Path) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > super::schema::WAL_SIZE_LIMIT as u64)
}

/// A passive checkpoint: copies what no reader still needs, never waits. A failure
/// (a busy database) is retried at the next interval.
///
/// Through SQLite's C function, not `PRAGMA wal_checkpoint`: the pragma makes the
/// connection parse the whole schema first (a millisecond of CPU per run, taken from
/// the runner while it loads plugins), and a checkpoint needs none of it.
fn checkpoint(conn: &Connection) {
    // SAFETY: `conn` is open for the whole call and used by this thread alone (the
    // thread owns it); the database name is a NUL-terminated literal, and SQLite
    // accepts null for the two frame counts it would report.
    let code = unsafe {
        rusqlite::ffi::sqlite3_wal_checkpoint_v2(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_CHECKPOINT_PASSIVE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if code != rusqlite::ffi::SQLITE_OK {
        tracing::debug!(
            "state database checkpoint deferred: {}",
            rusqlite::ffi::Error::new(code)
        );
    }
}
