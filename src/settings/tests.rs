//! Settings resolution: layering, defaults, validation.

use super::*;

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("WIN-NODE1".into()),
        interfaces: vec![
            ("lo".into(), "127.0.0.1/8".parse().unwrap()),
            ("Ethernet".into(), "172.30.0.11/24".parse().unwrap()),
        ],
        cni_bin_dirs: vec!["/usr/lib/cni".into()],
        ..Default::default()
    }
}

/// containerd as it answered over CRI, with an admin's unusual conf dir and sandbox image.
fn answered_runtime() -> RuntimeFacts {
    runtime::answered("registry.wkjoin-lab.test/sandbox:custom", "/srv/k8s/cni-conf", None, false)
}

#[test]
fn the_runtime_decides_the_cni_dirs_and_pause_image_unless_a_flag_does() {
    let host = HostFacts { runtime: Some(answered_runtime()), ..host() };
    let s = resolve(Os::Linux, None, &[], &host).unwrap();
    assert_eq!(s.cni_conf_dir, "/srv/k8s/cni-conf");
    assert_eq!(s.pause_image, "registry.wkjoin-lab.test/sandbox:custom");
    assert_eq!(s.origins.cni_conf_dir, Some(Origin::Runtime("CRI Status".into())));
    let flags = PartialSettings {
        cni_conf_dir: Some("/etc/cni/net.d".into()),
        pause_image: Some("wkjoin.local/pause:1.0".into()),
        ..Default::default()
    };
    let s = resolve(Os::Linux, None, &[(Origin::CommandLine, &flags)], &host).unwrap();
    assert_eq!((s.cni_conf_dir.as_str(), s.pause_image.as_str()), ("/etc/cni/net.d", "wkjoin.local/pause:1.0"));
    assert_eq!(s.origins.pause_image, Some(Origin::CommandLine));
    // Docker (dockershim): the kubelet runs CNI from wkjoin's own dir; containerd's answer does not apply.
    let docker = PartialSettings { runtime: Some(Runtime::Docker), ..Default::default() };
    let s = resolve(Os::Windows, None, &[(Origin::CommandLine, &docker)], &host).unwrap();
    assert_eq!(s.cni_conf_dir, "C:\\k\\cni\\config");
    assert!(s.runtime_facts.is_none());
}

#[test]
fn a_windows_pause_image_without_a_variant_for_the_host_build_is_replaced_unless_the_admin_chose_it() {
    let ltsc2025 = HostFacts {
        windows_build: Some(26100),
        runtime: Some(runtime::answered("registry.k8s.io/pause:3.6", "C:\\cni", None, false)),
        ..host()
    };
    let s = resolve(Os::Windows, None, &[], &ltsc2025).unwrap();
    assert_eq!(s.pause_image, "registry.k8s.io/pause:3.10.2");
    assert!(
        matches!(&s.origins.pause_image, Some(Origin::Runtime(why)) if why.contains("no variant for Windows build 26100"))
    );
    // Server 2022 runs pause:3.6; an admin's explicit image is the admin's call.
    let ltsc2022 = HostFacts { windows_build: Some(20348), ..ltsc2025.clone() };
    assert_eq!(resolve(Os::Windows, None, &[], &ltsc2022).unwrap().pause_image, "registry.k8s.io/pause:3.6");
    let flags = PartialSettings { pause_image: Some("registry.k8s.io/pause:3.6".into()), ..Default::default() };
    let s = resolve(Os::Windows, None, &[(Origin::CommandLine, &flags)], &ltsc2025).unwrap();
    assert_eq!(s.pause_image, "registry.k8s.io/pause:3.6");
}

#[test]
fn without_an_answer_the_dirs_are_containerds_defaults_for_the_os() {
    let s = resolve(Os::Linux, None, &[], &host()).unwrap();
    assert_eq!(s.cni_conf_dir, "/etc/cni/net.d");
    // A runtime that was asked but did not answer is kept for preflight, and decides nothing.
    let silent = RuntimeFacts { answered: false, error: Some("connection refused".into()), ..answered_runtime() };
    let s = resolve(Os::Linux, None, &[], &HostFacts { runtime: Some(silent), ..host() }).unwrap();
    assert_eq!((s.cni_conf_dir.as_str(), s.pause_image.as_str()), ("/etc/cni/net.d", "registry.k8s.io/pause:3.9"));
    assert!(s.runtime_facts.as_ref().is_some_and(|r| !r.answered));
    let s = resolve(Os::Windows, None, &[], &host()).unwrap();
    assert_eq!(s.cni_conf_dir, "C:\\Program Files\\containerd\\cni\\conf");
    assert_eq!(s.origins.cni_conf_dir, Some(Origin::Default));
}

#[test]
fn defaults_follow_kubeadm_and_lowercase_the_hostname() {
    let s = resolve(Os::Linux, None, &[], &host()).unwrap();
    assert_eq!(s.node_name, "win-node1");
    assert_eq!(s.service_cidr.to_string(), "10.96.0.0/12");
    assert_eq!(s.cluster_dns.to_string(), "10.96.0.10");
    assert_eq!(s.node_network.unwrap().to_string(), "172.30.0.0/24");
    assert_eq!(s.root_dir, "/var/lib/wkjoin");
    assert_eq!(s.cni_bin_dir, "/usr/lib/cni");
    assert_eq!(s.runtime_endpoint.as_deref(), Some("unix:///run/containerd/containerd.sock"));
}

#[test]
fn higher_layers_win_field_by_field() {
    let flags = PartialSettings { cluster_cidr: Some("10.200.0.0/16".parse().unwrap()), ..Default::default() };
    let file = PartialSettings {
        cluster_cidr: Some("10.100.0.0/16".parse().unwrap()),
        service_cidr: Some("10.97.0.0/16".parse().unwrap()),
        ..Default::default()
    };
    let cluster = PartialSettings {
        service_cidr: Some("10.98.0.0/16".parse().unwrap()),
        cluster_domain: Some("corp.local".into()),
        ..Default::default()
    };
    let s = resolve(
        Os::Windows,
        None,
        &[
            (Origin::CommandLine, &flags),
            (Origin::File("wkjoin.yaml".into()), &file),
            (Origin::Cluster("kubeadm-config"), &cluster),
        ],
        &host(),
    )
    .unwrap();
    assert_eq!(s.cluster_cidr.to_string(), "10.200.0.0/16");
    assert_eq!(s.service_cidr.to_string(), "10.97.0.0/16");
    assert_eq!(s.cluster_dns.to_string(), "10.97.0.10");
    assert_eq!(s.cluster_domain, "corp.local");
    assert_eq!(s.root_dir, "C:\\k");
    assert_eq!(s.cni_bin_dir, "C:\\k\\cni");
    assert_eq!(s.origins.service_cidr, Some(Origin::File("wkjoin.yaml".into())));
}

#[test]
fn config_file_rejects_unknown_keys_by_name() {
    let err = serde_yaml::from_str::<PartialSettings>("cluster-cidr: 10.244.0.0/16\nclustercidr: x\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `clustercidr`"), "{err}");
}
