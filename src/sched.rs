//! `_pyport.LoopCore`: the scheduling core of `ErlangEventLoop` in Rust.
//!
//! `erlang._loop.ErlangEventLoop` is the stdlib's Unix selector loop with
//! this class as an extra base: the ready queue, the timer heap, the
//! handles and one iteration of the loop (`_run_once`) are native, while
//! transports, servers, SSL, subprocesses and signals stay the stdlib's
//! Python on top (they only call `call_soon`, `_add_callback`,
//! `add_reader` and friends). The Python loop class binds the methods
//! below in its own body, ahead of the stdlib's in the MRO.
//!
//! Per iteration, as `BaseEventLoop._run_once`: drop cancelled timers,
//! poll the selector with the time to the next timer (no timeout when
//! nothing is scheduled: an idle loop wakes up zero times), move expired
//! timers to the ready queue, run the callbacks that were ready when the
//! run began. State lives behind one mutex (`call_soon_threadsafe` comes
//! from other threads); the lock is never held across a call into Python
//! nor while dropping a Python object (a finalizer could re-enter).
//!
//! The stdlib's private attributes asyncio and pyport read (`_ready`,
//! `_scheduled`, `_timer_cancelled_count`, `_debug`, `_closed`,
//! `_stopping`, `_clock_resolution`) are properties over the native state;
//! `_ready` and `_scheduled` are small views (`ReadyView`,
//! `ScheduledView`) with the operations used on them.

use crate::sched_handle::{is_exit, new_timer, to_list, Handle, TimerHandle};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering as Mem};
use std::sync::{Mutex, MutexGuard};

/// The longest wait in the selector, as asyncio's (one day).
const MAX_SELECT: f64 = 24.0 * 3600.0;
/// Cancelled timers are swept from the whole heap once there are more
/// timers than this and more than half of them are cancelled (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES` / `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).
const SWEEP_MIN_TIMERS: usize = 100;

static RUN_DEBUG: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BASE_EVENT_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RUN_NESTED_FOREIGN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// One entry of the timer heap: earliest `when` first, then FIFO.
struct Timer {
    when: f64,
    seq: u64,
    handle: Py<TimerHandle>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    // BinaryHeap is a max-heap: reversed, so the earliest timer is on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .when
            .total_cmp(&self.when)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct State {
    /// Native handles and any other object with `_cancelled` and `_run()`
    /// (the stdlib's `Handle`s of readers, writers and signals).
    ready: VecDeque<Py<PyAny>>,
    timers: BinaryHeap<Timer>,
    seq: u64,
    cancelled_timers: isize,
    clock_resolution: f64,
    owner: Option<Py<PyAny>>,
    hook: Option<Py<PyAny>>,
}

/// Base class of `ErlangEventLoop` holding its scheduling state.
#[pyclass(module = "_pyport", subclass, frozen)]
pub struct LoopCore {
    state: Mutex<State>,
    debug: AtomicBool,
    closed: AtomicBool,
    stopping: AtomicBool,
    /// `time()` is this class's own: read the clock without a Python call.
    native_time: AtomicBool,
}

/// `time.monotonic()`, the loop's clock.
fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl LoopCore {
    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Mem::Relaxed) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        Ok(())
    }

    fn now(slf: &Bound<'_, Self>) -> PyResult<f64> {
        if slf.get().native_time.load(Mem::Relaxed) {
            Ok(monotonic())
        } else {
            slf.call_method0(intern!(slf.py(), "time"))?.extract()
        }
    }

    /// The stdlib's debug-mode checks of `call_soon`/`call_at`.
    fn debug_checks(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        method: &str,
    ) -> PyResult<()> {
        slf.call_method0(intern!(slf.py(), "_check_thread"))?;
        slf.call_method1(intern!(slf.py(), "_check_callback"), (callback, method))?;
        Ok(())
    }

    fn make_handle(
        slf: &Bound<'_, Self>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Handle> {
        Handle::new(
            slf.py(),
            callback.unbind(),
            args.unbind(),
            slf.clone().into_any().unbind(),
            context.map(Bound::unbind),
            slf.get().debug.load(Mem::Relaxed),
        )
    }

    fn push_ready(&self, item: Py<PyAny>) {
        self.st().ready.push_back(item);
    }

    fn schedule<'py>(
        slf: &Bound<'py, Self>,
        when: f64,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        let core = slf.get();
        core.check_closed()?;
        if core.debug.load(Mem::Relaxed) {
            Self::debug_checks(slf, &callback, "call_at")?;
        }
        let handle = Self::make_handle(slf, callback, args, context)?;
        let timer = new_timer(slf.py(), handle, when)?;
        timer.borrow_mut().scheduled = true;
        let mut st = core.st();
        st.seq += 1;
        let seq = st.seq;
        st.timers.push(Timer {
            when,
            seq,
            handle: timer.clone().unbind(),
        });
        Ok(timer)
    }

    /// Drops cancelled timers (the whole heap when they are many, else
    /// from its top). Returns them, to be released with the lock free.
    fn sweep(py: Python<'_>, st: &mut State) -> Vec<Timer> {
        let mut gone = Vec::new();
        let count = st.timers.len();
        if count > SWEEP_MIN_TIMERS && st.cancelled_timers.max(0) as usize * 2 > count {
            let (keep, drop): (Vec<Timer>, Vec<Timer>) = std::mem::take(&mut st.timers)
                .into_vec()
                .into_iter()
                .partition(|t| !TimerHandle::is_cancelled(t.handle.bind(py)));
            st.timers = BinaryHeap::from(keep);
            st.cancelled_timers = 0;
            gone = drop;
        } else {
            while let Some(top) = st.timers.peek() {
                if !TimerHandle::is_cancelled(top.handle.bind(py)) {
                    break;
                }
                st.cancelled_timers -= 1;
                gone.extend(st.timers.pop());
            }
        }
        for t in &gone {
            if let Ok(mut h) = t.handle.bind(py).try_borrow_mut() {
                h.scheduled = false;
            }
        }
        gone
    }

    /// One iteration; see the module's documentation. `limit` caps the
    /// wait; `nested` is an iteration run inside a callback of this loop
    /// (a blocking `erlang.call`): `SystemExit`/`KeyboardInterrupt` from a
    /// callback go to the owner, if any, and the next callback runs.
    fn iterate(slf: &Bound<'_, Self>, limit: Option<f64>, nested: bool) -> PyResult<()> {
        let py = slf.py();
        let core = slf.get();
        let (timeout, resolution) = {
            let mut st = core.st();
            let gone = Self::sweep(py, &mut st);
            let busy = !st.ready.is_empty() || core.stopping.load(Mem::Relaxed);
            let next = st.timers.peek().map(|t| t.when);
            let resolution = st.clock_resolution;
            drop(st);
            drop(gone);
            ((busy, next), resolution)
        };
        let mut timeout = match timeout {
            (true, _) => Some(0.0),
            (false, Some(when)) => Some((when - Self::now(slf)?).clamp(0.0, MAX_SELECT)),
            (false, None) => None,
        };
        if let Some(l) = limit {
            timeout = Some(timeout.map_or(l, |t| t.min(l)));
        }
        let selector = slf.getattr(intern!(py, "_selector"))?;
        let events = selector.call_method1(intern!(py, "select"), (timeout,))?;
        if events.len()? > 0 {
            slf.call_method1(intern!(py, "_process_events"), (events,))?;
        }

        let end = Self::now(slf)? + resolution;
        let ntodo = {
            let mut st = core.st();
            while st.timers.peek().is_some_and(|t| t.when < end) {
                let Some(t) = st.timers.pop() else { break };
                if let Ok(mut h) = t.handle.bind(py).try_borrow_mut() {
                    h.scheduled = false;
                }
                st.ready.push_back(t.handle.into_any());
            }
            st.ready.len()
        };

        let debug = core.debug.load(Mem::Relaxed);
        for _ in 0..ntodo {
            let Some(item) = core.st().ready.pop_front() else {
                break; // a nested iteration ran them (it pads what it took)
            };
            let item = item.into_bound(py);
            let result = Self::run_item(slf, &item, debug, nested);
            if let Err(e) = result {
                if nested && is_exit(py, &e) {
                    let owner = core.st().owner.as_ref().map(|o| o.clone_ref(py));
                    match owner {
                        Some(o) => {
                            o.bind(py)
                                .call_method1(intern!(py, "escaped"), (e.value(py),))?;
                        }
                        None => return Err(e),
                    }
                } else {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn run_item(
        slf: &Bound<'_, Self>,
        item: &Bound<'_, PyAny>,
        debug: bool,
        nested: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        if let Ok(h) = item.cast::<Handle>() {
            if h.borrow().cancelled {
                return Ok(());
            }
            if !debug {
                return Handle::run(h, nested);
            }
        } else if item.getattr(intern!(py, "_cancelled"))?.is_truthy()? {
            return Ok(());
        }
        if debug {
            let f = RUN_DEBUG.import(py, "erlang._loop", "run_debug")?;
            f.call1((slf, item, nested))?;
        } else if nested {
            let f = RUN_NESTED_FOREIGN.import(py, "erlang._loop", "run_nested_handle")?;
            f.call1((item, slf))?;
        } else {
            item.call_method0(intern!(py, "_run"))?;
        }
        Ok(())
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        LoopCore {
            state: Mutex::new(State::default()),
            debug: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            native_time: AtomicBool::new(false),
        }
    }

    /// Called by the loop's `__init__`: reads the clock natively unless a
    /// subclass overrides `time()`.
    fn _core_init(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let mine = py.get_type::<LoopCore>().getattr(intern!(py, "time"))?;
        let theirs = slf.get_type().getattr(intern!(py, "time"))?;
        slf.get().native_time.store(mine.is(&theirs), Mem::Relaxed);
        Ok(())
    }

    /// Whether the core reads the clock itself (no `time()` override).
    fn _core_time_is_native(&self) -> bool {
        self.native_time.load(Mem::Relaxed)
    }

    fn time(&self) -> f64 {
        monotonic()
    }

    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let core = slf.get();
        core.check_closed()?;
        if core.debug.load(Mem::Relaxed) {
            Self::debug_checks(slf, &callback, "call_soon")?;
        }
        let handle = Bound::new(slf.py(), Self::make_handle(slf, callback, args, context)?)?;
        core.push_ready(handle.clone().into_any().unbind());
        Ok(handle)
    }

    /// `call_soon` without the checks (what `call_soon_threadsafe` uses).
    fn _call_soon<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let handle = Bound::new(slf.py(), Self::make_handle(slf, callback, args, context)?)?;
        slf.get().push_ready(handle.clone().into_any().unbind());
        Ok(handle)
    }

    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later<'py>(
        slf: &Bound<'py, Self>,
        delay: &Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let when = Self::now(slf)? + delay.extract::<f64>()?;
        Self::schedule(slf, when, callback, args, context)
    }

    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at<'py>(
        slf: &Bound<'py, Self>,
        when: &Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        Self::schedule(slf, when.extract()?, callback, args, context)
    }

    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let py = slf.py();
        slf.get().check_closed()?;
        if slf.get().debug.load(Mem::Relaxed) {
            slf.call_method1(
                intern!(py, "_check_callback"),
                (&callback, "call_soon_threadsafe"),
            )?;
        }
        let handle = Self::_call_soon(slf, callback, args, context)?;
        slf.call_method0(intern!(py, "_write_to_self"))?;
        Ok(handle)
    }

    fn get_debug(&self) -> bool {
        self.debug.load(Mem::Relaxed)
    }

    /// `BaseEventLoop.create_task` without its Python frame. No frame is
    /// dropped from a debug-mode source traceback: the Task records the
    /// stack from its creator's frame, which here is the caller's.
    #[pyo3(signature = (coro, *, name = None, context = None))]
    fn create_task<'py>(
        slf: &Bound<'py, Self>,
        coro: &Bound<'py, PyAny>,
        name: Option<Bound<'py, PyAny>>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        slf.get().check_closed()?;
        let factory = slf.getattr(intern!(py, "_task_factory"))?;
        if factory.is_none() {
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "loop"), slf)?;
            if let Some(name) = name {
                kwargs.set_item(intern!(py, "name"), name)?;
            }
            if let Some(context) = context {
                kwargs.set_item(intern!(py, "context"), context)?;
            }
            let task = TASK.import(py, "asyncio.tasks", "Task")?;
            return task.call((coro,), Some(&kwargs));
        }
        // With a task factory, the stock method itself: how the factory
        // is called and the task named changed within 3.13 (3.13.0 calls
        // `task.set_name(name)` and has no `_set_task_name`; later
        // releases pass `name` to the factory), and only the running
        // Python's own code keeps step with it. Not the hot path.
        let base = BASE_EVENT_LOOP.import(py, "asyncio.base_events", "BaseEventLoop")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "name"), name)?;
        if let Some(context) = context {
            // Only when given: 3.10's create_task has no `context`.
            kwargs.set_item(intern!(py, "context"), context)?;
        }
        base.getattr(intern!(py, "create_task"))?
            .call((slf, coro), Some(&kwargs))
    }

    /// `BaseSelectorEventLoop._process_events`: queues the reader and/or
    /// writer of each ready selector key (`data` is `(reader, writer)`);
    /// a cancelled one is unregistered instead.
    fn _process_events(slf: &Bound<'_, Self>, event_list: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        for item in event_list.try_iter()? {
            let (key, mask): (Bound<'_, PyAny>, u32) = item?.extract()?;
            let fileobj = key.get_item(0)?;
            let (reader, writer): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                key.get_item(3)?.extract()?;
            for (bit, handle, remove) in [
                (1, reader, intern!(py, "_remove_reader")),
                (2, writer, intern!(py, "_remove_writer")),
            ] {
                if mask & bit == 0 || handle.is_none() {
                    continue;
                }
                let cancelled = match handle.cast::<Handle>() {
                    Ok(h) => h.borrow().cancelled,
                    Err(_) => handle.getattr(intern!(py, "_cancelled"))?.is_truthy()?,
                };
                if cancelled {
                    slf.call_method1(remove, (&fileobj,))?;
                } else {
                    slf.get().push_ready(handle.unbind());
                }
            }
        }
        Ok(())
    }

    /// Queues a handle unless cancelled (readers, writers, signals).
    fn _add_callback(&self, handle: &Bound<'_, PyAny>) -> PyResult<()> {
        let cancelled = match handle.cast::<Handle>() {
            Ok(h) => h.borrow().cancelled,
            Err(_) => handle
                .getattr(intern!(handle.py(), "_cancelled"))?
                .is_truthy()?,
        };
        if !cancelled {
            self.push_ready(handle.clone().unbind());
        }
        Ok(())
    }

    fn _timer_handle_cancelled(&self, handle: &Bound<'_, PyAny>) -> PyResult<()> {
        let scheduled = match handle.cast::<TimerHandle>() {
            Ok(t) => t.borrow().scheduled,
            Err(_) => handle
                .getattr(intern!(handle.py(), "_scheduled"))?
                .is_truthy()?,
        };
        if scheduled {
            self.st().cancelled_timers += 1;
        }
        Ok(())
    }

    /// One iteration, then the iteration hook. With an owner set, a
    /// `SystemExit`/`KeyboardInterrupt` escaping a callback goes to it and
    /// the callbacks not run yet stay queued for the next iteration.
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if let Err(e) = Self::iterate(slf, None, false) {
            let owner = slf.get().st().owner.as_ref().map(|o| o.clone_ref(py));
            match owner {
                Some(o) if is_exit(py, &e) => {
                    o.bind(py)
                        .call_method1(intern!(py, "escaped"), (e.value(py),))?;
                }
                _ => return Err(e),
            }
        }
        let hook = slf.get().st().hook.as_ref().map(|h| h.clone_ref(py));
        if let Some(hook) = hook {
            hook.bind(py).call0()?;
        }
        Ok(())
    }

    /// One nested iteration waiting at most `limit` seconds (no hook).
    #[pyo3(signature = (limit))]
    fn _run_nested(slf: &Bound<'_, Self>, limit: Option<f64>) -> PyResult<()> {
        Self::iterate(slf, limit, true)
    }

    #[getter(_ready)]
    fn ready_view(slf: &Bound<'_, Self>) -> ReadyView {
        ReadyView {
            core: slf.clone().unbind(),
        }
    }

    #[setter(_ready)]
    fn set_ready(&self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let new: Vec<Py<PyAny>> = items
            .try_iter()?
            .map(|i| i.map(Bound::unbind))
            .collect::<PyResult<_>>()?;
        let old = std::mem::replace(&mut self.st().ready, new.into());
        drop(old);
        Ok(())
    }

    #[getter(_scheduled)]
    fn scheduled_view(slf: &Bound<'_, Self>) -> ScheduledView {
        ScheduledView {
            core: slf.clone().unbind(),
        }
    }

    #[setter(_scheduled)]
    fn set_scheduled(&self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut timers = BinaryHeap::new();
        let mut seq = self.st().seq;
        for item in items.try_iter()? {
            let item = item?;
            let t = item.cast::<TimerHandle>()?;
            seq += 1;
            timers.push(Timer {
                when: t.borrow().when,
                seq,
                handle: t.clone().unbind(),
            });
        }
        let old = {
            let mut st = self.st();
            st.seq = seq;
            std::mem::replace(&mut st.timers, timers)
        };
        drop(old);
        Ok(())
    }

    #[getter(_timer_cancelled_count)]
    fn cancelled_count(&self) -> isize {
        self.st().cancelled_timers
    }

    #[setter(_timer_cancelled_count)]
    fn set_cancelled_count(&self, value: isize) {
        self.st().cancelled_timers = value;
    }

    #[getter(_debug)]
    fn debug_attr(&self) -> bool {
        self.debug.load(Mem::Relaxed)
    }

    #[setter(_debug)]
    fn set_debug_attr(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug.store(value.is_truthy()?, Mem::Relaxed);
        Ok(())
    }

    #[getter(_closed)]
    fn closed_attr(&self) -> bool {
        self.closed.load(Mem::Relaxed)
    }

    #[setter(_closed)]
    fn set_closed_attr(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.closed.store(value.is_truthy()?, Mem::Relaxed);
        Ok(())
    }

    #[getter(_stopping)]
    fn stopping_attr(&self) -> bool {
        self.stopping.load(Mem::Relaxed)
    }

    #[setter(_stopping)]
    fn set_stopping_attr(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.stopping.store(value.is_truthy()?, Mem::Relaxed);
        Ok(())
    }

    #[getter(_clock_resolution)]
    fn resolution_attr(&self) -> f64 {
        self.st().clock_resolution
    }

    #[setter(_clock_resolution)]
    fn set_resolution_attr(&self, value: f64) {
        self.st().clock_resolution = value;
    }

    #[getter(_owner)]
    fn owner_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st().owner.as_ref().map(|o| o.clone_ref(py))
    }

    #[setter(_owner)]
    fn set_owner_attr(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.st().owner, value);
        drop(old);
    }

    #[getter(_iteration_hook)]
    fn hook_attr(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st().hook.as_ref().map(|o| o.clone_ref(py))
    }

    #[setter(_iteration_hook)]
    fn set_hook_attr(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut self.st().hook, value);
        drop(old);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The GC runs with the GIL held, never while this thread holds the
        // lock (no Python runs under it); another holder means a running
        // mutation, and the objects are then simply not reported this time.
        let Ok(st) = self.state.try_lock() else {
            return Ok(());
        };
        for item in &st.ready {
            visit.call(item)?;
        }
        for t in st.timers.iter() {
            visit.call(&t.handle)?;
        }
        visit.call(&st.owner)?;
        visit.call(&st.hook)?;
        Ok(())
    }

    fn __clear__(&self) {
        let taken = {
            let mut st = self.st();
            (
                std::mem::take(&mut st.ready),
                std::mem::take(&mut st.timers),
                st.owner.take(),
                st.hook.take(),
            )
        };
        drop(taken);
    }
}

/// `loop._ready`: the ready queue, with the deque operations used on it.
#[pyclass(module = "_pyport", frozen)]
pub struct ReadyView {
    core: Py<LoopCore>,
}

#[pymethods]
impl ReadyView {
    fn __len__(&self) -> usize {
        self.core.get().st().ready.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let items: Vec<Py<PyAny>> = self
            .core
            .get()
            .st()
            .ready
            .iter()
            .map(|i| i.clone_ref(py))
            .collect();
        to_list(py, items)?.try_iter().map(Bound::into_any)
    }

    fn append(&self, handle: Py<PyAny>) {
        self.core.get().st().ready.push_back(handle);
    }

    fn appendleft(&self, handle: Py<PyAny>) {
        self.core.get().st().ready.push_front(handle);
    }

    fn extendleft(&self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in items.try_iter()? {
            let item = item?.unbind();
            self.core.get().st().ready.push_front(item);
        }
        Ok(())
    }

    fn popleft(&self) -> PyResult<Py<PyAny>> {
        let item = self.core.get().st().ready.pop_front();
        item.ok_or_else(|| PyIndexError::new_err("pop from an empty deque"))
    }

    fn clear(&self) {
        let old = std::mem::take(&mut self.core.get().st().ready);
        drop(old);
    }
}

/// `loop._scheduled`: the timer heap, earliest first when indexed.
#[pyclass(module = "_pyport", frozen)]
pub struct ScheduledView {
    core: Py<LoopCore>,
}

impl ScheduledView {
    fn sorted(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let mut entries: Vec<(f64, u64, Py<PyAny>)> = self
            .core
            .get()
            .st()
            .timers
            .iter()
            .map(|t| (t.when, t.seq, t.handle.clone_ref(py).into_any()))
            .collect();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        entries.into_iter().map(|e| e.2).collect()
    }
}

#[pymethods]
impl ScheduledView {
    fn __len__(&self) -> usize {
        self.core.get().st().timers.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_list(py, self.sorted(py))?
            .try_iter()
            .map(Bound::into_any)
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<PyAny>> {
        let mut items = self.sorted(py);
        let len = items.len() as isize;
        let i = if index < 0 { index + len } else { index };
        if i < 0 || i >= len {
            return Err(PyIndexError::new_err("list index out of range"));
        }
        Ok(items.swap_remove(i as usize))
    }

    fn clear(&self) {
        let old = std::mem::take(&mut self.core.get().st().timers);
        drop(old);
    }
}
