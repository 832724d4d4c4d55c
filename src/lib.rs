//! wkjoin: join a Windows (or Linux) worker node to a Kubernetes cluster with a Linux control plane.
//!
//! Every step computes a [`plan::Plan`] (pure, printable, testable); [`apply`] executes it through the
//! [`host`] backend of the OS wkjoin was built for.

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod fetch;
pub mod host;
pub mod image;
pub mod join;
pub mod kube_client;
pub mod layout;
pub mod network;
pub mod output;
pub mod plan;
pub mod preflight;
pub mod reconcile;
pub mod reset;
pub mod routes;
pub mod runtime;
pub mod services;
pub mod settings;
pub mod start;
pub mod state;
pub mod validate;
pub mod version;
pub mod wait;
