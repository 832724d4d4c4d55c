//! `wkjoin validate`: the connectivity matrix with the run's kube client, and the same matrix for one node at
//! the end of `join`, with the credentials given for it.

use super::common::{self, write_data};
use super::{AppError, exit};
use crate::cli::{GlobalArgs, OutputFormat, ValidateArgs, ValidateCommandArgs};
use crate::settings::Settings;
use std::io::Write;
use std::time::Duration;

pub async fn run(g: &GlobalArgs, a: &ValidateCommandArgs) -> Result<i32, AppError> {
    validate_with(&common::client(g).await?, &a.args, a.out.output).await
}

/// The matrix at the end of `join`: cells to and from the new node, with the credentials given for it.
pub(super) async fn for_joined_node(
    s: &Settings,
    kubeconfig: &std::path::Path,
    sample_image: Option<&str>,
    probe_image: Option<&str>,
    format: OutputFormat,
) -> Result<i32, AppError> {
    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        a: ValidateArgs,
    }
    let mut argv = vec!["validate".to_string(), "--node".into(), s.node_name.clone()];
    argv.extend(["--cluster-domain".into(), s.cluster_domain.clone()]);
    if let Some(i) = sample_image {
        argv.extend(["--sample-image".into(), i.to_string()]);
    }
    if let Some(i) = probe_image {
        argv.extend(["--probe-image".into(), i.to_string()]);
    }
    let a = <Args as clap::Parser>::parse_from(argv).a;
    let client = crate::start::client_for(kubeconfig).await?;
    validate_with(&client, &a, format).await
}

async fn validate_with(client: &kube::Client, a: &ValidateArgs, format: OutputFormat) -> Result<i32, AppError> {
    use crate::validate::{self, Options, matrix::Selection, report, sample::Images};
    let opts = Options {
        selection: Selection {
            focus: a.node.clone(),
            only: a.only.clone(),
            skip: a.skip.clone(),
            icmp_blocked: a.icmp_blocked.clone(),
            local: None,
        },
        images: Images {
            sample: a.sample_image.clone(),
            probe: a.probe_image.clone(),
            windows_sample: a.windows_sample_image.clone(),
            windows_probe: a.windows_probe_image.clone(),
        },
        ready_timeout: Duration::from_secs(a.timeout),
        windows_ready_timeout: Duration::from_secs(a.windows_timeout),
        probe_timeout: Duration::from_secs(a.probe_timeout),
        concurrency: a.concurrency,
        host_port: a.host_port,
        domain: a.cluster_domain.clone(),
        keep: a.keep,
        stale_after: Duration::from_secs(a.stale_after * 60),
        repeat: a.repeat,
        local: a.local,
    };
    let Some(report) = validate::command(client, &opts, a.junit.as_deref()).await? else {
        eprintln!("interrupted: the validation namespace was deleted");
        return Ok(exit::INTERRUPTED);
    };
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Table => out.write_all(report::render_table(&report).as_bytes())?,
        f => write_data(&mut out, f, &report)?,
    }
    Ok(if report.summary.ok() { exit::OK } else { exit::VALIDATION_FAILED })
}
