package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// totemd carries Go's copy of the tz database: a board without
// /usr/share/zoneinfo still prints receipts in totem.time_zone (issue 17).
func TestTZDataEmbedded(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(out)), "time/tzdata") {
		t.Fatal("totemd does not import time/tzdata")
	}
}
