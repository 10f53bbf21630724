//! Injected commit failures for the fault tests (feature `fault-injection`).
//!
//! A real failed fsync or write makes SQLite return an I/O error from
//! `COMMIT` and roll the transaction back; [`Faults`] makes the writer do
//! exactly that (roll back, report the failure) on demand, so tests can
//! check what the service does when its disk fails without a failing disk.
//! The feature is enabled only by test builds (`[dev-dependencies]`): the
//! release binary has no such field in its configuration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::writer::CommitFailure;

#[derive(Debug, Default)]
struct Inner {
    /// Commits still to fail before commits succeed again.
    fail_next: AtomicU64,
    /// Fail every commit until [`Faults::clear`].
    failing: AtomicBool,
    /// Report the failure as a full disk rather than an I/O error.
    disk_full: AtomicBool,
    /// Commits failed so far.
    failed: AtomicU64,
}

/// A handle shared by the test and the store's writer.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Inner>);

impl PartialEq for Faults {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Faults {}

impl Faults {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `count` commits fail with an I/O error (a failed fsync).
    pub fn fail_next_commits(&self, count: u64) {
        self.0.disk_full.store(false, Ordering::Release);
        self.0.fail_next.store(count, Ordering::Release);
    }

    /// Every commit fails until [`Faults::clear`]; as a full disk when
    /// `disk_full`, else as an I/O error.
    pub fn fail_all_commits(&self, disk_full: bool) {
        self.0.disk_full.store(disk_full, Ordering::Release);
        self.0.failing.store(true, Ordering::Release);
    }

    /// Commits succeed again.
    pub fn clear(&self) {
        self.0.failing.store(false, Ordering::Release);
        self.0.fail_next.store(0, Ordering::Release);
    }

    /// How many commits were made to fail.
    pub fn commits_failed(&self) -> u64 {
        self.0.failed.load(Ordering::Acquire)
    }

    pub(crate) fn take_commit_failure(&self) -> Option<CommitFailure> {
        let fail = self.0.failing.load(Ordering::Acquire)
            || self
                .0
                .fail_next
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
        if !fail {
            return None;
        }
        self.0.failed.fetch_add(1, Ordering::AcqRel);
        let disk_full = self.0.disk_full.load(Ordering::Acquire);
        Some(CommitFailure {
            disk_full,
            lost_race: false,
            reason: if disk_full {
                "injected fault: database or disk is full".into()
            } else {
                "injected fault: disk I/O error (fsync failed)".into()
            },
        })
    }
}
