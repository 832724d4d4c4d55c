//! wkjoin: join a Windows (or Linux) worker node to a Kubernetes cluster with a Linux control plane.
//!
//! Every step observes, computes a [`plan::Plan`] (pure, printable, testable), and [`apply`] executes exactly
//! that plan through one [`host::Host`]. Modules are listed bottom-up, in pipeline order; each names only
//! modules listed before it (tests/layers.rs checks it).

/// The machine: files, processes, services, routes, HNS, firewall, the runtime's CRI. Knows no other module.
pub mod host;

/// Where things go under the root dir, for either OS.
pub mod layout;

/// Kubernetes versions and release markers.
pub mod version;

/// `-o table|json|yaml` and the exit codes.
pub mod output;

/// The one kube client builder.
pub mod kube_client;

/// Waits on an API object that outlast dropped and quiet watches.
pub mod wait;

/// What containerd says of itself, and its config edited (pure).
pub mod runtime;

/// The node's settings, layered (flags > file > cluster > runtime > defaults) and validated.
pub mod settings;

/// Typed actions, plans, their `--dry-run` text and digest.
pub mod plan;

/// The state file: the steps done and what wkjoin owns.
pub mod state;

/// The Node waits and changes a plan asks of the API server.
pub mod cluster;

/// The one executor: a plan's actions through the host and the cluster.
pub mod apply;

/// Step: the node binaries, verified while they stream.
pub mod fetch;

/// Step: the pause image, agreed with the runtime.
pub mod pause;

/// Step: the node's credentials, checked and installed owner-only.
pub mod config;

/// Step: host-gateway routes from the Node list.
pub mod routes;

/// Step: pod network, kubelet, kube-proxy and the routes watcher as services.
pub mod start;

/// Step (run first by join): facts → checks with fixes, before anything changes; it knows what the steps need.
pub mod preflight;

/// Step: the connectivity matrix and its diagnosis.
pub mod validate;

/// A join undone, from wkjoin's records.
pub mod reset;

/// Every step in order, recorded as each completes.
pub mod join;

/// The command line: clap definitions.
pub mod cli;

/// One thin module per command.
pub mod commands;
