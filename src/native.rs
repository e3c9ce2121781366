//! The `_pyport` native module, importable inside the executable only.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Python object -> `term_to_binary` bytes.
#[pyfunction]
fn encode<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    crate::etf::encode::encode_term(obj, &mut out)?;
    Ok(PyBytes::new(py, &out))
}

/// `term_to_binary` bytes -> Python object.
#[pyfunction]
fn decode<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    Ok(crate::etf::decode::decode_term(py, data)?)
}

/// `_pyport.set_none_atom(name)`: what `None` becomes in every term the
/// port encodes from now on (`"none"`, `"nil"` or `"undefined"`).
#[pyfunction]
fn set_none_atom(name: &str) -> PyResult<()> {
    if crate::etf::encode::none_atom::set_port(name) {
        Ok(())
    } else {
        Err(pyo3::exceptions::PyValueError::new_err(format!(
            "none_atom must be one of {:?}, not {name:?}",
            crate::etf::encode::none_atom::names()
        )))
    }
}

#[pymodule]
pub fn _pyport(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<crate::terms::Atom>()?;
    m.add_class::<crate::terms::Pid>()?;
    m.add_class::<crate::terms::Ref>()?;
    m.add_class::<crate::poller::Poller>()?;
    m.add_class::<crate::sched::LoopCore>()?;
    m.add_class::<crate::sched::ReadyView>()?;
    m.add_class::<crate::sched::ScheduledView>()?;
    m.add_class::<crate::sched_handle::Handle>()?;
    m.add_class::<crate::sched_handle::TimerHandle>()?;
    m.add_class::<crate::channel::Channel>()?;
    m.add_class::<crate::capture::OutputCapture>()?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(set_none_atom, m)?)?;
    m.add_function(wrap_pyfunction!(crate::terms::set_max_atoms, m)?)?;
    m.add_function(wrap_pyfunction!(crate::terms::atom_usage, m)?)?;
    m.add_function(wrap_pyfunction!(crate::watchdog::arm_deadline, m)?)?;
    m.add_function(wrap_pyfunction!(crate::watchdog::disarm_deadline, m)?)?;
    m.add_function(wrap_pyfunction!(crate::watchdog::suspend_deadline, m)?)?;
    m.add(
        "TaskDeadline",
        m.py().get_type::<crate::watchdog::TaskDeadline>(),
    )?;
    m.add(
        "AtomLimitError",
        m.py().get_type::<crate::terms::AtomLimitError>(),
    )?;
    m.add("DEFAULT_MAX_ATOMS", crate::terms::DEFAULT_MAX_ATOMS)?;
    m.add("MAX_DEPTH", crate::etf::MAX_DEPTH)?;
    m.add("MAX_ATOM_CHARS", crate::terms::MAX_ATOM_CHARS)?;
    m.add("PROTOCOL_VERSION", crate::protocol::PROTOCOL_VERSION)?;
    // The Python the executable was linked against (build.rs).
    m.add("BUILT_PYTHON_LIB_DIR", env!("PYPORT_BUILT_PYTHON_LIB_DIR"))?;
    m.add("BUILT_PYTHON_VERSION", env!("PYPORT_BUILT_PYTHON_VERSION"))?;
    Ok(())
}
