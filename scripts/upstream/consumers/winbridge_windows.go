package consumers

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/Microsoft/hcsshim"
	"github.com/Microsoft/hcsshim/hcn"
	"github.com/containernetworking/plugins/pkg/hns"
)

// winBridgeConf is win-bridge's own NetConf (plugins/main/windows/win-bridge/win-bridge_windows.go, package main
// upstream, so not importable): pkg/hns's NetConf plus ipMasqNetwork.
type winBridgeConf struct {
	hns.NetConf

	IPMasqNetwork string `json:"ipMasqNetwork,omitempty"`
}

// WinBridge is the endpoint win-bridge would ask HNS for, built by win-bridge's own steps.
type WinBridge struct {
	APIVersion int    `json:"apiVersion"`
	API        string `json:"api"`
	// The HNS network win-bridge looks up by name: kube-proxy's KUBE_NETWORK must name the same one.
	Network  string   `json:"network"`
	Gateway  string   `json:"gateway,omitempty"`
	Policies []Policy `json:"policies"`
	// The endpoint as win-bridge hands it to hcsshim (hcn.HostComputeEndpoint or hcsshim.HNSEndpoint).
	Endpoint interface{} `json:"endpoint"`
}

// Policy is one endpoint policy with its settings in hcsshim's type for it.
type Policy struct {
	Type     string      `json:"type"`
	Settings interface{} `json:"settings,omitempty"`
}

// winBridge follows win-bridge's cmdAdd (v1.1.1) up to the HNS calls: loadNetConf, processEndpointArgs (with the
// address host-local gave), then GenerateHcnEndpoint (apiVersion 2) or GenerateHnsEndpoint without their lookups
// of existing endpoints, which need a live HNS.
func winBridge(conf []byte, addr *net.IPNet) (*WinBridge, error) {
	n := &winBridgeConf{}
	if err := json.Unmarshal(conf, n); err != nil {
		return nil, fmt.Errorf("win-bridge (%s): failed to load netconf: %v", Plugins, err)
	}
	epInfo := &hns.EndpointInfo{NetworkName: n.Name}
	epInfo.EndpointName = hns.ConstructEndpointName("cnicheck", "", n.Name)
	if n.IPAM.Type != "" {
		if addr == nil {
			return nil, fmt.Errorf("win-bridge: ipam type %q was not run, so there is no address to check with", n.IPAM.Type)
		}
		epInfo.IpAddress = addr.IP
		// win-bridge: "Calculate gateway for bridge network (needs to be x.2)".
		epInfo.Gateway = addr.IP.Mask(addr.Mask)
		epInfo.Gateway[len(epInfo.Gateway)-1] += 2
	}
	n.ApplyOutboundNatPolicy(n.IPMasqNetwork)
	n.ApplyPortMappingPolicy(n.RuntimeConfig.PortMaps)
	epInfo.DNS = n.GetDNS()

	out := &WinBridge{APIVersion: n.ApiVersion, Network: n.Name, Gateway: hns.GetIpString(&epInfo.Gateway)}
	endpointPolicies := 0
	for i, p := range n.Policies {
		if !strings.EqualFold(p.Name, "EndpointPolicy") {
			return nil, fmt.Errorf("win-bridge: policy %d is named %q: win-bridge applies only EndpointPolicy and drops the rest", i, p.Name)
		}
		endpointPolicies++
		var typed Policy
		var err error
		if n.ApiVersion == 2 {
			typed, err = hcnEndpointPolicy(p.Value)
		} else {
			typed, err = hnsEndpointPolicy(p.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("win-bridge (apiVersion %d): policy %d %s: %v", n.ApiVersion, i, p.Value, err)
		}
		out.Policies = append(out.Policies, typed)
	}

	if n.ApiVersion == 2 {
		out.API = "HCN (v2): hcn.HostComputeEndpoint"
		policies := n.GetHostComputeEndpointPolicies()
		// GetHostComputeEndpointPolicies silently drops a policy it cannot unmarshal.
		if len(policies) != endpointPolicies {
			return nil, fmt.Errorf("win-bridge: pkg/hns kept %d of %d endpoint policies", len(policies), endpointPolicies)
		}
		out.Endpoint = &hcn.HostComputeEndpoint{
			SchemaVersion: hcn.SchemaVersion{Major: 2, Minor: 0},
			Name:          epInfo.EndpointName,
			Dns: hcn.Dns{
				Domain:     epInfo.DNS.Domain,
				Search:     epInfo.DNS.Search,
				ServerList: epInfo.DNS.Nameservers,
				Options:    epInfo.DNS.Options,
			},
			Routes: []hcn.Route{{
				NextHop:           hns.GetIpString(&epInfo.Gateway),
				DestinationPrefix: hns.GetDefaultDestinationPrefix(&epInfo.Gateway),
			}},
			IpConfigurations: []hcn.IpConfig{{IpAddress: hns.GetIpString(&epInfo.IpAddress)}},
			Policies:         policies,
		}
	} else {
		out.API = "HNS (v1): hcsshim.HNSEndpoint"
		out.Endpoint = &hcsshim.HNSEndpoint{
			Name:           epInfo.EndpointName,
			DNSServerList:  strings.Join(epInfo.DNS.Nameservers, ","),
			DNSSuffix:      strings.Join(epInfo.DNS.Search, ","),
			GatewayAddress: hns.GetIpString(&epInfo.Gateway),
			IPAddress:      epInfo.IpAddress,
			Policies:       n.GetHNSEndpointPolicies(),
		}
	}
	return out, nil
}

// The settings type hcsshim has for each HCN endpoint policy type.
var hcnEndpointSettings = map[hcn.EndpointPolicyType]func() interface{}{
	hcn.PortMapping:                func() interface{} { return &hcn.PortMappingPolicySetting{} },
	hcn.ACL:                        func() interface{} { return &hcn.AclPolicySetting{} },
	hcn.QOS:                        func() interface{} { return &hcn.QosPolicySetting{} },
	hcn.OutBoundNAT:                func() interface{} { return &hcn.OutboundNatPolicySetting{} },
	hcn.SDNRoute:                   func() interface{} { return &hcn.SDNRoutePolicySetting{} },
	hcn.L4WFPPROXY:                 func() interface{} { return &hcn.L4WfpProxyPolicySetting{} },
	hcn.PortName:                   func() interface{} { return &hcn.PortnameEndpointPolicySetting{} },
	hcn.EncapOverhead:              func() interface{} { return &hcn.EncapOverheadEndpointPolicySetting{} },
	hcn.NetworkProviderAddress:     func() interface{} { return &hcn.ProviderAddressEndpointPolicySetting{} },
	hcn.NetworkInterfaceConstraint: func() interface{} { return &hcn.InterfaceConstraintPolicySetting{} },
}

func hcnEndpointPolicy(value json.RawMessage) (Policy, error) {
	var p hcn.EndpointPolicy
	if err := strict(value, &p); err != nil {
		return Policy{}, fmt.Errorf("not an hcn.EndpointPolicy (%s): %v", Hcsshim, err)
	}
	mk, ok := hcnEndpointSettings[p.Type]
	if !ok {
		return Policy{}, fmt.Errorf("hcsshim (%s) has no HCN endpoint policy type %q", Hcsshim, p.Type)
	}
	settings := mk()
	if len(p.Settings) == 0 {
		return Policy{Type: string(p.Type)}, nil
	}
	if err := strict(p.Settings, settings); err != nil {
		return Policy{}, fmt.Errorf("%s settings are not an hcsshim %T: %v", p.Type, settings, err)
	}
	return Policy{Type: string(p.Type), Settings: settings}, nil
}

// The type hcsshim has for each HNS (v1) endpoint policy type.
var hnsEndpointPolicies = map[hcsshim.PolicyType]func() interface{}{
	hcsshim.Nat:         func() interface{} { return &hcsshim.NatPolicy{} },
	hcsshim.ACL:         func() interface{} { return &hcsshim.ACLPolicy{} },
	hcsshim.PA:          func() interface{} { return &hcsshim.PaPolicy{} },
	hcsshim.VLAN:        func() interface{} { return &hcsshim.VlanPolicy{} },
	hcsshim.VSID:        func() interface{} { return &hcsshim.VsidPolicy{} },
	hcsshim.Isolation:   func() interface{} { return &hcsshim.IsolationPolicy{} },
	hcsshim.QOS:         func() interface{} { return &hcsshim.QosPolicy{} },
	hcsshim.OutboundNat: func() interface{} { return &hcsshim.OutboundNatPolicy{} },
	hcsshim.Route:       func() interface{} { return &hcsshim.RoutePolicy{} },
	hcsshim.Proxy:       func() interface{} { return &hcsshim.ProxyPolicy{} },
}

func hnsEndpointPolicy(value json.RawMessage) (Policy, error) {
	var p hcsshim.Policy
	if err := json.Unmarshal(value, &p); err != nil {
		return Policy{}, fmt.Errorf("not an HNS policy (%s): %v", Hcsshim, err)
	}
	mk, ok := hnsEndpointPolicies[p.Type]
	if !ok {
		return Policy{}, fmt.Errorf("hcsshim (%s) has no HNS (v1) endpoint policy type %q", Hcsshim, p.Type)
	}
	typed := mk()
	if err := strict(value, typed); err != nil {
		return Policy{}, fmt.Errorf("not an hcsshim %T: %v", typed, err)
	}
	return Policy{Type: string(p.Type), Settings: typed}, nil
}
