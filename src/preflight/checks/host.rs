//! Checks of the host itself: on Windows its build, edition, the Containers and Hyper-V features and whether it
//! is a Hyper-V guest; on either OS the free space under the root dir.

use super::{Check, Options};
use crate::layout::Os;
use crate::pause::WINDOWS_BUILDS;
use crate::preflight::facts::{Facts, Feature};
use crate::settings::Settings;

/// The oldest Windows build Kubernetes supports as a node (Windows Server 2019).
pub const MIN_WINDOWS_BUILD: u32 = 17763;
pub(super) const GIB: u64 = 1 << 30;

/// (fail below, warn below) bytes free under the root dir. Windows container images are several GiB each.
pub fn disk_thresholds(os: Os) -> (u64, u64) {
    match os {
        Os::Linux => (GIB, 5 * GIB),
        Os::Windows => (5 * GIB, 20 * GIB),
    }
}

pub(super) fn windows_build(f: &Facts) -> Check {
    const NAME: &str = "windows-build";
    let Some(build) = f.windows.as_ref().and_then(|w| w.build) else {
        return Check::warn(
            NAME,
            "could not read CurrentBuildNumber from the registry",
            "run `cmd /c ver` and make sure it is 10.0.17763 (Windows Server 2019) or newer",
        );
    };
    let rev = f.windows.as_ref().and_then(|w| w.revision).map(|r| format!(".{r}")).unwrap_or_default();
    if build < MIN_WINDOWS_BUILD {
        return Check::fail(
            NAME,
            format!("build {build}{rev} is older than {MIN_WINDOWS_BUILD} (Windows Server 2019)"),
            "Kubernetes supports Windows Server 2019 (17763) and newer as nodes: upgrade the host",
        );
    }
    match WINDOWS_BUILDS.iter().find(|(b, _, _)| *b == build) {
        Some((_, tag, name)) => Check::pass(NAME, format!("build {build}{rev}: {name}, container images :{tag}")),
        None => Check::warn(
            NAME,
            format!("build {build}{rev} has no matching container base image (process isolation needs the same build)"),
            format!(
                "use a long-term servicing build ({}) or run pods with Hyper-V isolation (--hyperv-isolation)",
                WINDOWS_BUILDS.iter().map(|(b, _, _)| b.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

pub(super) fn windows_edition(f: &Facts) -> Check {
    const NAME: &str = "windows-edition";
    let w = f.windows.clone().unwrap_or_default();
    let Some(edition) = w.edition.as_deref() else {
        return Check::warn(NAME, "could not read EditionID from the registry", "use Windows Server 2019 or newer");
    };
    let product = w.product_name.as_deref().unwrap_or(edition);
    let install = w.installation_type.as_deref().map(|t| format!(", {t}")).unwrap_or_default();
    let detail = format!("{product} ({edition}{install})");
    if edition.starts_with("Server") {
        Check::pass(NAME, detail)
    } else if edition.starts_with("Core") {
        // Home editions have neither the Containers nor the Hyper-V feature.
        Check::fail(NAME, format!("{detail}: Windows Home cannot run Windows containers"), "use Windows Server")
    } else {
        Check::warn(
            NAME,
            format!("{detail}: a client edition; Kubernetes supports Windows Server nodes"),
            "use Windows Server 2019 or newer for anything beyond a test",
        )
    }
}

pub(super) fn containers_feature(f: &Facts) -> Check {
    const NAME: &str = "containers-feature";
    let fix = "Install-WindowsFeature -Name Containers; Restart-Computer (client editions: \
               Enable-WindowsOptionalFeature -Online -FeatureName Containers -All)";
    match f.containers_feature {
        Feature::Installed => Check::pass(NAME, "the Containers feature is installed (hns and vmcompute services)"),
        Feature::Missing => Check::fail(NAME, "the Containers feature is not installed", fix),
        Feature::Unknown => Check::warn(NAME, "could not tell whether the Containers feature is installed", fix),
    }
}

pub(super) fn hyperv_feature(f: &Facts, o: &Options) -> Check {
    const NAME: &str = "hyperv-feature";
    let fix = "Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart (client editions: \
               Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All)";
    match (o.hyperv_isolation, f.hyperv_feature) {
        (false, _) => Check::skip(NAME, "only needed with --hyperv-isolation"),
        (true, Feature::Installed) => Check::pass(NAME, "Hyper-V is installed (for Hyper-V isolation)"),
        (true, Feature::Missing) => {
            Check::fail(NAME, "Hyper-V isolation was chosen but the Hyper-V feature is not installed", fix)
        }
        (true, Feature::Unknown) => {
            Check::warn(NAME, "Hyper-V isolation was chosen; could not tell whether Hyper-V is installed", fix)
        }
    }
}

/// The commands to run on the Hyper-V host for a Windows node VM named `vm`.
pub fn hyperv_host_commands(vm: &str) -> String {
    format!(
        "on the Hyper-V host, with the VM stopped: \
         Set-VMProcessor -VMName '{vm}' -ExposeVirtualizationExtensions $true -Count 2; \
         Set-VMMemory -VMName '{vm}' -DynamicMemoryEnabled $false; \
         Get-VMNetworkAdapter -VMName '{vm}' | Set-VMNetworkAdapter -MacAddressSpoofing On"
    )
}

pub(super) fn hyperv_guest(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "hyperv-guest";
    match f.hyperv_guest {
        Some(true) => {
            let cpus = f.cpus.map(|c| format!(", {c} vCPUs")).unwrap_or_default();
            let few = f.cpus.is_some_and(|c| c < 2);
            Check::warn(
                NAME,
                format!(
                    "this host is a Hyper-V VM{cpus}{}: nested virtualisation (for Hyper-V isolation), static memory \
                     and MAC address spoofing (pod MACs on the wire with l2bridge) can only be set on the Hyper-V host",
                    if few { " (at least 2 are needed)" } else { "" }
                ),
                // The VM's name on the host is usually the machine name.
                hyperv_host_commands(&s.node_name),
            )
        }
        Some(false) => Check::pass(NAME, "not a Hyper-V virtual machine"),
        None => Check::skip(NAME, "could not tell whether this host is a Hyper-V virtual machine"),
    }
}

fn gib(n: u64) -> String {
    format!("{:.1} GiB", n as f64 / GIB as f64)
}

pub(super) fn disk(f: &Facts, s: &Settings) -> Check {
    const NAME: &str = "disk";
    let Some(free) = f.disk_free else {
        return Check::skip(NAME, format!("could not tell the free space under {}", s.root_dir));
    };
    let (fail, warn) = disk_thresholds(f.os);
    let detail = format!("{} free under {}", gib(free), s.root_dir);
    let fix = format!("free space or choose another --root-dir; {} or more is comfortable", gib(warn));
    if free < fail {
        Check::fail(NAME, format!("{detail}, less than {}", gib(fail)), fix)
    } else if free < warn {
        Check::warn(NAME, format!("{detail}, less than {}", gib(warn)), fix)
    } else {
        Check::pass(NAME, detail)
    }
}
