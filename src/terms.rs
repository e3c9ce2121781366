//! Erlang terms with no native Python counterpart: `erlang.Atom`,
//! `erlang.Pid`, `erlang.Ref`. Pids and refs keep every field of the
//! external format, so they travel back to Erlang as the very same term.

use pyo3::prelude::*;

/// Longest atom the runtime accepts, in characters.
pub const MAX_ATOM_CHARS: usize = 255;

/// An Erlang atom. Plain atoms arrive in Python as `str`; this class lets
/// Python send one back (`erlang.Atom("ok")`).
#[pyclass(frozen, eq, hash, ord, module = "erlang", name = "Atom")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom {
    #[pyo3(get)]
    pub name: String,
}

#[pymethods]
impl Atom {
    #[new]
    pub fn new(name: String) -> PyResult<Self> {
        if name.chars().count() > MAX_ATOM_CHARS {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "atom name longer than {MAX_ATOM_CHARS} characters"
            )));
        }
        Ok(Atom { name })
    }

    fn __repr__(&self) -> String {
        format!("Atom({:?})", self.name)
    }

    fn __str__(&self) -> String {
        self.name.clone()
    }
}

/// An Erlang process identifier, as received from Erlang.
#[pyclass(frozen, eq, hash, module = "erlang", name = "Pid")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pid {
    #[pyo3(get)]
    pub node: String,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

#[pymethods]
impl Pid {
    fn __repr__(&self) -> String {
        format!("Pid(<{}.{}.{}>)", self.node, self.id, self.serial)
    }
}

/// An Erlang reference, as received from Erlang.
#[pyclass(frozen, eq, hash, module = "erlang", name = "Ref")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ref {
    #[pyo3(get)]
    pub node: String,
    pub creation: u32,
    pub ids: Vec<u32>,
}

#[pymethods]
impl Ref {
    fn __repr__(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(u32::to_string).collect();
        format!("Ref(#Ref<{}.{}>)", self.node, ids.join("."))
    }
}
