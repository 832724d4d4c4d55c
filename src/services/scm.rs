//! Windows SCM services as values (quoting, failure actions, the calls that bring a service to its spec): they
//! live in `host::scm_calls`, beside the FFI that makes them; re-exported here for the start step.

pub use crate::host::scm_calls::*;
