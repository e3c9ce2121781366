//! Bakes the directory of `libpython3.x.so` into the executable's rpath, so
//! `priv/pyport` starts on a machine with no `LD_LIBRARY_PATH` set by hand.
//!
//! It also records which Python the executable is built against
//! (`_pyport.BUILT_PYTHON_LIB_DIR`, `_pyport.BUILT_PYTHON_VERSION`), so that
//! the port can tell at start whether the libpython the loader found is
//! that one (docs/operations.md, "The interpreter check").
fn main() {
    let config = pyo3_build_config::get();
    let dir = config.lib_dir().unwrap_or("");
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-env=PYPORT_BUILT_PYTHON_LIB_DIR={dir}");
    println!(
        "cargo:rustc-env=PYPORT_BUILT_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
