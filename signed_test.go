package totem_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/synctest"
)

// TestSignedCommands runs the real programs with two more console keys made
// by totemctl keygen: a technician's the totem and the hub trust, and a
// stranger's nobody does. The technician reads but cannot change data;
// the stranger is refused; the demo console (ops) can do both.
func TestSignedCommands(t *testing.T) {
	needTools(t)
	bin := build(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	url := "mqtt://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	write(t, dir+"/ctl.toml", fmt.Sprintf("[broker]\nurl = %q\ncredentials_file = %q\n", url, dir+"/creds/console.json"))
	ctl := totemctl(ctx, bin, dir+"/ctl.toml")
	entry, err := ctl("keygen", "--id", "tech-1", "--role", "technician", "--out", dir+"/tech.key")
	if err != nil || !strings.Contains(entry, "[[console_keys]]") {
		t.Fatalf("keygen = %q, %v", entry, err)
	}
	if out, err := ctl("keygen", "--id", "tech-1", "--role", "technician", "--out", dir+"/tech.key"); err == nil {
		t.Fatalf("keygen overwrote a key: %q", out)
	}
	if out, err := ctl("keygen", "--id", "stranger", "--role", "ops", "--out", dir+"/stranger.key"); err != nil {
		t.Fatalf("keygen = %q, %v", out, err)
	}
	// keygen's output is the configuration entry, as printed.
	write(t, dir+"/hub.toml", fmt.Sprintf("state_dir = %q\n%s\n[broker]\nlisten = %q\ntls_listen = \"\"\n[fleet]\ncredentials_dir = %q\nprovision = [\"sig-01\"]\n[http]\nlisten = \"\"\n",
		dir+"/hub", entry, addr, dir+"/creds"))
	write(t, dir+"/totemd.toml", fmt.Sprintf("state_dir = %q\n%s\n[totem]\nid = \"sig-01\"\n[broker]\nurl = %q\ncredentials_file = %q\nreconnect_min = \"100ms\"\nreconnect_max = \"1s\"\n",
		dir+"/totemd", entry, url, dir+"/creds/sig-01.json"))

	var hubLog, totemLog synctest.Log
	hub := startProgram(t, ctx, &hubLog, bin+"/totemhub", "--config", dir+"/hub.toml")
	stopHub := sync.OnceFunc(func() { stopProgram(hub) })
	defer stopHub()
	totemd := startProgram(t, ctx, &totemLog, bin+"/totemd", "--config", dir+"/totemd.toml")
	stopTotem := sync.OnceFunc(func() { stopProgram(totemd) })
	defer stopTotem()
	// The totem answers once it is online (bounded: the context's deadline).
	for out, err := ctl("cmd", "sig-01", "ping"); err != nil || strings.TrimSpace(out) != "ok"; out, err = ctl("cmd", "sig-01", "ping") {
		if ctx.Err() != nil {
			stopTotem()
			stopHub()
			t.Fatalf("ping = %q, %v\nhub log:\n%s\ntotemd log:\n%s", out, err, hubLog.String(), totemLog.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	opid := strings.Repeat("0", 32)
	for _, c := range []struct {
		args []string
		want string // in the output; ok when ""
	}{
		{[]string{"--key", dir + "/tech.key", "cmd", "sig-01", "status"}, ""},
		{[]string{"--key", dir + "/tech.key", "sendlog", "--hub"}, ""},
		{[]string{"--key", dir + "/tech.key", "cancel", "sig-01", opid}, "(out_of_role)"},
		{[]string{"--key", dir + "/tech.key", "correct", "sig-01", opid, "payment=PAYREF-77"}, "(out_of_role)"},
		{[]string{"--key", dir + "/tech.key", "report"}, "(out_of_role)"},
		{[]string{"--key", dir + "/stranger.key", "cmd", "sig-01", "ping"}, "(unknown_key)"},
		{[]string{"--key", dir + "/stranger.key", "sendlog", "--hub"}, "(unknown_key)"},
		{[]string{"cancel", "sig-01", opid}, "outbox: not found"}, // ops: authorised, runs, no such operation
		{[]string{"report"}, ""},
	} {
		out, err := ctl(c.args...)
		if c.want == "" && err != nil || c.want != "" && !strings.Contains(out, c.want) {
			t.Errorf("%v = %q, %v; want %q", c.args, out, err, c.want)
		}
	}
	// The refusals are logged, with their code and without arguments.
	stopTotem()
	stopHub()
	if strings.Contains(totemLog.String(), "PAYREF") {
		t.Errorf("a refused command's arguments were logged:\n%s", totemLog.String())
	}
	if !strings.Contains(totemLog.String(), "code=out_of_role") || !strings.Contains(totemLog.String(), "code=unknown_key") ||
		!strings.Contains(hubLog.String(), "code=out_of_role") || !strings.Contains(hubLog.String(), "command refused") {
		t.Errorf("refusals not logged\nhub log:\n%s\ntotemd log:\n%s", hubLog.String(), totemLog.String())
	}
}
