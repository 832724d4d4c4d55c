//! Read-only facts about this Windows host for `preflight` and `reset`: the registry, named pipes, disk space.
//! Thin FFI; the judging happens in `preflight::checks`.

use crate::host::machine::{Endpoint, Feature, Process, WindowsVersion};
use std::path::Path;
use windows_sys::Win32::Foundation::{ERROR_SEM_TIMEOUT, GetLastError};
use windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW;
use windows_sys::Win32::System::Pipes::WaitNamedPipeW;
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegCloseKey, RegGetValueW, RegOpenKeyExW,
};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn key_exists(path: &str) -> Option<bool> {
    let path = wide(path);
    let mut key: HKEY = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and an out pointer; the key is closed below.
    let rc = unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.as_ptr(), 0, KEY_READ, &mut key) };
    match rc {
        0 => {
            // SAFETY: `key` was opened above.
            unsafe { RegCloseKey(key) };
            Some(true)
        }
        2 => Some(false), // ERROR_FILE_NOT_FOUND
        _ => None,
    }
}

fn reg_string(path: &str, name: &str) -> Option<String> {
    let (path, name) = (wide(path), wide(name));
    let mut buf = vec![0u16; 512];
    let mut size = (buf.len() * 2) as u32;
    // SAFETY: the buffer and its size in bytes match; RegGetValueW NUL-terminates REG_SZ values.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if rc != 0 {
        return None;
    }
    let len = (size as usize / 2).min(buf.len());
    let s = String::from_utf16_lossy(&buf[..len]);
    Some(s.trim_end_matches('\0').to_string())
}

fn reg_dword(path: &str, name: &str) -> Option<u32> {
    let (path, name) = (wide(path), wide(name));
    let mut value = 0u32;
    let mut size = 4u32;
    // SAFETY: a DWORD out value of 4 bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            name.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&mut value as *mut u32).cast(),
            &mut size,
        )
    };
    (rc == 0).then_some(value)
}

const CURRENT_VERSION: &str = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion";

/// Build, revision and edition from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.
pub fn windows_version() -> Option<WindowsVersion> {
    Some(WindowsVersion {
        build: reg_string(CURRENT_VERSION, "CurrentBuildNumber").and_then(|b| b.trim().parse().ok()),
        revision: reg_dword(CURRENT_VERSION, "UBR"),
        edition: reg_string(CURRENT_VERSION, "EditionID"),
        product_name: reg_string(CURRENT_VERSION, "ProductName"),
        installation_type: reg_string(CURRENT_VERSION, "InstallationType"),
    })
}

fn service_installed(name: &str) -> Option<bool> {
    key_exists(&format!("SYSTEM\\CurrentControlSet\\Services\\{name}"))
}

/// Which of the named SCM services are installed.
pub fn installed_services(names: &[&str]) -> Vec<String> {
    names.iter().filter(|n| service_installed(n) == Some(true)).map(|n| n.to_string()).collect()
}

/// (Containers, Hyper-V): judged by the services each feature installs (hns + vmcompute, vmms).
pub fn windows_features() -> (Feature, Feature) {
    let feature = |found: Option<bool>| match found {
        Some(true) => Feature::Installed,
        Some(false) => Feature::Missing,
        None => Feature::Unknown,
    };
    let containers = match (service_installed("hns"), service_installed("vmcompute")) {
        (Some(a), Some(b)) => Some(a && b),
        _ => None,
    };
    (feature(containers), feature(service_installed("vmms")))
}

/// Hyper-V guests have the integration services' guest key, and SMBIOS `Microsoft Corporation` / `Virtual Machine`.
pub fn hyperv_guest() -> Option<bool> {
    if key_exists("SOFTWARE\\Microsoft\\Virtual Machine\\Guest\\Parameters") == Some(true) {
        return Some(true);
    }
    let bios = "HARDWARE\\DESCRIPTION\\System\\BIOS";
    let vendor = reg_string(bios, "SystemManufacturer")?;
    let product = reg_string(bios, "SystemProductName").unwrap_or_default();
    Some(vendor.trim() == "Microsoft Corporation" && product.trim() == "Virtual Machine")
}

/// `npipe:////./pipe/<name>`: the pipe exists (an instance may be busy, which still means it exists).
pub fn runtime_endpoint(url: &str) -> Endpoint {
    let Some(rest) = url.strip_prefix("npipe://") else {
        return Endpoint::Unsupported { reason: "only npipe:// endpoints can be reached on Windows".into() };
    };
    let pipe = rest.replace('/', "\\");
    let name = wide(&pipe);
    // SAFETY: a NUL-terminated pipe name; waits at most 1 ms.
    let ok = unsafe { WaitNamedPipeW(name.as_ptr(), 1) };
    if ok != 0 {
        return Endpoint::Reachable;
    }
    // SAFETY: reads the calling thread's last error.
    match unsafe { GetLastError() } {
        ERROR_SEM_TIMEOUT => Endpoint::Reachable,
        code => Endpoint::Unreachable { reason: format!("{pipe}: {}", std::io::Error::from_raw_os_error(code as i32)) },
    }
}

/// Windows has no sysctls.
pub fn sysctl(_key: &str) -> Option<String> {
    None
}

/// Free bytes available to the caller on the volume of `path` or its nearest existing parent.
pub fn disk_free(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let name = wide(&existing.to_string_lossy());
    let mut free = 0u64;
    // SAFETY: a NUL-terminated path and one out value; the other outputs are optional.
    let ok = unsafe { GetDiskFreeSpaceExW(name.as_ptr(), &mut free, std::ptr::null_mut(), std::ptr::null_mut()) };
    (ok != 0).then_some(free)
}

/// Not looked up on Windows: a port in use is judged with the state file.
pub fn port_holder(_port: u16) -> Option<Process> {
    None
}

/// Services run under the SCM on Windows; wkjoin does not look for loose processes.
pub fn processes_running(_programs: &[String]) -> Vec<Process> {
    Vec::new()
}

pub fn process_alive(_pid: u32) -> bool {
    false
}

pub fn process_program(_pid: u32) -> Option<String> {
    None
}

/// Windows nodes have no mounts under the kubelet dir to undo.
pub fn mounts_under(_dir: &str) -> Vec<String> {
    Vec::new()
}
