package consumers

import (
	"errors"
	"fmt"
	"net"

	"github.com/Microsoft/hcsshim/hcn"
	"golang.org/x/sys/windows"
)

// Network is what hcsshim's hcn made of an HCN network definition.
type Network struct {
	Source        string   `json:"source"`
	Name          string   `json:"name"`
	Type          string   `json:"type"`
	SchemaVersion string   `json:"schemaVersion"`
	Subnets       []Subnet `json:"subnets"`
	Policies      []Policy `json:"policies,omitempty"`
	// How far hcsshim's HostComputeNetwork.Create got with it.
	Create string `json:"create"`
}

// Subnet is one IPAM subnet with its routes ("<destination> via <next hop>").
type Subnet struct {
	Prefix string   `json:"prefix"`
	Routes []string `json:"routes"`
}

var hcnNetworkTypes = map[hcn.NetworkType]bool{
	hcn.NAT: true, hcn.Transparent: true, hcn.L2Bridge: true, hcn.L2Tunnel: true, hcn.ICS: true, hcn.Private: true,
	hcn.Overlay: true,
}

// The settings type hcsshim has for each HCN network policy type.
var hcnNetworkSettings = map[hcn.NetworkPolicyType]func() interface{}{
	hcn.SourceMacAddress:    func() interface{} { return &hcn.SourceMacAddressNetworkPolicySetting{} },
	hcn.NetAdapterName:      func() interface{} { return &hcn.NetAdapterNameNetworkPolicySetting{} },
	hcn.VSwitchExtension:    func() interface{} { return &hcn.VSwitchExtensionNetworkPolicySetting{} },
	hcn.DrMacAddress:        func() interface{} { return &hcn.DrMacAddressNetworkPolicySetting{} },
	hcn.AutomaticDNS:        func() interface{} { return &hcn.AutomaticDNSNetworkPolicySetting{} },
	hcn.InterfaceConstraint: func() interface{} { return &hcn.InterfaceConstraintPolicySetting{} },
	hcn.ProviderAddress:     func() interface{} { return &hcn.ProviderAddressEndpointPolicySetting{} },
	hcn.RemoteSubnetRoute:   func() interface{} { return &hcn.RemoteSubnetRoutePolicySetting{} },
	hcn.VxlanPort:           func() interface{} { return &hcn.VxlanPortPolicySetting{} },
	hcn.SetPolicy:           func() interface{} { return &hcn.SetPolicySetting{} },
}

// HNSNetwork reads an HcnCreateNetwork definition into hcsshim's hcn.HostComputeNetwork, rejecting any field
// hcsshim does not have, and runs hcsshim's own checks of it.
func HNSNetwork(data []byte) (interface{}, error) {
	var n hcn.HostComputeNetwork
	if err := strict(data, &n); err != nil {
		return nil, fmt.Errorf("not an hcn.HostComputeNetwork (%s): %v", Hcsshim, err)
	}
	if n.SchemaVersion != hcn.V2SchemaVersion() {
		return nil, fmt.Errorf("schema version %d.%d: the HCN (v2) API takes %+v", n.SchemaVersion.Major, n.SchemaVersion.Minor, hcn.V2SchemaVersion())
	}
	if !hcnNetworkTypes[n.Type] {
		return nil, fmt.Errorf("hcsshim (%s) has no network type %q", Hcsshim, n.Type)
	}
	out := &Network{
		Source:        Hcsshim,
		Name:          n.Name,
		Type:          string(n.Type),
		SchemaVersion: fmt.Sprintf("%d.%d", n.SchemaVersion.Major, n.SchemaVersion.Minor),
	}
	for i, p := range n.Policies {
		mk, ok := hcnNetworkSettings[p.Type]
		if !ok {
			return nil, fmt.Errorf("policy %d: hcsshim (%s) has no HCN network policy type %q", i, Hcsshim, p.Type)
		}
		settings := mk()
		if len(p.Settings) > 0 {
			if err := strict(p.Settings, settings); err != nil {
				return nil, fmt.Errorf("policy %d: %s settings are not an hcsshim %T: %v", i, p.Type, settings, err)
			}
		}
		out.Policies = append(out.Policies, Policy{Type: string(p.Type), Settings: settings})
	}
	for _, ipam := range n.Ipams {
		for _, s := range ipam.Subnets {
			if _, _, err := net.ParseCIDR(s.IpAddressPrefix); err != nil {
				return nil, fmt.Errorf("subnet %q: %v", s.IpAddressPrefix, err)
			}
			sub := Subnet{Prefix: s.IpAddressPrefix}
			for _, r := range s.Routes {
				sub.Routes = append(sub.Routes, r.DestinationPrefix+" via "+r.NextHop)
			}
			out.Subnets = append(out.Subnets, sub)
		}
	}
	create, err := createUntilHNS(&n)
	if err != nil {
		return nil, err
	}
	out.Create = create
	return out, nil
}

// hcsshim's HostComputeNetwork.Create checks the subnets (a next hop on every route, a default route) before it
// calls HcnCreateNetwork. Without computenetwork.dll (wine) that call fails, so Create runs just its checks. On a
// machine with HNS it would create the network, so it is not run there.
func createUntilHNS(n *hcn.HostComputeNetwork) (string, error) {
	if windows.NewLazySystemDLL("computenetwork.dll").Load() == nil {
		return "not run: this machine has HNS, where Create would make the network", nil
	}
	network := *n
	_, err := network.Create()
	var hcnErr *hcn.HcnError
	switch {
	case err == nil:
		return "", errors.New("hcsshim's Create succeeded without computenetwork.dll")
	case errors.As(err, &hcnErr):
		return "hcsshim's checks passed; stopped at HcnCreateNetwork (no HNS here: " + err.Error() + ")", nil
	default:
		return "", fmt.Errorf("hcsshim (%s) HostComputeNetwork.Create: %v", Hcsshim, err)
	}
}
