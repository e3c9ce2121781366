//! The port never outlives its owner (DESIGN.md, "Lifetime").
//!
//! The main thread notices EOF on the packet input (fd 3, moved to another
//! descriptor at start-up) and shuts down cleanly. These are the backstops
//! for when it cannot: Python stuck in a C call holding the GIL, or the
//! whole BEAM killed.

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{BorrowedFd, RawFd};
use rustix::process::{getpid, Pid, Signal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set once the main thread has read EOF on the packet input: Python is
/// alive and shutting down by itself, so the watcher gives it the full
/// grace. Unset after the hang-up means Python is stuck (a C call, a busy
/// loop): that is how Erlang kills an unresponsive port, by closing it.
static EOF_SEEN: AtomicBool = AtomicBool::new(false);

/// How long the main thread has to read the hang-up before the watcher
/// takes it for stuck. A loop that is running reads its input within one
/// iteration.
const NOTICE_WINDOW: Duration = Duration::from_millis(100);

/// Called by the channel when its read of the packet input sees EOF.
pub fn eof_seen() {
    EOF_SEEN.store(true, Ordering::Release);
}

/// Makes the port the leader of its own process group, so its children
/// can be found and stopped with it, and asks the kernel to signal it when
/// its parent (the Erlang VM's child-setup process) dies. That signal's
/// handler SIGKILLs the whole group at once: a plain SIGKILL of the port
/// alone would leave its subprocesses behind, orphaned.
pub fn arm() {
    let leader = match rustix::process::setsid() {
        Ok(_) => true,
        Err(e) => {
            log::debug!("setsid: {e} (already a session leader?)");
            rustix::process::getpgrp() == getpid()
        }
    };
    let signal = if leader && install_group_killer() {
        parent_death_signal()
    } else {
        libc::SIGKILL
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a valid signal number.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) } != 0 {
        log::warn!(
            "cannot set the parent-death signal: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The parent-death signal: the highest real-time signal, which neither
/// Python nor the usual libraries handle (a program that installs its own
/// handler for it gives up this backstop, not the input watcher).
fn parent_death_signal() -> libc::c_int {
    libc::SIGRTMAX()
}

/// Runs in signal context (or on the watcher thread): only
/// async-signal-safe calls.
extern "C" fn kill_own_group(_signal: libc::c_int) {
    // SAFETY: getpid, getpgrp and kill are async-signal-safe; pid 0 means
    // "every process in my group", and the group is ours alone (checked).
    unsafe {
        if libc::getpgrp() == libc::getpid() {
            libc::kill(0, libc::SIGKILL);
        }
        libc::_exit(128 + libc::SIGKILL);
    }
}

fn install_group_killer() -> bool {
    // SAFETY: a zeroed sigaction with a handler that only makes
    // async-signal-safe calls; the mask blocks everything while it runs.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = kill_own_group as *const () as libc::sighandler_t;
        libc::sigfillset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        if libc::sigaction(parent_death_signal(), &action, std::ptr::null_mut()) != 0 {
            log::warn!(
                "cannot install the parent-death handler: {}",
                std::io::Error::last_os_error()
            );
            return false;
        }
    }
    true
}

/// Watches `fd` (the packet input) for hang-up without reading it and
/// without the GIL. Once the peer is gone: a main thread that has read the
/// EOF gets `grace` to exit cleanly, then the process and its children are
/// stopped; one that has not read it within `NOTICE_WINDOW` is stuck, and
/// the process group is SIGKILLed at once.
pub fn watch(fd: RawFd, grace: Duration) {
    let spawned = std::thread::Builder::new()
        .name("pyport-lifeline".into())
        .spawn(move || {
            // SAFETY: the watched descriptor (the packet input as `main`
            // moved it) stays open for the life of the process: the channel
            // works on a duplicate and nothing closes this one.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            loop {
                // No requested events: poll returns only on hang-up or error.
                let mut fds = [PollFd::new(&borrowed, PollFlags::empty())];
                match poll(&mut fds, None) {
                    Ok(_) => {
                        let got = fds[0].revents();
                        if got.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                            break;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => {
                        log::error!("lifeline poll failed: {e}");
                        return;
                    }
                }
            }
            let hung_up = Instant::now();
            if !noticed(&EOF_SEEN, NOTICE_WINDOW.min(grace)) {
                log::warn!("Erlang closed the port and Python did not notice; killing it");
                kill_own_group(libc::SIGKILL);
            }
            std::thread::sleep(grace.saturating_sub(hung_up.elapsed()));
            log::warn!("Erlang closed the port and Python did not stop within {grace:?}; exiting");
            exit(0);
        });
    if let Err(e) = spawned {
        log::error!("cannot start the lifeline thread: {e}");
    }
}

/// Whether `flag` is set within `window`, checked every few milliseconds
/// (the main thread sets it once, long after the watcher started waiting).
fn noticed(flag: &AtomicBool, window: Duration) -> bool {
    let until = Instant::now() + window;
    loop {
        if flag.load(Ordering::Acquire) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(5)));
    }
}

/// Ends the process, taking the children in its process group along.
pub fn exit(code: i32) -> ! {
    kill_group_members();
    std::process::exit(code)
}

/// SIGKILLs every other process in this process's group, when this process
/// leads the group (never when it shares the Erlang VM's group).
fn kill_group_members() {
    let me = getpid();
    if rustix::process::getpgrp() != me {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me.as_raw_nonzero().get() {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let pgrp = rest
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<i32>().ok());
        if pgrp == Some(me.as_raw_nonzero().get()) {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_flag_is_noticed_at_once() {
        let flag = AtomicBool::new(true);
        let start = Instant::now();
        assert!(noticed(&flag, Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_unset_flag_is_not_noticed_after_the_window() {
        let flag = AtomicBool::new(false);
        let start = Instant::now();
        assert!(!noticed(&flag, Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_flag_set_during_the_window_is_noticed() {
        let flag = std::sync::Arc::new(AtomicBool::new(false));
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                flag.store(true, Ordering::Release);
            })
        };
        assert!(noticed(&flag, Duration::from_secs(10)));
        setter.join().unwrap();
    }
}
