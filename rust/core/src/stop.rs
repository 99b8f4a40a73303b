//! A caller's request that a long call end early: the bindings set it from the thread that waits for
//! the call (when Python's Ctrl-C handler raises), and the call's loops read it between blocks of work.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::errors::{CoreError, Result};

/// Set once, read often. A call that sees it ends with [`CoreError::Interrupted`] and drops what it
/// computed: it is read only between whole blocks (a query block, a round, a run of insertions), so an
/// answer is either complete or not returned at all.
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// Ask the call to end at its next check.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the call was asked to end.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`CoreError::Interrupted`] once the call was asked to end.
    pub fn check(&self) -> Result<()> {
        match self.requested() {
            true => Err(CoreError::Interrupted),
            false => Ok(()),
        }
    }
}
