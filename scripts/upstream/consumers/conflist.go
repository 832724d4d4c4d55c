// Package consumers runs wkjoin's network files through Debian's packaged upstream code: libcni 1.x (what
// containerd reads CNI configs with), host-local's allocator, win-bridge's pkg/hns and hcsshim's hcn types.
package consumers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/allocator"
	"github.com/containernetworking/plugins/plugins/ipam/host-local/backend/disk"
)

// Where the code came from; set by scripts/upstream/build.
var (
	Libcni  = "unknown"
	Plugins = "unknown"
	Hcsshim = "unknown"
)

// What a runtime passes for a pod with a hostPort: libcni injects it as runtimeConfig.portMappings into every
// plugin that declares the portMappings capability.
var samplePortMapping = map[string]interface{}{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}

// ConfList is what libcni 1.x and the plugins made of a CNI config list.
type ConfList struct {
	Source     string   `json:"source"`
	Name       string   `json:"name"`
	CNIVersion string   `json:"cniVersion"`
	Plugins    []Plugin `json:"plugins"`
}

// Plugin is one plugin of the list, as its own code reads it.
type Plugin struct {
	Type          string                 `json:"type"`
	Capabilities  map[string]bool        `json:"capabilities,omitempty"`
	RuntimeConfig map[string]interface{} `json:"runtimeConfig,omitempty"`
	IPAM          *IPAM                  `json:"ipam,omitempty"`
	WinBridge     *WinBridge             `json:"winBridge,omitempty"`
	// Why a part of the plugin was not run through upstream code in this build.
	NotChecked []string `json:"notChecked,omitempty"`
}

// IPAM is what host-local's own config loader and allocator did with the plugin's ipam section.
type IPAM struct {
	Type   string   `json:"type"`
	Ranges []string `json:"ranges,omitempty"`
	// The first address host-local hands out (on a fresh node), and the gateway it reports with it.
	Addresses []string `json:"addresses,omitempty"`
	Gateways  []string `json:"gateways,omitempty"`
	Routes    []string `json:"routes,omitempty"`
}

// CheckConfList loads a conflist as containerd does and runs each plugin's config through its plugin's code.
func CheckConfList(data []byte) (*ConfList, error) {
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("libcni (%s): %w", Libcni, err)
	}
	out := &ConfList{Source: Libcni, Name: list.Name, CNIVersion: list.CNIVersion}
	for i, p := range list.Plugins {
		// libcni's buildOneConfig: the list's name and cniVersion, then the runtime config for declared capabilities.
		values := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
		rc := map[string]interface{}{}
		if p.Network.Capabilities["portMappings"] {
			rc["portMappings"] = []interface{}{samplePortMapping}
			values["runtimeConfig"] = rc
		}
		conf, err := libcni.InjectConf(p, values)
		if err != nil {
			return nil, fmt.Errorf("libcni (%s): plugin %d: %w", Libcni, i, err)
		}
		if _, err := libcni.ConfFromBytes(conf.Bytes); err != nil {
			return nil, fmt.Errorf("libcni (%s): plugin %d: %w", Libcni, i, err)
		}
		plugin := Plugin{Type: p.Network.Type, Capabilities: p.Network.Capabilities}
		if len(rc) > 0 {
			plugin.RuntimeConfig = rc
		}
		var addr *net.IPNet
		switch t := p.Network.IPAM.Type; t {
		case "host-local":
			ipam, first, err := hostLocal(conf.Bytes)
			if err != nil {
				return nil, fmt.Errorf("plugin %d (%s): %w", i, p.Network.Type, err)
			}
			plugin.IPAM, addr = ipam, first
		case "":
		default:
			plugin.IPAM = &IPAM{Type: t}
			plugin.NotChecked = append(plugin.NotChecked, fmt.Sprintf("ipam type %q: only host-local is checked", t))
		}
		if p.Network.Type == "win-bridge" {
			wb, err := winBridge(conf.Bytes, addr)
			if err != nil {
				return nil, fmt.Errorf("plugin %d (%s): %w", i, p.Network.Type, err)
			}
			if wb == nil {
				plugin.NotChecked = append(plugin.NotChecked, "win-bridge: pkg/hns is Windows-only: run cnicheck.exe")
			}
			plugin.WinBridge = wb
		}
		out.Plugins = append(out.Plugins, plugin)
	}
	return out, nil
}

// hostLocal does what the host-local plugin's ADD does (plugins/ipam/host-local/main.go): load the config with
// its loader, then allocate from each range set with its allocator, on a disk store of its own (a fresh node).
func hostLocal(conf []byte) (*IPAM, *net.IPNet, error) {
	ipamConf, _, err := allocator.LoadIPAMConfig(conf, "")
	if err != nil {
		return nil, nil, fmt.Errorf("host-local (%s): %w", Plugins, err)
	}
	dir, err := os.MkdirTemp("", "cnicheck-host-local-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	store, err := disk.New(ipamConf.Name, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("host-local (%s): %w", Plugins, err)
	}
	defer store.Close()
	out := &IPAM{Type: "host-local"}
	var first *net.IPNet
	for idx := range ipamConf.Ranges {
		rs := &ipamConf.Ranges[idx]
		out.Ranges = append(out.Ranges, rs.String())
		ipc, err := allocator.NewIPAllocator(rs, store, idx).Get("cnicheck", "eth0", nil)
		if err != nil {
			return nil, nil, fmt.Errorf("host-local (%s): allocating from range set %d: %w", Plugins, idx, err)
		}
		out.Addresses = append(out.Addresses, ipc.Address.String())
		out.Gateways = append(out.Gateways, ipc.Gateway.String())
		if first == nil {
			a := ipc.Address
			first = &a
		}
	}
	for _, r := range ipamConf.Routes {
		out.Routes = append(out.Routes, r.String())
	}
	return out, first, nil
}

// strict decodes data into v, rejecting fields v's type does not have: HNS would not understand them.
func strict(data []byte, v interface{}) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}
