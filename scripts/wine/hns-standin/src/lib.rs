//! A stand-in for HNS under wine, which has none: the HCN functions of computenetwork.dll and the `HNSCall` of
//! vmcompute.dll, for tests only (never shipped). Not HNS: it programs no switch, vNIC or load balancer; it keeps
//! the objects callers create (networks, endpoints, load balancers, namespaces) as their JSON in a state file
//! that every process of the prefix shares, and answers queries about them as HNS does, so wkjoin.exe and the
//! real kube-proxy.exe see one another's objects. Active only when `WKJOIN_HNS_STANDIN` (or, for services,
//! `%SystemRoot%\hns-standin.txt`) names the state directory (the calls are logged to `calls.log` there);
//! otherwise every call fails with E_NOTIMPL, as if HNS were absent.
//! scripts/wine-env builds it and installs it as vmcompute.dll (and as computenetwork.dll in the HNS prefix).
#![allow(non_snake_case, clippy::missing_safety_doc)]

mod store;

use std::ffi::c_void;
use store::{Failure, Kind};

type Pwstr = *mut u16;
type Pcwstr = *const u16;
type Handle = *mut c_void;

const S_OK: i32 = 0;
const E_NOTIMPL: i32 = 0x80004001_u32 as i32;

#[repr(C)]
pub struct Guid {
    d1: u32,
    d2: u16,
    d3: u16,
    d4: [u8; 8],
}

#[link(name = "ole32")]
unsafe extern "system" {
    fn CoTaskMemAlloc(cb: usize) -> *mut c_void;
}

/// An open object: what HcnOpen*/HcnCreate* hand out and HcnClose* frees.
struct Open {
    kind: Kind,
    id: String,
}

unsafe fn read(p: Pcwstr) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: callers pass NUL-terminated strings.
    unsafe {
        while *p.add(len) != 0 {
            len += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
    }
}

/// Hands `text` to the caller as HNS does: a NUL-terminated string from CoTaskMemAlloc, which the caller frees.
unsafe fn give(out: *mut Pwstr, text: &str) {
    if out.is_null() {
        return;
    }
    let wide: Vec<u16> = text.encode_utf16().chain([0]).collect();
    // SAFETY: a fresh allocation of the right size, filled before it is handed out.
    unsafe {
        let p = CoTaskMemAlloc(wide.len() * 2).cast::<u16>();
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(wide.as_ptr(), p, wide.len());
        }
        *out = p;
    }
}

unsafe fn guid(p: *const Guid) -> Option<String> {
    // SAFETY: callers pass a GUID or null.
    let g = unsafe { p.as_ref()? };
    (g.d1 != 0 || g.d2 != 0 || g.d3 != 0 || g.d4 != [0; 8]).then(|| store::format_guid(g.d1, g.d2, g.d3, g.d4))
}

/// Ends a call: S_OK, or the failure's HRESULT with its text as the error record.
unsafe fn finish(record: *mut Pwstr, result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) => S_OK,
        Err(Failure(hr, text)) => {
            store::log(&format!("  -> {hr:#010x} {text}"));
            let record_json = serde_json::json!({ "Success": false, "Error": text, "ErrorCode": hr }).to_string();
            // SAFETY: the caller's out pointer.
            unsafe { give(record, &record_json) };
            hr
        }
    }
}

fn inactive() -> Option<i32> {
    store::dir().is_none().then_some(E_NOTIMPL)
}

unsafe fn open_handle(kind: Kind, id: String, out: *mut Handle) {
    if !out.is_null() {
        // SAFETY: the caller's out pointer.
        unsafe { *out = Box::into_raw(Box::new(Open { kind, id })).cast() };
    }
}

unsafe fn opened<'a>(h: Handle) -> Option<&'a Open> {
    // SAFETY: handles are the boxes open_handle made, until closed.
    unsafe { h.cast::<Open>().as_ref() }
}

unsafe fn enumerate(kind: Kind, query: Pcwstr, out: *mut Pwstr, record: *mut Pwstr) -> i32 {
    if let Some(hr) = inactive() {
        return hr;
    }
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let query = read(query);
        let ids = store::enumerate(kind, &query);
        store::log(&format!("HcnEnumerate {kind:?} {query} -> {ids}"));
        give(out, &ids);
        finish(record, Ok(()))
    }
}

unsafe fn create(
    kind: Kind,
    id: *const Guid,
    settings: Pcwstr,
    network: Option<&str>,
    out: *mut Handle,
    record: *mut Pwstr,
) -> i32 {
    if let Some(hr) = inactive() {
        return hr;
    }
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let settings = read(settings);
        store::log(&format!("HcnCreate {kind:?} {settings}"));
        let result = store::create(kind, guid(id), &settings, network).map(|id| open_handle(kind, id, out));
        finish(record, result)
    }
}

unsafe fn open(kind: Kind, id: *const Guid, out: *mut Handle, record: *mut Pwstr) -> i32 {
    if let Some(hr) = inactive() {
        return hr;
    }
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let id = guid(id).unwrap_or_default();
        let result = store::get(kind, &id).map(|_| open_handle(kind, id, out));
        finish(record, result)
    }
}

unsafe fn query(h: Handle, out: *mut Pwstr, record: *mut Pwstr) -> i32 {
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let Some(o) = opened(h) else { return E_NOTIMPL };
        let result = store::get(o.kind, &o.id).map(|object| give(out, &object.to_string()));
        finish(record, result)
    }
}

unsafe fn modify(h: Handle, settings: Pcwstr, record: *mut Pwstr) -> i32 {
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let Some(o) = opened(h) else { return E_NOTIMPL };
        let settings = read(settings);
        store::log(&format!("HcnModify {:?} {} {settings}", o.kind, o.id));
        finish(record, store::modify(o.kind, &o.id, &settings))
    }
}

unsafe fn delete(kind: Kind, id: *const Guid, record: *mut Pwstr) -> i32 {
    if let Some(hr) = inactive() {
        return hr;
    }
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let id = guid(id).unwrap_or_default();
        store::log(&format!("HcnDelete {kind:?} {id}"));
        finish(record, store::delete(kind, &id))
    }
}

unsafe fn close(h: Handle) -> i32 {
    if !h.is_null() {
        // SAFETY: handles are the boxes open_handle made; each is closed once.
        drop(unsafe { Box::from_raw(h.cast::<Open>()) });
    }
    S_OK
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn HNSCall(method: Pcwstr, path: Pcwstr, request: Pcwstr, response: *mut Pwstr) -> i32 {
    // SAFETY: the caller's arguments, as vmcompute.dll takes them.
    unsafe {
        if !response.is_null() {
            *response = std::ptr::null_mut();
        }
        if let Some(hr) = inactive() {
            return hr;
        }
        let (method, path, request) = (read(method), read(path), read(request));
        store::log(&format!("{method} {path} {request}"));
        give(response, &store::hns_call(&method, &path, &request).to_string());
    }
    S_OK
}

/// The exports of one kind of HCN object: enumerate, create (for the kinds made without a parent), open, modify,
/// query, delete and close, each forwarding to the kind-generic function above.
macro_rules! hcn_object {
    ($kind:expr, $enumerate:ident, $create:ident, $open:ident, $modify:ident, $query:ident, $delete:ident, $close:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $create(id: *const Guid, s: Pcwstr, out: *mut Handle, record: *mut Pwstr) -> i32 {
            unsafe { create($kind, id, s, None, out, record) }
        }

        hcn_object!($kind, $enumerate, $open, $modify, $query, $delete, $close);
    };
    ($kind:expr, $enumerate:ident, $open:ident, $modify:ident, $query:ident, $delete:ident, $close:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $enumerate(q: Pcwstr, out: *mut Pwstr, record: *mut Pwstr) -> i32 {
            unsafe { enumerate($kind, q, out, record) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $open(id: *const Guid, out: *mut Handle, record: *mut Pwstr) -> i32 {
            unsafe { open($kind, id, out, record) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $modify(h: Handle, s: Pcwstr, record: *mut Pwstr) -> i32 {
            unsafe { modify(h, s, record) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $query(h: Handle, _q: Pcwstr, out: *mut Pwstr, record: *mut Pwstr) -> i32 {
            unsafe { query(h, out, record) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $delete(id: *const Guid, record: *mut Pwstr) -> i32 {
            unsafe { delete($kind, id, record) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "system" fn $close(h: Handle) -> i32 {
            unsafe { close(h) }
        }
    };
}

hcn_object!(
    Kind::Network,
    HcnEnumerateNetworks,
    HcnCreateNetwork,
    HcnOpenNetwork,
    HcnModifyNetwork,
    HcnQueryNetworkProperties,
    HcnDeleteNetwork,
    HcnCloseNetwork
);
hcn_object!(
    Kind::LoadBalancer,
    HcnEnumerateLoadBalancers,
    HcnCreateLoadBalancer,
    HcnOpenLoadBalancer,
    HcnModifyLoadBalancer,
    HcnQueryLoadBalancerProperties,
    HcnDeleteLoadBalancer,
    HcnCloseLoadBalancer
);
hcn_object!(
    Kind::Namespace,
    HcnEnumerateNamespaces,
    HcnCreateNamespace,
    HcnOpenNamespace,
    HcnModifyNamespace,
    HcnQueryNamespaceProperties,
    HcnDeleteNamespace,
    HcnCloseNamespace
);
// An endpoint is made on a network: its creation takes the network's handle.
hcn_object!(
    Kind::Endpoint,
    HcnEnumerateEndpoints,
    HcnOpenEndpoint,
    HcnModifyEndpoint,
    HcnQueryEndpointProperties,
    HcnDeleteEndpoint,
    HcnCloseEndpoint
);

#[unsafe(no_mangle)]
pub unsafe extern "system" fn HcnCreateEndpoint(
    network: Handle,
    id: *const Guid,
    s: Pcwstr,
    out: *mut Handle,
    record: *mut Pwstr,
) -> i32 {
    // SAFETY: the caller's arguments, as HCN takes them.
    unsafe {
        let Some(network) = opened(network).filter(|o| o.kind == Kind::Network) else { return E_NOTIMPL };
        let network = network.id.clone();
        create(Kind::Endpoint, id, s, Some(&network), out, record)
    }
}
