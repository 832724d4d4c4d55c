//! HNS v1 requests (vmcompute.dll's `HNSCall`, as hcsshim's `hnsCall` makes them) for the host endpoint of the
//! pod network: the JSON of each call and the reading of HNS's answers. Pure; the call itself is in windows/.

use serde_json::{Value, json};
use std::net::IpAddr;

/// One `HNSCall(method, path, request)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub request: String,
}

impl Call {
    fn new(method: &'static str, path: impl Into<String>, request: impl Into<String>) -> Call {
        Call { method, path: path.into(), request: request.into() }
    }
}

pub fn list_networks() -> Call {
    Call::new("GET", "/networks/", "")
}

pub fn list_endpoints() -> Call {
    Call::new("GET", "/endpoints/", "")
}

/// hcsshim's `HNSEndpoint` with what flannel's host-gw backend sets: name, network and address.
pub fn create_endpoint(name: &str, network_id: &str, address: IpAddr) -> Call {
    let body = json!({ "Name": name, "VirtualNetwork": network_id, "IPAddress": address.to_string() });
    Call::new("POST", "/endpoints/", body.to_string())
}

pub fn delete_endpoint(id: &str) -> Call {
    Call::new("DELETE", format!("/endpoints/{id}"), "")
}

/// hcsshim's `HostAttach(1)`: `EndpointAttachDetachRequest` into the host's compartment.
pub fn attach_to_host(id: &str) -> Call {
    Call::new(
        "POST",
        format!("/endpoints/{id}/attach"),
        json!({ "SystemType": "Host", "CompartmentId": 1 }).to_string(),
    )
}

/// HNS's answer (`{"Success": …, "Error": …, "Output": …}`): its `Output`, or its error.
pub fn output(response: &str) -> Result<Value, String> {
    let v: Value =
        serde_json::from_str(response).map_err(|e| format!("HNS answered something else than JSON ({e})"))?;
    if v["Success"].as_bool() == Some(true) {
        return Ok(v["Output"].clone());
    }
    Err(v["Error"].as_str().unwrap_or("HNS reported a failure without a reason").to_string())
}

/// The `ID` (and `IPAddress`) of the object named `name` in a list's `Output`.
pub fn find(list: &Value, name: &str) -> Option<(String, Option<String>)> {
    list.as_array()?
        .iter()
        .find(|o| o["Name"] == name)
        .map(|o| (o["ID"].as_str().unwrap_or_default().to_string(), o["IPAddress"].as_str().map(str::to_string)))
}

/// hcsshim treats this answer to an attach as done (flannel-io/flannel#1391).
pub fn already_attached(error: &str) -> bool {
    error.contains("This endpoint is already attached to the switch.")
}

/// What to do about the host endpoint, given the endpoints that exist: nothing, or delete a stale one first.
pub fn endpoint_plan(endpoints: &Value, name: &str, address: IpAddr) -> (bool, Option<String>) {
    match find(endpoints, name) {
        Some((_, Some(ip))) if ip == address.to_string() => (false, None),
        Some((id, _)) => (true, Some(id)),
        None => (true, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_hcsshims_field_names() {
        let c = create_endpoint("cbr0_ep", "3f5b-net", "10.244.1.2".parse().unwrap());
        assert_eq!((c.method, c.path.as_str()), ("POST", "/endpoints/"));
        let v: Value = serde_json::from_str(&c.request).unwrap();
        assert_eq!(v, json!({ "Name": "cbr0_ep", "VirtualNetwork": "3f5b-net", "IPAddress": "10.244.1.2" }));
        let a = attach_to_host("ep-1");
        assert_eq!(a.path, "/endpoints/ep-1/attach");
        assert_eq!(
            serde_json::from_str::<Value>(&a.request).unwrap(),
            json!({ "SystemType": "Host", "CompartmentId": 1 })
        );
    }

    #[test]
    fn answers_are_read_like_hcsshim_reads_them() {
        let list = output(r#"{"Success":true,"Output":[{"ID":"n1","Name":"nat"},{"ID":"n2","Name":"cbr0"}]}"#).unwrap();
        assert_eq!(find(&list, "cbr0"), Some(("n2".into(), None)));
        assert_eq!(find(&list, "cbr1"), None);
        let err = output(r#"{"Success":false,"Error":"Element not found."}"#).unwrap_err();
        assert_eq!(err, "Element not found.");
        assert!(output("<html>").is_err());
        assert!(already_attached("This endpoint is already attached to the switch."));
    }

    #[test]
    fn a_stale_host_endpoint_is_replaced_and_a_good_one_kept() {
        let eps = json!([{ "ID": "e1", "Name": "cbr0_ep", "IPAddress": "10.244.9.2" }]);
        let ip: IpAddr = "10.244.1.2".parse().unwrap();
        assert_eq!(endpoint_plan(&eps, "cbr0_ep", ip), (true, Some("e1".into())));
        assert_eq!(endpoint_plan(&eps, "cbr0_ep", "10.244.9.2".parse().unwrap()), (false, None));
        assert_eq!(endpoint_plan(&json!([]), "cbr0_ep", ip), (true, None));
    }
}
