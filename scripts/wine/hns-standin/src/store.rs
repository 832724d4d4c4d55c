//! The stand-in's state: HNS objects as the HCN v2 JSON they were created with (plus `ID`), in one file shared by
//! every process of the wine prefix, and the HNS v1 (`HNSCall`) view of the same objects.

use serde_json::{Map, Value, json};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::windows::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The kinds of object the stand-in keeps, as the state file names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Network,
    Endpoint,
    LoadBalancer,
    /// Made by the runtime (containerd) for a pod sandbox before it runs CNI; the stand-in keeps its endpoints.
    Namespace,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Endpoint => "endpoints",
            Kind::LoadBalancer => "loadbalancers",
            Kind::Namespace => "namespaces",
        }
    }

    /// HCN's "not found" result for the kind (hcn/hcnerrors.go; ERROR_NOT_FOUND for the rest).
    pub fn not_found(self) -> i32 {
        match self {
            Kind::Network => 0x803b0001_u32 as i32,
            Kind::Endpoint => 0x803b0002_u32 as i32,
            Kind::LoadBalancer | Kind::Namespace => 0x80070490_u32 as i32,
        }
    }
}

/// An HCN failure: the HRESULT and the error record's text.
pub struct Failure(pub i32, pub String);

/// The directory that holds the state; the stand-in is inert (as if HNS were absent) without it. A service gets
/// none of a test's environment (wine's SCM passes no `Environment` value), so `%SystemRoot%\hns-standin.txt`,
/// when a test wrote it, names the directory for every process of the prefix.
pub fn dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WKJOIN_HNS_STANDIN") {
        return Some(PathBuf::from(dir));
    }
    let root = std::env::var_os("SystemRoot")?;
    let named = std::fs::read_to_string(PathBuf::from(root).join("hns-standin.txt")).ok()?;
    Some(PathBuf::from(named.trim())).filter(|d| d.is_dir())
}

/// Appends one line to the call log (`calls.log` in the state dir).
pub fn log(line: &str) {
    if let Some(dir) = dir()
        && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(dir.join("calls.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Runs `f` on the state while holding the state lock (a file opened with no sharing: exclusive across
/// processes and threads alike), and writes the state back.
pub fn with_state<T>(f: impl FnOnce(&mut Value) -> T) -> T {
    let dir = dir().expect("the stand-in is active");
    let lock = lock(&dir);
    let path = dir.join("state.json");
    let mut state: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| json!({}));
    let out = f(&mut state);
    let text = serde_json::to_string_pretty(&state).expect("JSON");
    std::fs::write(&path, text).expect("write the stand-in's state");
    drop(lock);
    out
}

fn lock(dir: &std::path::Path) -> File {
    let started = Instant::now();
    loop {
        match OpenOptions::new().create(true).truncate(false).write(true).share_mode(0).open(dir.join("state.lock")) {
            Ok(f) => return f,
            Err(e) if started.elapsed() > Duration::from_secs(30) => panic!("the stand-in's state lock: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn list(state: &mut Value, kind: Kind) -> &mut Vec<Value> {
    let map = state.as_object_mut().expect("state is an object");
    map.entry(kind.key()).or_insert_with(|| json!([])).as_array_mut().expect("a list")
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The object of `kind` with this ID.
pub fn get(kind: Kind, id: &str) -> Result<Value, Failure> {
    with_state(|s| list(s, kind).iter().find(|o| same(o["ID"].as_str().unwrap_or(""), id)).cloned())
        .ok_or_else(|| Failure(kind.not_found(), format!("{} {id} not found", kind.key())))
}

/// Whether `object` passes an HCN query's `Filter` (a JSON object of top-level fields, as hcsshim writes it: by
/// `Name`, `ID` or `VirtualNetwork`); no filter passes everything.
fn passes(object: &Value, query: &str) -> bool {
    let filter = serde_json::from_str::<Value>(query).ok().and_then(|q| q["Filter"].as_str().map(str::to_string));
    let Some(filter) = filter.filter(|f| !f.is_empty()) else { return true };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&filter) else { return false };
    fields.iter().all(|(k, want)| match (object.get(k), want) {
        (Some(Value::String(have)), Value::String(want)) => same(have, want),
        (have, want) => have == Some(want),
    })
}

/// The IDs of the objects of `kind` the query selects (HcnEnumerate*'s answer).
pub fn enumerate(kind: Kind, query: &str) -> String {
    let ids: Vec<Value> =
        with_state(|s| list(s, kind).iter().filter(|o| passes(o, query)).map(|o| o["ID"].clone()).collect());
    Value::Array(ids).to_string()
}

/// Stores a new object from its settings; `network` is the network an endpoint goes on. Returns its ID.
pub fn create(kind: Kind, id: Option<String>, settings: &str, network: Option<&str>) -> Result<String, Failure> {
    let Ok(Value::Object(settings)) = serde_json::from_str::<Value>(settings) else {
        return Err(Failure(
            0x80070057_u32 as i32,
            format!("{} settings are not a JSON object: {settings}", kind.key()),
        ));
    };
    let id = id.unwrap_or_else(new_id);
    let mut object = Map::new();
    object.insert("ID".into(), Value::String(id.clone()));
    object.extend(settings.into_iter().filter(|(k, _)| k != "ID"));
    if let Some(network) = network {
        object.insert("HostComputeNetwork".into(), Value::String(network.to_string()));
    }
    with_state(|s| list(s, kind).push(Value::Object(object)));
    Ok(id)
}

/// Removes the object of `kind` with this ID.
pub fn delete(kind: Kind, id: &str) -> Result<(), Failure> {
    let removed = with_state(|s| {
        let l = list(s, kind);
        let before = l.len();
        l.retain(|o| !same(o["ID"].as_str().unwrap_or(""), id));
        before != l.len()
    });
    if removed { Ok(()) } else { Err(Failure(kind.not_found(), format!("{} {id} not found", kind.key()))) }
}

/// Adds or removes policies (`{"ResourceType":"Policy","RequestType":"Add"|"Remove","Settings":{"Policies":…}}`,
/// as hcsshim's `AddPolicy`/`RemovePolicy` send them) or a namespace's endpoints (`"ResourceType":"Endpoint"`,
/// `"Settings":{"EndpointId":…}`, as `AddNamespaceEndpoint` does); anything else is not modelled and fails.
pub fn modify(kind: Kind, id: &str, request: &str) -> Result<(), Failure> {
    let r: Value = serde_json::from_str(request).unwrap_or(Value::Null);
    let (field, items) = match (kind, r["ResourceType"].as_str()) {
        (Kind::Namespace, Some("Endpoint")) => {
            let endpoint = r["Settings"]["EndpointId"].clone();
            ("Resources", Some(vec![json!({ "Type": "Endpoint", "Data": { "ID": endpoint } })]))
        }
        (Kind::Namespace, _) => ("Resources", None),
        (_, Some("Policy")) => ("Policies", r["Settings"]["Policies"].as_array().cloned()),
        _ => ("Policies", None),
    };
    let (Some(op @ ("Add" | "Remove")), Some(items)) = (r["RequestType"].as_str(), items) else {
        return Err(Failure(0x80004001_u32 as i32, format!("the HNS stand-in does not model this change: {request}")));
    };
    with_state(|s| {
        let object = list(s, kind).iter_mut().find(|o| same(o["ID"].as_str().unwrap_or(""), id));
        let Some(object) = object else {
            return Err(Failure(kind.not_found(), format!("{} {id} not found", kind.key())));
        };
        let have = object.as_object_mut().expect("object").entry(field).or_insert_with(|| json!([]));
        let have = have.as_array_mut().expect("a list");
        match op {
            "Add" => have.extend(items),
            _ => have.retain(|p| !items.contains(p)),
        }
        Ok(())
    })
}

/// A random lower-case GUID (HNS assigns one when the caller passes the zero GUID, as hcsshim does).
pub fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    format_guid(
        u32::from_le_bytes(bytes[0..4].try_into().unwrap()),
        u16::from_le_bytes([bytes[4], bytes[5]]),
        (u16::from_le_bytes([bytes[6], bytes[7]]) & 0x0fff) | 0x4000,
        bytes[8..16].try_into().unwrap(),
    )
}

pub fn format_guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> String {
    format!(
        "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7]
    )
}

/// HNS v1: one `HNSCall`, answered from the same objects (`{"Success":…,"Error":…,"Output":…}`).
pub fn hns_call(method: &str, path: &str, request: &str) -> Value {
    let ok = |output: Value| json!({ "Success": true, "Output": output });
    let fail = |error: String| json!({ "Success": false, "Error": error });
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        // A version with the HCN v2 API (hcn/hcnglobals.go: V2ApiSupport is 9.2 and up).
        ("GET", ["globals", "version"]) => ok(json!({ "Major": 13, "Minor": 1 })),
        ("GET", ["networks"]) => ok(with_state(|s| list(s, Kind::Network).iter().map(v1_network).collect())),
        ("GET", ["endpoints"]) => ok(with_state(|s| list(s, Kind::Endpoint).iter().map(v1_endpoint).collect())),
        ("GET", ["policylists"]) => ok(json!([])),
        ("POST", ["endpoints"]) => {
            let body: Value = serde_json::from_str(request).unwrap_or(Value::Null);
            let network = body["VirtualNetwork"].as_str().unwrap_or("");
            if get(Kind::Network, network).is_err() {
                return fail(format!("network {network} not found"));
            }
            let settings = json!({
                "Name": body["Name"],
                "IpConfigurations": [{ "IpAddress": body["IPAddress"] }],
                "SchemaVersion": { "Major": 2, "Minor": 0 },
            });
            match create(Kind::Endpoint, None, &settings.to_string(), Some(network)) {
                Ok(id) => ok(v1_endpoint(&get(Kind::Endpoint, &id).map_err(|f| f.1).unwrap_or_default())),
                Err(Failure(_, e)) => fail(e),
            }
        }
        ("POST", ["endpoints", id, "attach"]) => match get(Kind::Endpoint, id) {
            Ok(_) => ok(Value::Null),
            Err(_) => fail("Element not found.".into()),
        },
        ("DELETE", ["endpoints", id]) => match delete(Kind::Endpoint, id) {
            Ok(()) => ok(Value::Null),
            Err(_) => fail("Element not found.".into()),
        },
        _ => fail(format!("the HNS stand-in does not model {method} {path}")),
    }
}

fn v1_network(n: &Value) -> Value {
    let subnets: Vec<Value> = n["Ipams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ipam| ipam["Subnets"].as_array().cloned().unwrap_or_default())
        .map(|s| json!({ "AddressPrefix": s["IpAddressPrefix"] }))
        .collect();
    json!({ "ID": n["ID"], "Name": n["Name"], "Type": n["Type"], "Subnets": subnets })
}

fn v1_endpoint(e: &Value) -> Value {
    json!({
        "ID": e["ID"],
        "Name": e["Name"],
        "VirtualNetwork": e["HostComputeNetwork"],
        "IPAddress": e["IpConfigurations"][0]["IpAddress"],
    })
}
