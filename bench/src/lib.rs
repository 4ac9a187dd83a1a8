//! Load generator and measurement harness for LanTalk servers.
//!
//! [`load::run`] drives any server (ours or the Python reference) over
//! loopback with many clients on a single event loop; [`servers`] starts the
//! servers under test; [`procstats`] reads what they cost from `/proc`. The
//! `lantalk-bench` binary wraps these in a command line; the `load` test of
//! the workspace uses them to check that every message is delivered.

pub mod load;
pub mod procstats;
pub mod servers;

pub use load::{run, Latency, Report, Scenario, SideLogins, Wire};
pub use servers::{History, Launch, ServerProc, Target};
