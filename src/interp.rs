//! Starting the embedded interpreter, in port mode or as plain `python3`.

use pyo3::prelude::*;
use pyo3::types::PyList;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Where standalone mode finds the `erlang` package: `PYPORT_PYTHON_DIR`
/// when set (to try another copy of the package by hand), else
/// [`own_python_dir`].
pub fn python_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PYPORT_PYTHON_DIR") {
        return PathBuf::from(dir);
    }
    own_python_dir()
}

/// The `erlang` Python package lives in `priv/python`, beside the
/// executable in `priv/`, in development and in a release alike. Port mode
/// uses only this one: the port inherits the node's environment, and an
/// inherited variable must not replace the package that speaks the protocol.
pub fn own_python_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(|p| p.join("python")))
        .unwrap_or_else(|| PathBuf::from("priv/python"))
}

/// Port mode: run `erlang._main.main(args)` and return its exit status.
pub fn run_port(args: &[String]) -> i32 {
    pyo3::append_to_inittab!(_pyport_init);
    Python::initialize();
    Python::attach(|py| match port_main(py, args) {
        Ok(code) => code,
        Err(e) => {
            if e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
                return e
                    .value(py)
                    .getattr("code")
                    .and_then(|c| c.extract::<i32>())
                    .unwrap_or(1);
            }
            e.print(py);
            1
        }
    })
}

fn port_main(py: Python<'_>, args: &[String]) -> PyResult<i32> {
    let sys = py.import("sys")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    // First, ahead of PYTHONPATH's entries (Python put those in at start-up).
    path.insert(0, own_python_dir().to_string_lossy().into_owned())?;
    let main = py.import("erlang._main")?;
    main.call_method1("main", (args.to_vec(),))?.extract()
}

/// Standalone mode: exactly `python3 ARGS...` (`-m`, scripts, `-c`, exit
/// status, tracebacks), with `_pyport` built in and the `erlang` package
/// on the path.
pub fn run_python(program: OsString, args: Vec<OsString>) -> i32 {
    pyo3::append_to_inittab!(_pyport_init);
    let mut pythonpath = python_dir().into_os_string();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        pythonpath.push(":");
        pythonpath.push(old);
    }
    std::env::set_var("PYTHONPATH", pythonpath);
    let argv: Vec<CString> = std::iter::once(program)
        .chain(args)
        .map(|a| CString::new(a.into_vec()).unwrap_or_default())
        .collect();
    let mut ptrs: Vec<*mut std::os::raw::c_char> =
        argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    ptrs.push(std::ptr::null_mut());
    // SAFETY: `ptrs` holds argc valid NUL-terminated strings (owned by
    // `argv`, alive until this returns) followed by a null pointer, which
    // is what `Py_BytesMain` expects of a C `main`'s argv.
    unsafe { pyo3::ffi::Py_BytesMain(argv.len() as i32, ptrs.as_mut_ptr()) }
}

/// The module `append_to_inittab!` registers, under its Python name.
#[allow(non_snake_case)]
mod _pyport_init {
    pub use crate::native::_pyport::*;
}
