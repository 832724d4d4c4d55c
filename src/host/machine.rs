//! What the host says of itself: name, addresses, Windows version, services and processes, as plain data
//! gathered by the backends, so the deciders above stay pure and Windows facts can be tested on Linux.

use ipnet::IpNet;
use serde::Serialize;

/// The machine, as the defaults of the node settings need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    pub hostname: Option<String>,
    /// Addresses of the host's interfaces, with their prefix length and interface name.
    pub interfaces: Vec<(String, IpNet)>,
    /// This host's Windows build (17763, 20348, 26100), when it is Windows.
    pub windows_build: Option<u32>,
}

/// The Windows version as the registry tells it (`HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WindowsVersion {
    /// `CurrentBuildNumber`: 17763, 20348, 26100, ...
    pub build: Option<u32>,
    /// `UBR`, the update revision.
    pub revision: Option<u32>,
    /// `EditionID`: ServerStandard, ServerDatacenter, Professional, Core, ...
    pub edition: Option<String>,
    /// `ProductName`, for people.
    pub product_name: Option<String>,
    /// `InstallationType`: Server, Server Core, Client.
    pub installation_type: Option<String>,
}

/// Whether a Windows feature is installed, judged by the services it brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    Installed,
    Missing,
    Unknown,
}

/// Can the container runtime's endpoint be reached?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Endpoint {
    /// Connected (Unix socket) or the named pipe exists.
    Reachable,
    /// Nothing answers there; `reason` is what the OS said.
    Unreachable { reason: String },
    /// A scheme this OS cannot reach (`npipe://` on Linux, `unix://` on old Windows) or a malformed URL.
    Unsupported { reason: String },
}

/// A process, as far as the host could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    /// Its executable, when readable.
    pub program: Option<String>,
}
