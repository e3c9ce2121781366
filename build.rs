//! Bakes the directory of `libpython3.x.so` into the executable's rpath, so
//! `priv/pyport` starts on a machine with no `LD_LIBRARY_PATH` set by hand.
fn main() {
    let config = pyo3_build_config::get();
    if let Some(dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
