//! `_pyport.Handle` and `_pyport.TimerHandle`: the callbacks the native
//! loop core (`src/sched.rs`) schedules.
//!
//! They behave as `asyncio.Handle` / `asyncio.TimerHandle` do for code
//! holding them (`cancel()`, `cancelled()`, `when()`, ordering of timers,
//! the stdlib's private attributes read by asyncio itself, the repr, the
//! debug-mode source traceback), but running one costs no Python frame: the
//! callback is called from Rust inside its `contextvars.Context`
//! (`PyContext_Enter`/`PyContext_Exit`, what `Context.run` does).
//! They are not subclasses of the stdlib classes (a Rust class cannot
//! extend a Python one); that is listed in docs/event-loop.md.

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::ffi;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};
use pyo3::PyTraverseError;

static FORMAT_CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXTRACT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `asyncio.format_helpers._format_callback_source(callback, args)`.
fn format_callback<'py>(
    py: Python<'py>,
    callback: &Py<PyAny>,
    args: &Py<PyTuple>,
) -> PyResult<String> {
    let f = FORMAT_CALLBACK.import(py, "asyncio.format_helpers", "_format_callback_source")?;
    f.call1((callback, args))?.extract()
}

/// The stack of the Python code calling into the loop, as the stdlib's
/// handles record it in debug mode (innermost frame last).
pub(crate) fn source_traceback(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let extract = EXTRACT_STACK.import(py, "asyncio.format_helpers", "extract_stack")?;
    let frame = py.import("sys")?.call_method1("_getframe", (0,))?;
    Ok(extract.call1((frame,))?.unbind())
}

/// `SystemExit` and `KeyboardInterrupt` leave a callback; anything else is
/// reported to the loop's exception handler.
pub(crate) fn is_exit(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// A callback scheduled with `call_soon` (or a timer's base part).
#[pyclass(module = "_pyport", subclass, weakref)]
pub struct Handle {
    pub(crate) callback: Option<Py<PyAny>>,
    pub(crate) args: Option<Py<PyTuple>>,
    pub(crate) cancelled: bool,
    pub(crate) loop_: Option<Py<PyAny>>,
    pub(crate) context: Option<Py<PyAny>>,
    pub(crate) source_traceback: Option<Py<PyAny>>,
    /// The repr frozen at cancellation in debug mode, as the stdlib keeps it.
    pub(crate) repr: Option<String>,
}

impl Handle {
    /// A handle for `callback(*args)` in `context` (a copy of the current
    /// one when `None`).
    pub(crate) fn new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        loop_: Py<PyAny>,
        context: Option<Py<PyAny>>,
        debug: bool,
    ) -> PyResult<Self> {
        let context = match context {
            Some(c) if !c.is_none(py) => c,
            // SAFETY: the GIL is held; PyContext_CopyCurrent returns a new
            // reference or NULL with an exception set.
            _ => unsafe {
                Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())?.unbind()
            },
        };
        let source_traceback = if debug {
            Some(source_traceback(py)?)
        } else {
            None
        };
        Ok(Handle {
            callback: Some(callback),
            args: Some(args),
            cancelled: false,
            loop_: Some(loop_),
            context: Some(context),
            source_traceback,
            repr: None,
        })
    }

    fn repr_info(slf: &Bound<'_, Self>, when: Option<f64>) -> PyResult<Vec<String>> {
        let py = slf.py();
        let h = slf.borrow();
        let mut info = vec![slf.get_type().name()?.to_string()];
        if h.cancelled {
            info.push("cancelled".to_owned());
        }
        if let Some(when) = when {
            info.push(format!("when={}", PyFloat::new(py, when).repr()?));
        }
        if let (Some(cb), Some(args)) = (&h.callback, &h.args) {
            info.push(format_callback(py, cb, args)?);
        }
        if let Some(tb) = &h.source_traceback {
            let tb = tb.bind(py);
            if tb.is_truthy()? {
                let frame = tb.get_item(-1)?;
                info.push(format!(
                    "created at {}:{}",
                    frame.get_item(0)?,
                    frame.get_item(1)?
                ));
            }
        }
        Ok(info)
    }

    fn repr(slf: &Bound<'_, Self>, when: Option<f64>) -> PyResult<String> {
        if let Some(r) = &slf.borrow().repr {
            return Ok(r.clone());
        }
        Ok(format!("<{}>", Self::repr_info(slf, when)?.join(" ")))
    }

    /// The stdlib's `Handle.cancel()`: drop the callback and its arguments
    /// (they may hold a lot), keeping the repr in debug mode.
    fn do_cancel(slf: &Bound<'_, Self>, when: Option<f64>) -> PyResult<()> {
        let py = slf.py();
        if slf.borrow().cancelled {
            return Ok(());
        }
        slf.borrow_mut().cancelled = true;
        let lp = slf.borrow().loop_.as_ref().map(|l| l.clone_ref(py));
        if let Some(lp) = lp {
            if lp.bind(py).call_method0("get_debug")?.is_truthy()? {
                let r = Self::repr(slf, when)?;
                slf.borrow_mut().repr = Some(r);
            }
        }
        let (cb, args) = {
            let mut h = slf.borrow_mut();
            (h.callback.take(), h.args.take())
        };
        // Dropped with no borrow held: a finalizer may touch this handle.
        drop((cb, args));
        Ok(())
    }

    /// Runs the callback in its context. `Err` only for `SystemExit` and
    /// `KeyboardInterrupt` (and an exception handler that itself fails);
    /// other exceptions go to the loop's exception handler, as in
    /// `asyncio.Handle._run`. In a `nested` iteration, a context already
    /// entered further up the stack is replaced by a copy of it.
    pub(crate) fn run(slf: &Bound<'_, Self>, nested: bool) -> PyResult<()> {
        let py = slf.py();
        let (cb, args, ctx) = {
            let h = slf.borrow();
            match (&h.callback, &h.args, &h.context) {
                (Some(c), Some(a), Some(x)) => (c.clone_ref(py), a.clone_ref(py), x.clone_ref(py)),
                _ => return Ok(()),
            }
        };
        let result = enter(py, &ctx, nested).and_then(|ctx| {
            let r = cb.bind(py).call1(args.bind(py));
            // SAFETY: `ctx` was entered by this thread just above.
            if unsafe { ffi::PyContext_Exit(ctx.as_ptr()) } < 0 {
                return Err(PyErr::fetch(py));
            }
            r
        });
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_exit(py, &e) => Err(e),
            Err(e) => Self::report(slf, &cb, &args, e),
        }
    }

    fn report(
        slf: &Bound<'_, Self>,
        cb: &Py<PyAny>,
        args: &Py<PyTuple>,
        err: PyErr,
    ) -> PyResult<()> {
        let py = slf.py();
        let context = PyDict::new(py);
        context.set_item(
            "message",
            format!("Exception in callback {}", format_callback(py, cb, args)?),
        )?;
        context.set_item("exception", err.value(py))?;
        context.set_item("handle", slf)?;
        let (lp, tb) = {
            let h = slf.borrow();
            (
                h.loop_.as_ref().map(|l| l.clone_ref(py)),
                h.source_traceback.as_ref().map(|t| t.clone_ref(py)),
            )
        };
        if let Some(tb) = tb {
            if tb.bind(py).is_truthy()? {
                context.set_item("source_traceback", tb)?;
            }
        }
        if let Some(lp) = lp {
            lp.bind(py)
                .call_method1("call_exception_handler", (context,))?;
        }
        Ok(())
    }
}

/// Enters `ctx`, or a copy of it when it is already entered and `nested`.
fn enter<'py>(py: Python<'py>, ctx: &Py<PyAny>, nested: bool) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the GIL is held; PyContext_Enter type-checks its argument
    // and returns -1 with an exception set on failure.
    if unsafe { ffi::PyContext_Enter(ctx.as_ptr()) } == 0 {
        return Ok(ctx.bind(py).clone());
    }
    let err = PyErr::fetch(py);
    if !nested {
        return Err(err);
    }
    let copy = ctx.bind(py).call_method0("copy")?;
    // SAFETY: as above; `copy` is a fresh Context, never entered.
    if unsafe { ffi::PyContext_Enter(copy.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(copy)
}

#[pymethods]
impl Handle {
    /// `Handle(callback, args, loop, context=None)`, as `asyncio.Handle`.
    #[new]
    #[pyo3(signature = (callback, args, event_loop, context = None))]
    fn py_new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        event_loop: &Bound<'_, PyAny>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let debug = event_loop.call_method0("get_debug")?.is_truthy()?;
        Handle::new(
            py,
            callback,
            args,
            event_loop.clone().unbind(),
            context,
            debug,
        )
    }

    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::do_cancel(slf, None)
    }

    fn cancelled(&self) -> bool {
        self.cancelled
    }

    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.as_ref().map(|c| c.clone_ref(py))
    }

    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run(slf, false)
    }

    fn _repr_info(slf: &Bound<'_, Self>) -> PyResult<Vec<String>> {
        Self::repr_info(slf, None)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::repr(slf, None)
    }

    #[getter(_callback)]
    fn callback_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter(_args)]
    fn args_attr(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.args.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter(_cancelled)]
    fn cancelled_attr(&self) -> bool {
        self.cancelled
    }

    #[getter(_loop)]
    fn loop_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.loop_.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter(_context)]
    fn context_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter(_source_traceback)]
    fn traceback_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.as_ref().map(|c| c.clone_ref(py))
    }

    #[getter(_repr)]
    fn repr_attr(&self) -> Option<String> {
        self.repr.clone()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        visit.call(&self.loop_)?;
        visit.call(&self.context)?;
        visit.call(&self.source_traceback)?;
        Ok(())
    }

    fn __clear__(&mut self) {
        self.callback = None;
        self.args = None;
        self.loop_ = None;
        self.context = None;
        self.source_traceback = None;
    }
}

/// A callback scheduled for a time (`call_later`, `call_at`).
#[pyclass(module = "_pyport", extends = Handle)]
pub struct TimerHandle {
    pub(crate) when: f64,
    /// On the loop's heap (the stdlib's `_scheduled`).
    pub(crate) scheduled: bool,
}

impl TimerHandle {
    pub(crate) fn is_cancelled(slf: &Bound<'_, Self>) -> bool {
        slf.as_super()
            .try_borrow()
            .map(|h| h.cancelled)
            .unwrap_or(false)
    }
}

#[pymethods]
impl TimerHandle {
    fn when(&self) -> f64 {
        self.when
    }

    #[getter(_when)]
    fn when_attr(&self) -> f64 {
        self.when
    }

    #[getter(_scheduled)]
    fn scheduled_attr(&self) -> bool {
        self.scheduled
    }

    #[setter(_scheduled)]
    fn set_scheduled(&mut self, value: bool) {
        self.scheduled = value;
    }

    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let base = slf.as_super();
        let (cancelled, lp) = {
            let h = base.borrow();
            (h.cancelled, h.loop_.as_ref().map(|l| l.clone_ref(py)))
        };
        if !cancelled {
            if let Some(lp) = lp {
                lp.bind(py)
                    .call_method1("_timer_handle_cancelled", (slf,))?;
            }
        }
        let when = slf.borrow().when;
        Handle::do_cancel(base, Some(when))
    }

    fn _repr_info(slf: &Bound<'_, Self>) -> PyResult<Vec<String>> {
        let when = slf.borrow().when;
        Handle::repr_info(slf.as_super(), Some(when))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let when = slf.borrow().when;
        Handle::repr(slf.as_super(), Some(when))
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        // Equal timers must hash alike: `hash(when)`, as the stdlib does.
        PyFloat::new(py, self.when).hash()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (slf.borrow().when, other.borrow().when);
        let result = match op {
            CompareOp::Lt => a < b,
            CompareOp::Le => a < b || Self::equal(slf, other)?,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a > b || Self::equal(slf, other)?,
            CompareOp::Eq => Self::equal(slf, other)?,
            CompareOp::Ne => !Self::equal(slf, other)?,
        };
        Ok(pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind())
    }
}

impl TimerHandle {
    /// The stdlib's `TimerHandle.__eq__`: same time, callback, arguments
    /// and state.
    fn equal(a: &Bound<'_, Self>, b: &Bound<'_, Self>) -> PyResult<bool> {
        let py = a.py();
        if a.borrow().when != b.borrow().when {
            return Ok(false);
        }
        let (ha, hb) = (a.as_super().borrow(), b.as_super().borrow());
        if ha.cancelled != hb.cancelled {
            return Ok(false);
        }
        let none = || py.None();
        let cb_a = ha
            .callback
            .as_ref()
            .map_or_else(none, |c| c.clone_ref(py).into_any());
        let cb_b = hb
            .callback
            .as_ref()
            .map_or_else(none, |c| c.clone_ref(py).into_any());
        let ar_a = ha
            .args
            .as_ref()
            .map_or_else(none, |c| c.clone_ref(py).into_any());
        let ar_b = hb
            .args
            .as_ref()
            .map_or_else(none, |c| c.clone_ref(py).into_any());
        drop((ha, hb));
        Ok(cb_a.bind(py).eq(cb_b.bind(py))? && ar_a.bind(py).eq(ar_b.bind(py))?)
    }
}

/// A new `_pyport.TimerHandle`.
pub(crate) fn new_timer<'py>(
    py: Python<'py>,
    handle: Handle,
    when: f64,
) -> PyResult<Bound<'py, TimerHandle>> {
    Bound::new(
        py,
        PyClassInitializer::from(handle).add_subclass(TimerHandle {
            when,
            scheduled: false,
        }),
    )
}

/// For views: a list of the given handles.
pub(crate) fn to_list<'py>(py: Python<'py>, items: Vec<Py<PyAny>>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items)
}
