//! Settings learned from the cluster, as `kubeadm join` does: the `kubeadm-config` ConfigMap, the DNS
//! Service and the API server's version.

use super::PartialSettings;
use crate::version::{KubeVersion, VersionSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::{Api, Client};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("kube-system/kubeadm-config has an invalid ClusterConfiguration: {0}")]
    KubeadmConfig(String),
    #[error("could not read {what} from the cluster: {source}")]
    Api { what: &'static str, source: kube::Error },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    kubernetes_version: Option<String>,
    #[serde(default)]
    networking: Networking,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    pod_subnet: Option<String>,
    service_subnet: Option<String>,
    dns_domain: Option<String>,
}

/// Parses kubeadm's `ClusterConfiguration` (any apiVersion); dual-stack subnets keep their first range.
pub fn from_kubeadm_config(yaml: &str) -> Result<PartialSettings, DiscoverError> {
    let cc: ClusterConfiguration =
        serde_yaml::from_str(yaml).map_err(|e| DiscoverError::KubeadmConfig(e.to_string()))?;
    let first_net = |s: Option<String>, key: &str| -> Result<Option<ipnet::IpNet>, DiscoverError> {
        s.and_then(|s| s.split(',').next().map(|x| x.trim().to_string()))
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| DiscoverError::KubeadmConfig(format!("networking.{key} `{s}` is not a CIDR")))
            })
            .transpose()
    };
    let version = cc
        .kubernetes_version
        .map(|v| {
            v.parse::<KubeVersion>().map(VersionSpec::Exact).map_err(|e| DiscoverError::KubeadmConfig(e.to_string()))
        })
        .transpose()?;
    Ok(PartialSettings {
        cluster_cidr: first_net(cc.networking.pod_subnet, "podSubnet")?,
        service_cidr: first_net(cc.networking.service_subnet, "serviceSubnet")?,
        cluster_domain: cc.networking.dns_domain,
        kubernetes_version: version,
        ..Default::default()
    })
}

/// Reads what the cluster can tell; absent objects (no kubeadm, no kube-dns) are not errors.
pub async fn discover(client: &Client) -> Result<PartialSettings, DiscoverError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let mut found = match cms.get_opt("kubeadm-config").await {
        Ok(Some(cm)) => match cm.data.as_ref().and_then(|d| d.get("ClusterConfiguration")) {
            Some(yaml) => from_kubeadm_config(yaml)?,
            None => PartialSettings::default(),
        },
        Ok(None) => PartialSettings::default(),
        Err(source) => return Err(DiscoverError::Api { what: "kube-system/kubeadm-config", source }),
    };
    let svcs: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    match svcs.get_opt("kube-dns").await {
        Ok(Some(svc)) => {
            found.cluster_dns = svc.spec.and_then(|s| s.cluster_ip).and_then(|ip| ip.parse().ok());
        }
        Ok(None) => {}
        Err(source) => return Err(DiscoverError::Api { what: "kube-system/kube-dns", source }),
    }
    if found.kubernetes_version.is_none() {
        // Without kubeadm, match the kubelet to the API server: the safest point of the skew policy.
        let info = client
            .apiserver_version()
            .await
            .map_err(|source| DiscoverError::Api { what: "the API server version", source })?;
        found.kubernetes_version = KubeVersion::find_in(&info.git_version).map(VersionSpec::Exact);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubeadm_cluster_configuration() {
        let yaml = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.20.2\n\
                    networking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/16\n  dnsDomain: corp.local\n";
        let p = from_kubeadm_config(yaml).unwrap();
        assert_eq!(p.cluster_cidr.unwrap().to_string(), "10.244.0.0/16");
        assert_eq!(p.service_cidr.unwrap().to_string(), "10.96.0.0/16");
        assert_eq!(p.cluster_domain.as_deref(), Some("corp.local"));
        assert_eq!(p.kubernetes_version.unwrap().to_string(), "v1.20.2");
    }

    #[test]
    fn bad_subnet_in_kubeadm_config_is_named() {
        let err = from_kubeadm_config("networking:\n  podSubnet: banana\n").unwrap_err();
        assert!(err.to_string().contains("podSubnet `banana`"), "{err}");
    }
}
