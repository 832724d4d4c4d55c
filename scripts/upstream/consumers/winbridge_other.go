//go:build !windows

package consumers

import "net"

// WinBridge exists only in the Windows build: pkg/hns and hcsshim's hcn compile for Windows alone.
type WinBridge struct{}

func winBridge([]byte, *net.IPNet) (*WinBridge, error) { return nil, nil }
