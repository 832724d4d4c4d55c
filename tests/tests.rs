//! The one integration-test binary (one link instead of many); each module is an area of wkjoin.

#[macro_use]
mod util;

mod apply;
mod cli;
mod config;
mod cri;
mod cri_pipe;
mod fetch;
mod fetch_plugins;
// The module graph, read from the source tree.
#[cfg(unix)]
mod layers;
mod plan;
mod preflight;
// Every step's plan applied to a recording host: what it received is what the plan printed.
mod recorded;
mod status;
// The network files read by the upstream code that reads them (Linux runs it; Windows code under wine).
mod upstream;
// Real kernel routing tables need Linux network namespaces.
#[cfg(target_os = "linux")]
mod reset_netns;
#[cfg(target_os = "linux")]
mod routes_netns;
// End-to-end against the lab cluster (scripts/lab up): run with `cargo test -- --ignored lab_ --test-threads 1`.
#[cfg(target_os = "linux")]
mod join;
#[cfg(target_os = "linux")]
mod lab_cluster;
#[cfg(target_os = "linux")]
mod lab_routes;
#[cfg(target_os = "linux")]
mod start;
#[cfg(target_os = "linux")]
mod validate;
// wkjoin's pod network and the real kube-proxy.exe against the lab, through an HNS stand-in (wine).
#[cfg(windows)]
mod lab_hns;
// wkjoin.exe as an SCM service (Windows or wine).
#[cfg(windows)]
mod winsvc;
