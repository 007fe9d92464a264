//go:build !totemd_wedge

package main

import "github.com/aslcns/totem/firmware"

// testHook returns dev as it is; the test build's variant (hook_wedge.go)
// can wedge the session loop.
func testHook(dev firmware.Devices) firmware.Devices { return dev }
