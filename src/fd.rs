//! Raw file descriptor handling, in one place: the port works with
//! descriptor numbers it did not open (fds 1 to 4, and the ones Python's
//! selectors register), which Rust's I/O safety can only take on trust.
//! Everything here is a safe function; the `unsafe` is confined to this
//! module, each block with the reason it holds.

use rustix::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use rustix::fs::OFlags;
use rustix::io::FdFlags;
use std::io;

/// Runs `f` with `fd` borrowed for the duration of the call.
///
/// For system calls on a descriptor number handed in from outside (by
/// Python, or by the Erlang VM): if it is not open, the kernel answers
/// EBADF, which `f` reports like any other error; a negative number is
/// EBADF without a call.
pub fn with_borrowed<T>(
    fd: RawFd,
    f: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>,
) -> io::Result<T> {
    if fd < 0 {
        return Err(rustix::io::Errno::BADF.into());
    }
    // SAFETY: `fd` is not -1 (which `borrow_raw` forbids); the borrow
    // cannot outlive `f`, and within it the descriptor is only passed to
    // system calls, which check it themselves.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    f(borrowed)
}

/// True when `fd` is an open descriptor.
pub fn is_open(fd: RawFd) -> bool {
    with_borrowed(fd, |b| Ok(rustix::io::fcntl_getfd(b)?)).is_ok()
}

/// A close-on-exec duplicate of `fd`, which stays open and becomes
/// close-on-exec as well, so children never inherit either.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    dup_cloexec_from(fd, 0)
}

/// As [`dup_cloexec`], numbered `min` or the lowest free number above it.
pub fn dup_cloexec_from(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    with_borrowed(fd, |b| {
        rustix::io::fcntl_setfd(b, FdFlags::CLOEXEC)?;
        Ok(rustix::io::fcntl_dupfd_cloexec(b, min.max(0))?)
    })
}

/// A number to move a descriptor to, so that code guessing or iterating
/// descriptor numbers from the bottom is unlikely to meet it: random, in
/// the upper part of what `RLIMIT_NOFILE` allows (at most 4096, to keep the
/// kernel's descriptor table small), and 10 when the limit leaves no room.
pub fn hidden_base() -> RawFd {
    use std::hash::{BuildHasher, Hasher};
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    // Room for the two channel descriptors and the channel's duplicates.
    let top = soft.min(4096).saturating_sub(16);
    let bottom = top / 2;
    if bottom < 16 {
        return 10;
    }
    // RandomState is seeded from the OS: a different base in every port.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bottom + random % (top - bottom)) as RawFd
}

/// Makes descriptor number `target` refer to `/dev/null`, opened for
/// reading and writing: a stray write to it succeeds and goes nowhere, a
/// read sees end-of-file, and the number is not reused by anything else.
pub fn point_at_dev_null(target: RawFd) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    redirect(&null, target)
}

/// Puts `fd` in non-blocking mode.
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// Makes descriptor number `target` (a standard stream) refer to what
/// `src` refers to, for good.
pub fn redirect(src: impl AsFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 onto `target` replaces whatever it was, which is the
    // point; the OwnedFd is forgotten below, never dropped, so this
    // function never closes `target`, open or not.
    let mut target_fd = unsafe { OwnedFd::from_raw_fd(target) };
    let result = rustix::io::dup2(src.as_fd(), &mut target_fd);
    std::mem::forget(target_fd);
    Ok(result?)
}

/// Adds `fd` to `poller`'s epoll set, level-triggered.
///
/// `polling` asks that the descriptor stay open while registered. The
/// Poller's own eventfd is dropped with it; the selector above it
/// unregisters before asyncio closes a transport's fd. Should a caller
/// close one first, Linux epoll drops a closed descriptor by itself: a
/// stale registration, never a use of freed memory.
pub fn register_level(
    poller: &polling::Poller,
    fd: RawFd,
    interest: polling::Event,
) -> io::Result<()> {
    // SAFETY: as above; `polling` only passes `fd` to epoll_ctl.
    unsafe { poller.add_with_mode(fd, interest, polling::PollMode::Level) }
}

/// The capacity the channel's pipes are raised to once a message larger
/// than the default 64 KiB pipe crosses them: a 1 MiB payload then goes
/// in one write and one read instead of sixteen rounds of wake-ups.
/// Only then: raised from the start, the pipes cost the many-small-tasks
/// scenarios about 10% here (docs/performance.md). Bounded by
/// `/proc/sys/fs/pipe-max-size`, and well under the per-user pipe budget
/// (`pipe-user-pages-soft`, 64 MiB by default).
pub const LARGE_PIPE_SIZE: usize = 1 << 20;

/// Raises the capacity of the pipe `fd` to `want`, or to the system
/// maximum when that is lower. Returns the capacity the kernel granted;
/// a descriptor that is not a pipe (a socketpair, a file in tests) is an
/// error the caller may ignore: the channel works at any capacity.
pub fn grow_pipe(fd: RawFd, want: usize) -> io::Result<usize> {
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(want);
    with_borrowed(fd, |b| {
        let now = rustix::pipe::fcntl_getpipe_size(b)?;
        let size = want.min(max);
        if size <= now {
            return Ok(now);
        }
        Ok(rustix::pipe::fcntl_setpipe_size(b, size)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsRawFd;

    #[test]
    fn a_pipe_grows_to_what_is_asked_within_the_system_maximum() {
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        let before = rustix::pipe::fcntl_getpipe_size(&read_end).unwrap();
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let granted = grow_pipe(write_end.as_raw_fd(), LARGE_PIPE_SIZE).unwrap();
        assert!(granted >= LARGE_PIPE_SIZE.min(max).max(before), "{granted}");
        // One pipe: the size set through one end is the other's too.
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&read_end).unwrap(),
            granted
        );
        // Never shrunk by a smaller request.
        assert_eq!(grow_pipe(read_end.as_raw_fd(), 4096).unwrap(), granted);
    }

    #[test]
    fn growing_what_is_not_a_pipe_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(grow_pipe(file.as_raw_fd(), LARGE_PIPE_SIZE).is_err());
        assert!(grow_pipe(-1, LARGE_PIPE_SIZE).is_err());
    }

    #[test]
    fn a_duplicate_is_a_new_close_on_exec_descriptor() {
        let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
        let dup = dup_cloexec(read_end.as_raw_fd()).unwrap();
        assert_ne!(dup.as_raw_fd(), read_end.as_raw_fd());
        assert!(rustix::io::fcntl_getfd(&dup)
            .unwrap()
            .contains(FdFlags::CLOEXEC));
        assert!(rustix::io::fcntl_getfd(&read_end)
            .unwrap()
            .contains(FdFlags::CLOEXEC));
        set_nonblocking(&dup).unwrap();
        assert!(rustix::fs::fcntl_getfl(&dup)
            .unwrap()
            .contains(OFlags::NONBLOCK));
    }

    #[test]
    fn a_descriptor_moves_above_a_base_and_its_number_points_at_dev_null() {
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        let base = hidden_base();
        assert!(base >= 10);
        let moved = dup_cloexec_from(read_end.as_raw_fd(), base).unwrap();
        assert!(moved.as_raw_fd() >= base);
        point_at_dev_null(read_end.as_raw_fd()).unwrap();
        // The old number reads /dev/null (EOF), the moved one the pipe.
        rustix::io::write(&write_end, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(rustix::io::read(&read_end, &mut buf).unwrap(), 0);
        assert_eq!(rustix::io::read(&moved, &mut buf).unwrap(), 1);
        assert_eq!(&buf, b"x");
    }

    #[test]
    fn closed_and_negative_descriptors_are_reported_not_used() {
        let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
        assert!(is_open(read_end.as_raw_fd()));
        // Far above any descriptor the tests open (numbers are allocated
        // lowest first), so never open, even with tests in parallel.
        let unused = 999_999;
        assert!(!is_open(unused));
        assert!(!is_open(-1));
        assert_eq!(
            dup_cloexec(unused).unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error())
        );
        assert!(dup_cloexec(-1).is_err());
    }
}
