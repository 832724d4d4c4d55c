//! The pod network fitted to what the host has: an HNS network of the same name made for another pod CIDR.

use super::network_actions;
use crate::layout::Os;
use crate::plan::{Action, Plan};
use crate::settings::Settings;
use ipnet::IpNet;

/// The HNS network named like the pod network, as found on the host before the start step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFound {
    /// Its subnets; `None` when there is no such network.
    pub subnets: Option<Vec<IpNet>>,
    /// The state file records that wkjoin created it.
    pub ours: bool,
}

/// The pod network's actions for what is on the host: a network of that name made for another pod CIDR is
/// removed and made anew when wkjoin created it (its pods are gone with the old CIDR anyway), and refused when
/// it did not (it is another tool's). A network that fits is kept as it is.
pub fn network_actions_for(s: &Settings, pod_cidr: IpNet, found: &NetworkFound) -> Result<Vec<Action>, String> {
    let actions = network_actions(s, pod_cidr);
    let Some(subnets) = found.subnets.as_ref().filter(|n| s.os == Os::Windows && n.as_slice() != [pod_cidr]) else {
        return Ok(actions);
    };
    let shown = subnets.iter().map(IpNet::to_string).collect::<Vec<_>>().join(", ");
    if !found.ours {
        return Err(format!(
            "HNS network {name} exists with subnet {shown}, not this node's pod CIDR {pod_cidr}, and wkjoin did not \
             create it: remove it if nothing uses it (Get-HnsNetwork | ? Name -eq '{name}' | Remove-HnsNetwork), \
             or give --network-name for wkjoin's own",
            name = s.network_name,
            shown = if shown.is_empty() { "(none)".to_string() } else { shown },
        ));
    }
    let mut out = vec![Action::RemoveHnsNetwork { name: s.network_name.clone() }];
    out.extend(actions);
    Ok(out)
}

/// The start plan with its pod network fitted to what was found ([`network_actions_for`]); a plan still waiting
/// for the pod CIDR is fitted when it is re-planned.
pub fn fit_network(mut plan: Plan, s: &Settings, found: &NetworkFound) -> Result<Plan, String> {
    let Some(cidr) = s.pod_cidr else { return Ok(plan) };
    let plain = network_actions(s, cidr);
    let fitted = network_actions_for(s, cidr, found)?;
    if plain != fitted
        && let Some(at) = plan.actions.iter().position(|a| Some(a) == plain.first())
    {
        plan.actions.splice(at..at + plain.len(), fitted);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{HostFacts, Origin, PartialSettings, resolve};

    fn settings() -> Settings {
        let p = PartialSettings {
            node_name: Some("win-1".into()),
            node_ip: Some("172.30.0.11".parse().unwrap()),
            pod_cidr: Some("10.244.1.0/24".parse().unwrap()),
            kubernetes_version: Some("v1.20.2".parse().unwrap()),
            ..Default::default()
        };
        resolve(Os::Windows, None, &[(Origin::CommandLine, &p)], &HostFacts::default()).unwrap()
    }

    fn found(subnet: Option<&str>, ours: bool) -> NetworkFound {
        NetworkFound { subnets: subnet.map(|n| vec![n.parse().unwrap()]), ours }
    }

    #[test]
    fn a_network_made_for_another_pod_cidr_is_recreated_only_when_it_is_wkjoins() {
        let s = settings();
        let cidr: IpNet = "10.244.1.0/24".parse().unwrap();
        let plain = network_actions(&s, cidr);
        assert_eq!(network_actions_for(&s, cidr, &found(None, false)).unwrap(), plain, "no network yet");
        assert_eq!(network_actions_for(&s, cidr, &found(Some("10.244.1.0/24"), false)).unwrap(), plain, "it fits");
        let recreate = network_actions_for(&s, cidr, &found(Some("10.244.9.0/24"), true)).unwrap();
        assert_eq!(recreate[0], Action::RemoveHnsNetwork { name: "cbr0".into() });
        assert_eq!(recreate[1..], plain[..]);
        let err = network_actions_for(&s, cidr, &found(Some("10.244.9.0/24"), false)).unwrap_err();
        assert!(err.contains("10.244.9.0/24") && err.contains("wkjoin did not create it"), "{err}");
        assert!(err.contains("Remove-HnsNetwork") && err.contains("--network-name"), "{err}");
    }

    #[test]
    fn the_start_plan_removes_wkjoins_stale_network_right_before_making_it_anew() {
        let s = settings();
        let plan = super::super::plan(&s, s.kubernetes_version.exact(), &s.pause_image);
        let fitted = fit_network(plan.clone(), &s, &found(Some("10.244.9.0/24"), true)).unwrap();
        let at = fitted.actions.iter().position(|a| matches!(a, Action::RemoveHnsNetwork { .. })).unwrap();
        assert!(matches!(fitted.actions[at + 1], Action::CreateHnsNetwork { .. }), "{:#?}", fitted.actions);
        assert_eq!(fitted.actions.len(), plan.actions.len() + 1);
        assert_eq!(fit_network(plan.clone(), &s, &found(Some("10.244.1.0/24"), false)).unwrap(), plan);
        assert!(fit_network(plan, &s, &found(Some("10.244.9.0/24"), false)).is_err());
    }
}
