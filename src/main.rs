//! `pyport`: the port executable.
//!
//! `pyport port [OPTIONS]` talks to Erlang on fds 3/4; anything else runs
//! the embedded interpreter exactly like `python3` (`pyport run -m mod`,
//! `pyport run script.py`), so that `sys.executable` works for children.

use std::time::Duration;

/// How long the main thread has to exit by itself after Erlang hangs up.
const HANGUP_GRACE: Duration = Duration::from_millis(300);
/// Erlang's end of the packet channel.
const PORT_IN_FD: i32 = 3;
const PORT_OUT_FD: i32 = 4;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "pyport".into());
    let rest: Vec<std::ffi::OsString> = args.collect();
    match rest.first().and_then(|a| a.to_str()) {
        Some("port") => {
            if let Err(e) = check_port_fds() {
                eprintln!("pyport: {e}");
                std::process::exit(2);
            }
            let (fd_in, fd_out) = match hide_port_fds() {
                Ok(fds) => fds,
                Err(e) => {
                    eprintln!("pyport: {e}");
                    std::process::exit(2);
                }
            };
            pyport::lifeline::arm();
            pyport::lifeline::watch(fd_in, HANGUP_GRACE);
            let mut opts: Vec<String> = rest[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            opts.push("--channel-fds".into());
            opts.push(format!("{fd_in},{fd_out}"));
            if let Err(e) = redirect_startup_output(&mut opts) {
                eprintln!("pyport: {e}");
                std::process::exit(2);
            }
            if let Err(e) = apply_memory_limit(&mut opts) {
                eprintln!("pyport: {e}");
                std::process::exit(2);
            }
            let code = pyport::interp::run_port(&opts);
            pyport::lifeline::exit(code);
        }
        Some("run") => std::process::exit(pyport::interp::run_python(program, rest[1..].to_vec())),
        _ => std::process::exit(pyport::interp::run_python(program, rest)),
    }
}

/// `--stderr-file PATH` sends fds 1 and 2 to that file (created, mode
/// 0600) until Python installs its output capture: whatever is written
/// before — a fatal error while Python initialises, a traceback from
/// importing the port's own code — is then in the file, for the Erlang side
/// to read when the port fails to start. The option is consumed here.
fn redirect_startup_output(opts: &mut Vec<String>) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(at) = opts.iter().position(|o| o == "--stderr-file") else {
        return Ok(());
    };
    let path = opts
        .get(at + 1)
        .cloned()
        .ok_or("--stderr-file needs a path")?;
    opts.drain(at..at + 2);
    // A fresh file only, never through a symlink: the worker names a new
    // path in its private directory, so anything already there was planted.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open --stderr-file {path}: {e}"))?;
    for target in [1, 2] {
        pyport::fd::redirect(&file, target)
            .map_err(|e| format!("cannot redirect fd {target}: {e}"))?;
    }
    Ok(())
}

/// `--max-memory-mb N` caps the data the port may allocate (RLIMIT_DATA:
/// heap and private writable mappings, which is where every Python object
/// and every encoder buffer lives), so a runaway allocation raises
/// MemoryError in Python instead of growing the port without bound. Not the
/// address space: the interpreter reserves a few hundred MB of it at start
/// (shared libraries, thread stacks' guard areas) that use no memory, and
/// capping it left far less room for data than N suggests.
/// The option is consumed here; the rest go to Python.
fn apply_memory_limit(opts: &mut Vec<String>) -> Result<(), String> {
    let Some(at) = opts.iter().position(|o| o == "--max-memory-mb") else {
        return Ok(());
    };
    let mb: u64 = opts
        .get(at + 1)
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .ok_or("--max-memory-mb needs a positive number of MiB")?;
    opts.drain(at..at + 2);
    let bytes = mb.saturating_mul(1 << 20);
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    rustix::process::setrlimit(rustix::process::Resource::Data, limit)
        .map_err(|e| format!("cannot set the memory limit: {e}"))
}

/// Moves the packet channel off fds 3 and 4, which any code may guess, to
/// close-on-exec descriptors at a random number (`fd::hidden_base`), and
/// points 3 and 4 at `/dev/null`: a task writing to fd 4 by accident writes
/// nowhere instead of into the packet stream. The moved descriptors stay
/// open for the life of the process (the lifeline watches the input one).
fn hide_port_fds() -> Result<(i32, i32), String> {
    use rustix::fd::IntoRawFd;
    let base = pyport::fd::hidden_base();
    let moved_in = pyport::fd::dup_cloexec_from(PORT_IN_FD, base)
        .map_err(|e| format!("cannot move fd {PORT_IN_FD}: {e}"))?;
    let moved_out = pyport::fd::dup_cloexec_from(PORT_OUT_FD, base)
        .map_err(|e| format!("cannot move fd {PORT_OUT_FD}: {e}"))?;
    for fd in [PORT_IN_FD, PORT_OUT_FD] {
        pyport::fd::point_at_dev_null(fd)
            .map_err(|e| format!("cannot point fd {fd} at /dev/null: {e}"))?;
    }
    Ok((moved_in.into_raw_fd(), moved_out.into_raw_fd()))
}

/// Port mode needs fds 3 and 4 open before Python starts, or Python's own
/// files would take those numbers and be mistaken for the channel.
fn check_port_fds() -> Result<(), String> {
    match [PORT_IN_FD, PORT_OUT_FD]
        .into_iter()
        .find(|&fd| !pyport::fd::is_open(fd))
    {
        Some(fd) => Err(format!("fd {fd} is not open: `pyport port` expects the packet channel on fds 3 and 4 (open_port with nouse_stdio)")),
        None => Ok(()),
    }
}
