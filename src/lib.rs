//! pyport: Python's asyncio as a crash-isolated Erlang port.
//!
//! The executable (`src/main.rs`) embeds CPython; this library holds the
//! parts that can be tested on their own.

pub mod capture;
pub mod channel;
pub mod error;
pub mod etf;
pub mod fd;
pub mod framing;
pub mod interp;
pub mod lifeline;
pub mod native;
pub mod poller;
pub mod protocol;
pub mod sched;
pub mod sched_handle;
pub mod terms;
pub mod watchdog;
