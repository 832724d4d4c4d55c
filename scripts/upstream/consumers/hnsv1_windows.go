package consumers

import (
	"encoding/json"
	"fmt"
	"net"

	"github.com/Microsoft/hcsshim"
)

// HNSV1Requests prints what hcsshim itself sends to HNS (vmcompute.dll's HNSCall) for flannel's host-gw host
// endpoint: HNSEndpoint.Create's POST /endpoints/ body for the endpoint described in data (Name, VirtualNetwork,
// IPAddress), and HostAttach(1)'s POST /endpoints/<id>/attach body. wkjoin's requests must equal them.
func HNSV1Requests(data []byte) (interface{}, error) {
	var in struct {
		Name           string
		VirtualNetwork string
		IPAddress      string
	}
	if err := strict(data, &in); err != nil {
		return nil, err
	}
	ip := net.ParseIP(in.IPAddress)
	if ip == nil {
		return nil, fmt.Errorf("IPAddress %q is not an address", in.IPAddress)
	}
	create, err := json.Marshal(&hcsshim.HNSEndpoint{Name: in.Name, VirtualNetwork: in.VirtualNetwork, IPAddress: ip})
	if err != nil {
		return nil, err
	}
	// HostAttach(1) as hcsshim builds it; its SystemType type is internal, so the value goes in through JSON.
	var req hcsshim.EndpointAttachDetachRequest
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{"SystemType":%q}`, hcsshim.HostType)), &req); err != nil {
		return nil, err
	}
	req.CompartmentID = 1
	attach, err := json.Marshal(&req)
	if err != nil {
		return nil, err
	}
	return map[string]json.RawMessage{"create": create, "attach": attach}, nil
}
