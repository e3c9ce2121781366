//! Erlang terms with no native Python counterpart: `erlang.Atom`,
//! `erlang.Pid`, `erlang.Ref`. Pids and refs keep every field of the
//! external format, so they travel back to Erlang as the very same term.

use pyo3::prelude::*;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Longest atom the runtime accepts, in characters.
pub const MAX_ATOM_CHARS: usize = 255;

/// Distinct atom names Python may create by default. Every name becomes an
/// atom on the Erlang side when the term is decoded there, and atoms are
/// never garbage collected, so the port bounds how many it can mint.
pub const DEFAULT_MAX_ATOMS: usize = 10_000;

pyo3::create_exception!(
    _pyport,
    AtomLimitError,
    pyo3::exceptions::PyRuntimeError,
    "Python tried to create more distinct Erlang atoms than the port allows."
);

/// The distinct names Python has made atoms of, and the bound on them.
#[derive(Debug)]
pub struct AtomBudget {
    names: BTreeSet<String>,
    max: usize,
}

impl AtomBudget {
    pub const fn new(max: usize) -> Self {
        AtomBudget {
            names: BTreeSet::new(),
            max,
        }
    }

    /// Admits `name`: a name seen before is always fine; a new one only
    /// while fewer than `max` names are known. `Err(max)` otherwise.
    pub fn admit(&mut self, name: &str) -> Result<(), usize> {
        if self.names.contains(name) {
            return Ok(());
        }
        if self.names.len() >= self.max {
            return Err(self.max);
        }
        self.names.insert(name.to_owned());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

static BUDGET: Mutex<AtomBudget> = Mutex::new(AtomBudget::new(DEFAULT_MAX_ATOMS));

fn budget() -> std::sync::MutexGuard<'static, AtomBudget> {
    BUDGET.lock().unwrap_or_else(|p| p.into_inner())
}

/// `_pyport.set_max_atoms(n)`: the bound on distinct atom names Python may
/// create from now on (names already created stay usable).
#[pyfunction]
pub fn set_max_atoms(max: usize) {
    budget().set_max(max);
}

/// `_pyport.atom_usage()`: `(distinct names created, bound)`.
#[pyfunction]
pub fn atom_usage() -> (usize, usize) {
    let b = budget();
    (b.len(), b.max())
}

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
        if let Err(max) = budget().admit(&name) {
            return Err(AtomLimitError::new_err(format!(
                "cannot create atom {name:?}: Python has already created {max} distinct \
                 atoms, the port's limit (application env max_atoms)"
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

#[cfg(test)]
mod tests {
    use super::AtomBudget;

    #[test]
    fn the_budget_admits_known_names_and_refuses_new_ones_beyond_the_bound() {
        let mut b = AtomBudget::new(2);
        assert_eq!(b.admit("a"), Ok(()));
        assert_eq!(b.admit("b"), Ok(()));
        assert_eq!(b.admit("a"), Ok(()));
        assert_eq!(b.admit("c"), Err(2));
        assert_eq!(b.len(), 2);
        b.set_max(3);
        assert_eq!(b.admit("c"), Ok(()));
        assert_eq!(b.admit("d"), Err(3));
        b.set_max(0);
        assert_eq!(b.admit("b"), Ok(()), "known names stay usable");
    }
}
