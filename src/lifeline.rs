//! The port never outlives its owner (DESIGN.md, "Lifetime").
//!
//! The main thread notices EOF on fd 3 and shuts down cleanly. These are
//! the backstops for when it cannot: Python stuck in a C call holding the
//! GIL, or the whole BEAM killed.

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{BorrowedFd, RawFd};
use rustix::process::{getpid, Pid, Signal};
use std::time::Duration;

/// Asks the kernel to kill this process when its parent (the Erlang VM's
/// child-setup process) dies, and makes the port the leader of its own
/// process group so its children can be found and stopped with it.
pub fn arm() {
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        log::warn!("cannot set the parent-death signal: {e}");
    }
    if let Err(e) = rustix::process::setsid() {
        log::debug!("setsid: {e} (already a session leader?)");
    }
}

/// Watches `fd` (the packet input) for hang-up without reading it and
/// without the GIL; once the peer is gone, gives the main thread `grace`
/// to exit cleanly, then stops the process and its children.
pub fn watch(fd: RawFd, grace: Duration) {
    let spawned = std::thread::Builder::new()
        .name("pyport-lifeline".into())
        .spawn(move || {
            // SAFETY: fd 3 stays open for the life of the process: the
            // channel works on a duplicate and nothing closes the original.
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
            std::thread::sleep(grace);
            log::warn!("Erlang closed the port and Python did not stop within {grace:?}; exiting");
            exit(0);
        });
    if let Err(e) = spawned {
        log::error!("cannot start the lifeline thread: {e}");
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
