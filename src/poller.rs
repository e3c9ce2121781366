//! `_pyport.Poller`: level-triggered readiness from the `polling` crate,
//! shaped for a `selectors.BaseSelector` written in Python.
//!
//! Registration goes through `polling`; the wait reads the same epoll
//! instance directly. `polling::Poller::wait` spends four extra system
//! calls per wait on its timerfd and notifier (arm the timer, re-arm both
//! in epoll, drain the eventfd), which halved TCP and UDP ping-pong rates
//! against stock asyncio (`make bench-loop`). One `epoll_pwait` per wait,
//! with asyncio's own millisecond rounding of timeouts, matches the stock
//! loop; `notify` uses an eventfd of its own instead of polling's.

use crate::fd;
use polling::{Event, PollMode};
use pyo3::prelude::*;
use rustix::event::epoll;
use rustix::event::{eventfd, EventfdFlags};
use rustix::fd::{AsFd, OwnedFd, RawFd};

/// `selectors.EVENT_READ` / `selectors.EVENT_WRITE`.
const READ: u32 = 1;
const WRITE: u32 = 2;

/// Longest single wait, in whole milliseconds (fits epoll's `int`).
const MAX_TIMEOUT_MS: f64 = i32::MAX as f64;
/// Epoll key of the wake-up eventfd; `polling` reserves `usize::MAX`.
const WAKE_KEY: usize = usize::MAX - 1;
/// Events taken per wait.
const MAX_EVENTS: usize = 1024;

#[pyclass(frozen, module = "_pyport")]
pub struct Poller {
    poller: polling::Poller,
    wake: OwnedFd,
}

/// `polling`'s readable/writable mapping of epoll flags.
fn mask(flags: epoll::EventFlags) -> u32 {
    use epoll::EventFlags as F;
    let mut m = 0;
    if flags.intersects(F::IN | F::HUP | F::ERR | F::PRI) {
        m |= READ;
    }
    if flags.intersects(F::OUT | F::HUP | F::ERR) {
        m |= WRITE;
    }
    m
}

/// Seconds to epoll's milliseconds, rounded up as asyncio's selectors do,
/// so a timer is never woken for early.
fn timeout_ms(timeout: Option<f64>) -> i32 {
    match timeout {
        None => -1,
        Some(s) if s.is_nan() || s <= 0.0 => 0,
        Some(s) => (s * 1000.0).ceil().min(MAX_TIMEOUT_MS) as i32,
    }
}

fn interest(fd: RawFd, events: u32) -> Event {
    debug_assert!(fd as usize != WAKE_KEY);
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
        let poller = polling::Poller::new()?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(std::io::Error::from)?;
        fd::register_level(
            &poller,
            rustix::fd::AsRawFd::as_raw_fd(&wake),
            Event::readable(WAKE_KEY),
        )?;
        Ok(Poller { poller, wake })
    }

    fn register(&self, fd: RawFd, events: u32) -> PyResult<()> {
        check_fd(fd)?;
        fd::register_level(&self.poller, fd, interest(fd, events))?;
        Ok(())
    }

    fn modify(&self, fd: RawFd, events: u32) -> PyResult<()> {
        check_fd(fd)?;
        fd::with_borrowed(fd, |b| {
            self.poller
                .modify_with_mode(b, interest(fd, events), PollMode::Level)
        })?;
        Ok(())
    }

    fn unregister(&self, fd: RawFd) -> PyResult<()> {
        check_fd(fd)?;
        fd::with_borrowed(fd, |b| self.poller.delete(b))?;
        Ok(())
    }

    /// Waits for readiness with the GIL released; `None` waits forever, so
    /// an idle loop makes no wake-ups at all.
    #[pyo3(signature = (timeout = None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<(RawFd, u32)>> {
        let ms = timeout_ms(timeout);
        let result = py.detach(|| -> std::io::Result<Vec<(RawFd, u32)>> {
            // epoll events hold a raw pointer and are not Send, so the
            // buffer lives on this side of the GIL release.
            let mut events: Vec<epoll::Event> = Vec::with_capacity(MAX_EVENTS);
            let timespec = rustix::time::Timespec {
                tv_sec: i64::from(ms.max(0)) / 1000,
                tv_nsec: (i64::from(ms.max(0)) % 1000) * 1_000_000,
            };
            let limit = if ms < 0 { None } else { Some(&timespec) };
            match epoll::wait(
                self.poller.as_fd(),
                rustix::buffer::spare_capacity(&mut events),
                limit,
            ) {
                Ok(_) => {}
                // A signal: return so Python runs its handlers, as
                // selectors do since PEP 475.
                Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            }
            let mut ready = Vec::with_capacity(events.len());
            for e in events.iter() {
                let key = e.data.u64() as usize;
                if key == WAKE_KEY {
                    // Resets the eventfd's counter. Failing means another
                    // poll reset it first (EAGAIN): nothing left to do.
                    let mut buf = [0u8; 8];
                    rustix::io::read(&self.wake, &mut buf).ok();
                } else if key != usize::MAX {
                    ready.push((key as RawFd, mask(e.flags)));
                }
            }
            Ok(ready)
        });
        py.check_signals()?;
        Ok(result?)
    }

    /// Wakes a `poll` in progress (or the next one), from any thread.
    fn notify(&self) -> PyResult<()> {
        match rustix::io::write(&self.wake, &1u64.to_ne_bytes()) {
            // The counter is saturated: a wake-up is already pending.
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(std::io::Error::from(e).into()),
        }
    }

    /// Kept for the selector protocol; the epoll fd closes with the object.
    fn close(&self) {}

    /// In a forked child: lets go of the epoll instance shared with the
    /// parent. Its descriptor is pointed at `/dev/null` instead of being
    /// closed (the `polling::Poller` still owns the number and will close
    /// it) and nothing is unregistered: `EPOLL_CTL_DEL` in the child would
    /// remove the parent's registrations, which live in the shared instance.
    /// Afterwards every call on this poller fails with an `OSError`.
    fn detach(&self) -> PyResult<()> {
        let null = std::fs::OpenOptions::new().read(true).open("/dev/null")?;
        fd::redirect(&null, rustix::fd::AsRawFd::as_raw_fd(&self.poller.as_fd()))?;
        Ok(())
    }
}
