//! The pod network's host endpoint through HNS v1 (`HNSCall` of vmcompute.dll, as hcsshim and flannel's host-gw
//! backend make it), and IP forwarding through IP Helper. Thin: the requests and answers are `host::hns_v1`.

use super::cleanup::{system32_proc, take_wide};
use crate::host::HostError;
use crate::host::hns_v1::{self, Call};
use std::net::IpAddr;
use std::path::PathBuf;
use windows_sys::Win32::Foundation::NO_ERROR;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetIpInterfaceEntry, InitializeIpInterfaceEntry, MIB_IPINTERFACE_ROW, SetIpInterfaceEntry,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};

type HnsCall = unsafe extern "system" fn(
    windows_sys::core::PCWSTR,
    windows_sys::core::PCWSTR,
    windows_sys::core::PCWSTR,
    *mut windows_sys::core::PWSTR,
) -> windows_sys::core::HRESULT;

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn hns_error(what: &str, message: String) -> HostError {
    HostError::Io { op: "HNS", path: PathBuf::from(what), source: std::io::Error::other(message) }
}

/// One `HNSCall`: HNS's `Output`, or its error (a failing HRESULT, or `Success: false`).
fn call(c: &Call) -> Result<serde_json::Value, HostError> {
    let what = format!("{} {}", c.method, c.path);
    let Some(f) = system32_proc("vmcompute.dll", c"HNSCall") else {
        return Err(HostError::Unsupported {
            what: format!(
                "{what} without vmcompute.dll (enable the Containers feature: Install-WindowsFeature Containers)"
            ),
        });
    };
    // SAFETY: HNSCall has the signature declared above (hcsshim's `_hnsCall`).
    let f = unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, HnsCall>(f) };
    let (method, path, request) = (wide(c.method), wide(&c.path), wide(&c.request));
    let mut response: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: three NUL-terminated strings we own and an out pointer HNS allocates (CoTaskMemAlloc).
    let hr = unsafe { f(method.as_ptr(), path.as_ptr(), request.as_ptr(), &mut response) };
    let response = take_wide(response).unwrap_or_default();
    if hr < 0 {
        return Err(hns_error(&what, format!("HRESULT {hr:#010x} {response}")));
    }
    hns_v1::output(&response).map_err(|e| hns_error(&what, e))
}

/// Makes sure the endpoint `name` at `address` exists on `network` and is attached to the host's compartment,
/// replacing one with another address; returns whether it was created.
pub fn create_host_endpoint(network: &str, name: &str, address: IpAddr) -> Result<bool, HostError> {
    let networks = call(&hns_v1::list_networks())?;
    let Some((network_id, _)) = hns_v1::find(&networks, network) else {
        return Err(hns_error(network, format!("no HNS network named {network} to put {name} on")));
    };
    let endpoints = call(&hns_v1::list_endpoints())?;
    let (create, stale) = hns_v1::endpoint_plan(&endpoints, name, address);
    if let Some(id) = stale {
        call(&hns_v1::delete_endpoint(&id))?;
    }
    let id = match create {
        true => {
            call(&hns_v1::create_endpoint(name, &network_id, address))?["ID"].as_str().unwrap_or_default().to_string()
        }
        false => hns_v1::find(&endpoints, name).map(|(id, _)| id).unwrap_or_default(),
    };
    match call(&hns_v1::attach_to_host(&id)) {
        Err(HostError::Io { source, .. }) if hns_v1::already_attached(&source.to_string()) => {}
        other => {
            other?;
        }
    }
    Ok(create)
}

/// Deletes the endpoint `name` if HNS has one; returns whether it did.
pub fn remove_host_endpoint(name: &str) -> Result<bool, HostError> {
    if system32_proc("vmcompute.dll", c"HNSCall").is_none() {
        return Ok(false);
    }
    let endpoints = call(&hns_v1::list_endpoints())?;
    let Some((id, _)) = hns_v1::find(&endpoints, name) else { return Ok(false) };
    call(&hns_v1::delete_endpoint(&id))?;
    Ok(true)
}

/// Turns on IP forwarding on the interface that holds `address`; returns whether it was off.
pub fn enable_forwarding(address: IpAddr) -> Result<bool, HostError> {
    let what = format!("the interface of {address}");
    let Some(index) = super::routes::interface_index_of(address) else {
        return Err(hns_error(&what, "no interface holds that address".into()));
    };
    let failed = |op: &'static str, rc: u32| HostError::Io {
        op,
        path: what.clone().into(),
        source: std::io::Error::from_raw_os_error(rc as i32),
    };
    // SAFETY: a zeroed row initialised by IP Helper, then read and written by it.
    unsafe {
        let mut row: MIB_IPINTERFACE_ROW = std::mem::zeroed();
        InitializeIpInterfaceEntry(&mut row);
        row.Family = if address.is_ipv4() { AF_INET } else { AF_INET6 };
        row.InterfaceIndex = index;
        let rc = GetIpInterfaceEntry(&mut row);
        if rc != NO_ERROR {
            return Err(failed("read forwarding of", rc));
        }
        if row.ForwardingEnabled {
            return Ok(false);
        }
        row.ForwardingEnabled = true;
        // SetIpInterfaceEntry refuses the site prefix length GetIpInterfaceEntry fills in.
        row.SitePrefixLength = 0;
        let rc = SetIpInterfaceEntry(&mut row);
        if rc != NO_ERROR {
            return Err(failed("enable forwarding on", rc));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the HNS stand-in (scripts/wine/hns-standin; not HNS: it keeps the objects callers make in a state
    /// dir and answers as HNS does), holding one network: the endpoint goes on the network named, with hcsshim's
    /// field names, and is attached to the host; a second run finds it and only attaches; a missing network is
    /// named in the error; reset deletes the endpoint it made.
    #[test]
    fn the_host_endpoint_is_made_on_the_named_network_and_attached_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let network =
            serde_json::json!({ "ID": "22222222-0000-0000-0000-000000000002", "Name": "cbr0", "Type": "L2Bridge" });
        std::fs::write(dir.path().join("state.json"), serde_json::json!({ "networks": [network] }).to_string())
            .unwrap();
        // SAFETY: no other test reads or writes this variable (only the stand-in does, in this process).
        unsafe { std::env::set_var("WKJOIN_HNS_STANDIN", dir.path()) };
        let gateway: IpAddr = "10.244.1.2".parse().unwrap();
        let first = create_host_endpoint("cbr0", "cbr0_ep", gateway);
        let again = create_host_endpoint("cbr0", "cbr0_ep", gateway);
        let missing = create_host_endpoint("other", "other_ep", gateway);
        let state_before_reset = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
        let removed = remove_host_endpoint("cbr0_ep");
        // SAFETY: as above.
        unsafe { std::env::remove_var("WKJOIN_HNS_STANDIN") };
        assert!(first.expect("created"), "the first run creates it");
        assert!(!again.expect("found"), "the second run finds it");
        let err = missing.unwrap_err().to_string();
        assert!(err.contains("no HNS network named other"), "{err}");
        assert!(removed.expect("removed"), "reset finds and deletes it");
        let text = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
        let calls: Vec<&str> = text.lines().filter(|l| !l.starts_with("  -> ")).collect();
        let body = |line: &str, prefix: &str| -> serde_json::Value {
            serde_json::from_str(line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line} is not {prefix}…")))
                .unwrap()
        };
        assert_eq!(calls[..2], ["GET /networks/ ", "GET /endpoints/ "], "{text}");
        let created = body(calls[2], "POST /endpoints/ ");
        assert_eq!(
            created,
            serde_json::json!({ "Name": "cbr0_ep", "VirtualNetwork": "22222222-0000-0000-0000-000000000002", "IPAddress": "10.244.1.2" })
        );
        // The one endpoint HNS holds now is that one, on that network.
        let state: serde_json::Value = serde_json::from_str(&state_before_reset).unwrap();
        let endpoints = state["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1, "{state}");
        assert_eq!(endpoints[0]["HostComputeNetwork"], "22222222-0000-0000-0000-000000000002", "{state}");
        let id = endpoints[0]["ID"].as_str().unwrap();
        let attach = body(calls[3], &format!("POST /endpoints/{id}/attach "));
        assert_eq!(attach, serde_json::json!({ "SystemType": "Host", "CompartmentId": 1 }));
        assert_eq!(calls[4..7], ["GET /networks/ ", "GET /endpoints/ ", calls[3]], "{text}");
        let delete = format!("DELETE /endpoints/{id} ");
        assert_eq!(calls[7..], ["GET /networks/ ", "GET /endpoints/ ", delete.as_str()], "{text}");
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap()).unwrap();
        assert_eq!(after["endpoints"], serde_json::json!([]), "{after}");
    }

    /// An address no interface holds has nothing to enable forwarding on: the error says so.
    #[test]
    fn forwarding_needs_an_interface_with_the_address() {
        let err = enable_forwarding("192.0.2.77".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("no interface holds that address") && err.contains("192.0.2.77"), "{err}");
    }
}
