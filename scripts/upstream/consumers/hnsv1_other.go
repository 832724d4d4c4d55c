//go:build !windows

package consumers

import "errors"

// HNSV1Requests needs hcsshim's root package, which compiles for Windows alone.
func HNSV1Requests([]byte) (interface{}, error) {
	return nil, errors.New("hcsshim is Windows-only: run cnicheck.exe (under wine here)")
}
