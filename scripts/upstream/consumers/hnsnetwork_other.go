//go:build !windows

package consumers

import "errors"

// HNSNetwork needs hcsshim's hcn, which compiles for Windows alone.
func HNSNetwork([]byte) (interface{}, error) {
	return nil, errors.New("hcsshim's hcn is Windows-only: run cnicheck.exe (under wine here)")
}
