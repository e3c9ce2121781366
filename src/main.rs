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

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "pyport".into());
    let rest: Vec<std::ffi::OsString> = args.collect();
    match rest.first().and_then(|a| a.to_str()) {
        Some("port") => {
            pyport::lifeline::arm();
            pyport::lifeline::watch(PORT_IN_FD, HANGUP_GRACE);
            let opts: Vec<String> = rest[1..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let code = pyport::interp::run_port(&opts);
            pyport::lifeline::exit(code);
        }
        Some("run") => std::process::exit(pyport::interp::run_python(program, rest[1..].to_vec())),
        _ => std::process::exit(pyport::interp::run_python(program, rest)),
    }
}
