// Command cnicheck hands the network files wkjoin writes to the upstream code that reads them in production, and
// prints what that code made of them as JSON. It exits non-zero with the upstream error when the code rejects a
// file. Built by scripts/upstream/build from Debian-packaged sources only.
//
//	cnicheck conflist FILE      a CNI config list: both libcni versions, host-local, and (Windows build) win-bridge
//	cnicheck hns-network FILE   an HCN network definition as HcnCreateNetwork takes it (Windows build)
//	cnicheck hns-v1-requests FILE  hcsshim's own HNS v1 requests for a host endpoint (Windows build)
//	cnicheck version            where the upstream code came from
package main

import (
	"encoding/json"
	"fmt"
	"os"

	// Resolved through this package's vendor/ link to the Kubernetes tree's vendored libcni: what the kubelet's
	// dockershim (Kubernetes < 1.24, runtime docker) loads the CNI config directory with.
	"github.com/containernetworking/cni/libcni"

	"wkjoin/upstream/consumers"
)

// Set by scripts/upstream/build.
var kubeletLibcni = "unknown"

func main() {
	if len(os.Args) == 2 && os.Args[1] == "version" {
		emit(map[string]string{
			"kubeletLibcni": kubeletLibcni,
			"libcni":        consumers.Libcni,
			"plugins":       consumers.Plugins,
			"hcsshim":       consumers.Hcsshim,
		})
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cnicheck conflist FILE | cnicheck hns-network FILE | cnicheck hns-v1-requests FILE | cnicheck version")
		os.Exit(2)
	}
	path := os.Args[2]
	data, err := os.ReadFile(path)
	if err != nil {
		fail(path, err)
	}
	var out interface{}
	switch os.Args[1] {
	case "conflist":
		out, err = conflist(data)
	case "hns-network":
		out, err = consumers.HNSNetwork(data)
	case "hns-v1-requests":
		out, err = consumers.HNSV1Requests(data)
	default:
		err = fmt.Errorf("unknown check %q", os.Args[1])
	}
	if err != nil {
		fail(path, err)
	}
	emit(out)
}

// KubeletView is what the kubelet's libcni read from the file.
type KubeletView struct {
	Source     string   `json:"source"`
	Name       string   `json:"name"`
	CNIVersion string   `json:"cniVersion"`
	Plugins    []string `json:"plugins"`
}

// Summary is cnicheck conflist's output.
type Summary struct {
	Kubelet KubeletView         `json:"kubeletLibcni"`
	Debian  *consumers.ConfList `json:"containerd"`
}

func conflist(data []byte) (*Summary, error) {
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("libcni (%s): %v", kubeletLibcni, err)
	}
	view := KubeletView{Source: kubeletLibcni, Name: list.Name, CNIVersion: list.CNIVersion}
	for i, p := range list.Plugins {
		// libcni re-reads each plugin's bytes (with name and cniVersion injected) before it runs the plugin.
		conf, err := libcni.InjectConf(p, map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion})
		if err != nil {
			return nil, fmt.Errorf("libcni (%s): plugin %d: %v", kubeletLibcni, i, err)
		}
		if _, err := libcni.ConfFromBytes(conf.Bytes); err != nil {
			return nil, fmt.Errorf("libcni (%s): plugin %d: %v", kubeletLibcni, i, err)
		}
		view.Plugins = append(view.Plugins, p.Network.Type)
	}
	debian, err := consumers.CheckConfList(data)
	if err != nil {
		return nil, err
	}
	return &Summary{Kubelet: view, Debian: debian}, nil
}

func emit(v interface{}) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fail("stdout", err)
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "cnicheck: %s: %v\n", what, err)
	os.Exit(1)
}
