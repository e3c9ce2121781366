//! Deadlines for plain (sync) task functions: `_pyport.arm_deadline` /
//! `disarm_deadline` and the `TaskDeadline` exception.
//!
//! A plain function runs on the loop's thread and the loop cannot cancel
//! it: `while True: pass` past its deadline used to cost the whole port
//! (Erlang's `cancel_grace_ms` kill). A thread of our own, which never
//! holds the GIL, waits for the deadline of the function running now; when
//! it passes, it asks the interpreter for a pending call
//! (`Py_AddPendingCall`, callable without the GIL). The main thread runs
//! pending calls at its next eval-breaker check, which even a bare
//! `while True: pass` reaches on every backward jump, and ours raises
//! `TaskDeadline` in the running frame: the task ends, the loop and its
//! other tasks go on. A function stuck in C (`time.sleep`, a ctypes call)
//! does not reach the eval loop, and one that catches the exception and
//! spins on is not stopped either: Erlang's kill stays the backstop.
//!
//! Arming costs a lock and a condvar signal; a task without a deadline
//! never arms.

use pyo3::prelude::*;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pyo3::create_exception!(
    _pyport,
    TaskDeadline,
    pyo3::exceptions::PyBaseException,
    "Raised in a plain task function still running at its deadline. A \
     BaseException, so `except Exception` does not swallow it."
);

/// How long to wait before asking again when the interpreter's queue of
/// pending calls is full (it holds 32).
const RETRY: Duration = Duration::from_millis(10);

/// The arms in force, innermost last (a plain function may wait in a
/// blocking Erlang call that runs another task's plain function).
#[derive(Debug, Default)]
struct Arms {
    next_token: u64,
    stack: Vec<Arm>,
    /// When the watching thread wakes up by itself: `None` while it waits
    /// for a wake-up call. Arming tells it only about a deadline it would
    /// otherwise miss, so a stream of tasks with long deadlines costs no
    /// thread wake-up per task.
    wakes_at: Option<Instant>,
}

impl Arms {
    /// Whether the watching thread must be woken to honour `deadline`.
    fn needs_wake(&self, deadline: Option<Instant>) -> bool {
        match (deadline, self.wakes_at) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(d), Some(at)) => d < at,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Arm {
    token: u64,
    /// None for a suspension: the code running now has no deadline of its
    /// own, and the arms below it wait until it is over.
    deadline: Option<Instant>,
    fired: bool,
}

/// The deadline state and the thread that watches it; `fire` is told the
/// token of an arm whose deadline passed while it was innermost.
pub struct Watchdog {
    arms: Mutex<Arms>,
    wake: Condvar,
    fire: fn(u64) -> bool,
    /// How often the watching thread woke up (tests: arming must not wake
    /// it for every task).
    wakeups: AtomicU64,
}

impl Watchdog {
    /// Starts the watching thread. `fire` returns false when the request
    /// could not be placed now and should be retried.
    pub fn start(fire: fn(u64) -> bool) -> std::io::Result<Arc<Self>> {
        let dog = Arc::new(Watchdog {
            arms: Mutex::new(Arms::default()),
            wake: Condvar::new(),
            fire,
            wakeups: AtomicU64::new(0),
        });
        let watched = Arc::clone(&dog);
        std::thread::Builder::new()
            .name("pyport-watchdog".into())
            .spawn(move || watched.watch())?;
        Ok(dog)
    }

    fn lock(&self) -> MutexGuard<'_, Arms> {
        // The lock guards plain data that no panic leaves inconsistent.
        self.arms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a deadline `after` from now for the code about to run; returns
    /// the token that disarms it.
    pub fn arm(&self, after: Duration) -> u64 {
        // A deadline too far to represent is none.
        self.push(Instant::now().checked_add(after))
    }

    /// Suspends every deadline armed so far until [`Watchdog::disarm`] of
    /// the returned token: for code that runs other tasks on the way (the
    /// nested loop iterations of a blocking Erlang call), where raising
    /// would hit the wrong task.
    pub fn suspend(&self) -> u64 {
        self.push(None)
    }

    fn push(&self, deadline: Option<Instant>) -> u64 {
        let mut arms = self.lock();
        arms.next_token += 1;
        let token = arms.next_token;
        arms.stack.push(Arm {
            token,
            deadline,
            fired: false,
        });
        // A suspension needs no wake-up: when the thread wakes it finds
        // the suspension innermost and waits again.
        let wake = arms.needs_wake(deadline);
        drop(arms);
        if wake {
            self.wake.notify_one();
        }
        token
    }

    /// Removes the arm `token` (and any inner one left armed by mistake).
    pub fn disarm(&self, token: u64) {
        let mut arms = self.lock();
        if let Some(at) = arms.stack.iter().position(|a| a.token == token) {
            arms.stack.truncate(at);
        }
        // The outer arm is innermost again: its deadline may be due
        // before the thread would wake up.
        let wake = arms
            .stack
            .last()
            .is_some_and(|outer| !outer.fired && arms.needs_wake(outer.deadline));
        drop(arms);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The innermost arm's token, 0 when nothing is armed.
    pub fn current(&self) -> u64 {
        self.lock().stack.last().map_or(0, |a| a.token)
    }

    fn watch(&self) {
        let mut arms = self.lock();
        loop {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            let due = arms.stack.last().filter(|a| !a.fired).copied();
            let Some((arm, deadline)) = due.and_then(|a| Some((a, a.deadline?))) else {
                arms.wakes_at = None;
                arms = self.wake.wait(arms).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let now = Instant::now();
            if now < deadline {
                arms.wakes_at = Some(deadline);
                arms = self
                    .wake
                    .wait_timeout(arms, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            // Marked before the lock is let go: `fire` may wait for the GIL,
            // and the main thread, holding it, may want this lock.
            mark(&mut arms, arm.token, true);
            drop(arms);
            let placed = (self.fire)(arm.token);
            arms = self.lock();
            if !placed {
                mark(&mut arms, arm.token, false);
                arms.wakes_at = Instant::now().checked_add(RETRY);
                arms = self
                    .wake
                    .wait_timeout(arms, RETRY)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
}

fn mark(arms: &mut Arms, token: u64, fired: bool) {
    if let Some(arm) = arms.stack.iter_mut().find(|a| a.token == token) {
        arm.fired = fired;
    }
}

/// The process's watchdog, started on first arm (from the main thread
/// only, so it is never started twice).
static DOG: OnceLock<Arc<Watchdog>> = OnceLock::new();

fn watchdog() -> PyResult<&'static Watchdog> {
    if let Some(dog) = DOG.get() {
        return Ok(dog);
    }
    let dog = Watchdog::start(request_interrupt).map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!(
            "cannot start the deadline watchdog thread: {e}"
        ))
    })?;
    Ok(DOG.get_or_init(|| dog))
}

/// Runs on the watchdog thread, without the GIL.
fn request_interrupt(token: u64) -> bool {
    // SAFETY: Py_AddPendingCall is documented as callable from any thread
    // without the GIL or a thread state; the interpreter lives for the
    // whole process in port mode (arming needs it running). The argument
    // is the token itself, not a pointer, so nothing is borrowed.
    let placed = unsafe {
        pyo3::ffi::Py_AddPendingCall(Some(raise_deadline), token as usize as *mut c_void) == 0
    };
    if placed {
        // Up to Python 3.11, a pending call added from a thread other than
        // the main one does not set the main thread's eval breaker: a
        // `while True: pass` would never look at it. Asking for the GIL
        // does (the holder is told to drop it at its next check, and
        // retaking it recomputes the breaker, pending call included). A
        // thread stuck in C with the GIL keeps us waiting here, which is
        // the case Erlang's kill is for.
        Python::attach(|_| ());
    }
    placed
}

/// The pending call: runs in the main thread with the GIL, between two
/// bytecodes of whatever Python code runs there now.
extern "C" fn raise_deadline(arg: *mut c_void) -> c_int {
    let token = arg as usize as u64;
    // The arm may be gone: the function returned between the request and
    // this call. Then nothing is raised, and the code that runs now (the
    // loop, another task) is left alone.
    if DOG.get().is_none_or(|dog| dog.current() != token) {
        return 0;
    }
    Python::attach(|py| {
        TaskDeadline::new_err("the task's deadline passed while it was running").restore(py);
    });
    -1
}

/// Arms a deadline `seconds` from now for the plain function about to be
/// called in this (the main) thread; returns the token for
/// `disarm_deadline`. When it passes before the disarm, `TaskDeadline` is
/// raised in whatever Python frame runs then. Outside the main thread
/// nothing is armed and the token is 0.
#[pyfunction]
pub fn arm_deadline(seconds: f64) -> PyResult<u64> {
    // Pending calls run in the main thread only: armed from another thread
    // (a server driven by tests), the exception would hit the wrong code.
    // Token 0 disarms nothing.
    if rustix::thread::gettid() != rustix::process::getpid() {
        return Ok(0);
    }
    let after = Duration::try_from_secs_f64(seconds.max(0.0))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("bad deadline: {e}")))?;
    let dog = watchdog()?;
    // The GIL stays held: the watchdog never waits for it with the lock.
    Ok(dog.arm(after))
}

/// Suspends the deadlines armed so far (see [`Watchdog::suspend`]) until
/// `disarm_deadline` of the returned token; 0 outside the main thread.
#[pyfunction]
pub fn suspend_deadline() -> PyResult<u64> {
    if rustix::thread::gettid() != rustix::process::getpid() {
        return Ok(0);
    }
    Ok(watchdog()?.suspend())
}

/// Disarms the deadline `token` (a no-op once it is gone).
#[pyfunction]
pub fn disarm_deadline(token: u64) -> PyResult<()> {
    watchdog()?.disarm(token);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex as StdMutex;

    static FIRED: StdMutex<Vec<u64>> = StdMutex::new(Vec::new());
    static REFUSE_FIRST: AtomicBool = AtomicBool::new(false);

    fn record(token: u64) -> bool {
        if REFUSE_FIRST.swap(false, Ordering::SeqCst) {
            return false;
        }
        FIRED.lock().unwrap().push(token);
        true
    }

    fn fired() -> Vec<u64> {
        FIRED.lock().unwrap().clone()
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    // One test: FIRED is shared, and the cases run in sequence.
    #[test]
    fn deadlines_fire_once_for_the_innermost_arm_and_never_after_disarm() {
        let dog = Watchdog::start(record).unwrap();

        // Disarmed in time: nothing fires.
        let t = dog.arm(Duration::from_millis(50));
        dog.disarm(t);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(fired(), Vec::<u64>::new());
        assert_eq!(dog.current(), 0);

        // Passed while armed: fires once, even though it stays armed.
        let t = dog.arm(Duration::from_millis(20));
        assert!(wait_for(|| fired() == vec![t]));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(fired(), vec![t]);
        assert_eq!(dog.current(), t);
        dog.disarm(t);

        // Nested: the inner arm is watched; once it is gone, the outer
        // one's passed deadline fires.
        let outer = dog.arm(Duration::from_millis(10));
        let inner = dog.arm(Duration::from_secs(3600));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(fired(), vec![t]);
        assert_eq!(dog.current(), inner);
        dog.disarm(inner);
        assert!(wait_for(|| fired() == vec![t, outer]));
        dog.disarm(outer);

        // A suspension holds back a passed deadline until it is lifted.
        let held = dog.arm(Duration::from_millis(10));
        let hold = dog.suspend();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(fired(), vec![t, outer]);
        dog.disarm(hold);
        assert!(wait_for(|| fired() == vec![t, outer, held]));
        dog.disarm(held);

        // A full pending-call queue is retried.
        REFUSE_FIRST.store(true, Ordering::SeqCst);
        let t2 = dog.arm(Duration::ZERO);
        assert!(wait_for(|| fired() == vec![t, outer, held, t2]));
        dog.disarm(t2);
        assert_eq!(dog.current(), 0);

        // A stream of tasks with long deadlines wakes the thread once, for
        // the first; later, later deadlines need no wake-up call.
        std::thread::sleep(Duration::from_millis(30));
        let before = dog.wakeups.load(Ordering::Relaxed);
        for _ in 0..1000 {
            let t = dog.arm(Duration::from_secs(3600));
            dog.disarm(t);
        }
        std::thread::sleep(Duration::from_millis(30));
        let woken = dog.wakeups.load(Ordering::Relaxed) - before;
        assert!(woken <= 2, "woken {woken} times for 1000 arms");
        // An earlier deadline than the one it waits for still wakes it.
        let long = dog.arm(Duration::from_secs(3600));
        let short = dog.arm(Duration::from_millis(10));
        assert!(wait_for(|| fired().last() == Some(&short)));
        dog.disarm(short);
        dog.disarm(long);
    }
}
