//! `_pyport.Poller`: level-triggered readiness from the `polling` crate,
//! shaped for a `selectors.BaseSelector` written in Python.

use polling::{Event, Events, PollMode};
use pyo3::prelude::*;
use rustix::fd::{BorrowedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// `selectors.EVENT_READ` / `selectors.EVENT_WRITE`.
const READ: u32 = 1;
const WRITE: u32 = 2;

/// Longest single wait; beyond it `Duration` arithmetic gains nothing.
const MAX_TIMEOUT_S: f64 = 86_400.0 * 365.0;

#[pyclass(frozen, module = "_pyport")]
pub struct Poller {
    poller: polling::Poller,
    events: Mutex<Events>,
}

fn interest(fd: RawFd, events: u32) -> Event {
    let key = fd as usize;
    match (events & READ != 0, events & WRITE != 0) {
        (true, true) => Event::all(key),
        (true, false) => Event::readable(key),
        (false, true) => Event::writable(key),
        (false, false) => Event::none(key),
    }
}

fn check_fd(fd: RawFd) -> PyResult<()> {
    if fd < 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "invalid file descriptor: {fd}"
        )));
    }
    Ok(())
}

#[pymethods]
impl Poller {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(Poller {
            poller: polling::Poller::new()?,
            events: Mutex::new(Events::new()),
        })
    }

    fn register(&self, fd: RawFd, events: u32) -> PyResult<()> {
        check_fd(fd)?;
        // SAFETY: `polling` requires the fd to stay open while registered;
        // the selector above unregisters before asyncio closes a transport's
        // fd, and on Linux epoll drops a closed fd by itself anyway.
        unsafe {
            self.poller
                .add_with_mode(fd, interest(fd, events), PollMode::Level)?
        };
        Ok(())
    }

    fn modify(&self, fd: RawFd, events: u32) -> PyResult<()> {
        check_fd(fd)?;
        // SAFETY: a borrow for the duration of one epoll_ctl call; a closed
        // fd makes the kernel answer EBADF, raised as OSError.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller
            .modify_with_mode(borrowed, interest(fd, events), PollMode::Level)?;
        Ok(())
    }

    fn unregister(&self, fd: RawFd) -> PyResult<()> {
        check_fd(fd)?;
        // SAFETY: as in `modify`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        self.poller.delete(borrowed)?;
        Ok(())
    }

    /// Waits for readiness with the GIL released; `None` waits forever, so
    /// an idle loop makes no wake-ups at all.
    #[pyo3(signature = (timeout = None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<(RawFd, u32)>> {
        let timeout = timeout.map(|s| {
            if s.is_nan() || s <= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(s.min(MAX_TIMEOUT_S))
            }
        });
        let ready = py.detach(|| -> std::io::Result<Vec<(RawFd, u32)>> {
            let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            events.clear();
            self.poller.wait(&mut events, timeout)?;
            Ok(events
                .iter()
                .map(|e| {
                    let mask =
                        (if e.readable { READ } else { 0 }) | (if e.writable { WRITE } else { 0 });
                    (e.key as RawFd, mask)
                })
                .collect())
        })?;
        py.check_signals()?;
        Ok(ready)
    }

    /// Wakes a `poll` in progress (or the next one), from any thread.
    fn notify(&self) -> PyResult<()> {
        Ok(self.poller.notify()?)
    }

    /// Kept for the selector protocol; the epoll fd closes with the object.
    fn close(&self) {}
}
