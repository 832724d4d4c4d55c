//! Thin entry point: parse, install the TLS provider, log, run, map errors to exit codes.

use clap::Parser;
use std::io::IsTerminal;
use wkjoin::cli::Cli;
use wkjoin::commands::{self, exit};

fn main() {
    let cli = Cli::parse();
    // kube (ring) and reqwest are built without a default provider; exactly one is installed here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(cli.global.verbose, cli.global.quiet);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    // `validate` handles Ctrl-C itself: it deletes its namespace before exiting.
    let own_interrupt = matches!(cli.command, wkjoin::cli::Command::Validate { .. });
    let code = runtime.block_on(async {
        tokio::select! {
            result = commands::run(cli) => match result {
                Ok(code) => code,
                Err(e) => {
                    let code = e.exit_code();
                    eprintln!("error: {}", message(&anyhow::Error::from(e)));
                    code
                }
            },
            _ = tokio::signal::ctrl_c(), if !own_interrupt => {
                eprintln!("interrupted");
                exit::INTERRUPTED
            }
        }
    });
    std::process::exit(code);
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "wkjoin=info,warn",
        (false, 1) => "wkjoin=debug,info",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WKJOIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

/// The error and its causes on one line, skipping causes whose text the message already contains.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
