//! The one integration-test binary (one link instead of many); each module is an area of wkjoin.

#[macro_use]
mod util;

mod apply;
mod cli;
mod fetch;
mod plan;
mod status;
// Real kernel routing tables need Linux network namespaces.
#[cfg(target_os = "linux")]
mod routes_netns;
// The lab runs on Linux (network namespaces).
#[cfg(target_os = "linux")]
mod validate;
