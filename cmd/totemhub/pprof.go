package main

import (
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
)

// TOTEM_PPROF=127.0.0.1:PORT serves the Go runtime's profiles
// (/debug/pprof/) on that loopback address, to profile the hub in a bench
// (make bench-fleet passes its environment on); any other address is
// ignored. Never set in a deployment.
func init() {
	addr := os.Getenv("TOTEM_PPROF")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go http.ListenAndServe(addr, mux) //nolint:gosec // loopback, bench only
}
