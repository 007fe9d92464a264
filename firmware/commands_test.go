package firmware_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal/sim"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
)

// The firmware runs every command of the totems' table in sync/cmdsig (the
// verifier lets only those through): none is unknown to App.Command, and a
// name outside the table is answered unknown_command. The telemetry
// carries the verifier's count of refused commands.
func TestCommandTableKnown(t *testing.T) {
	dir := t.TempDir()
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	panel := sim.NewPanel(20, 4)
	refused := map[string]uint64{cmdsig.CodeUnsigned: 7}
	app := firmware.New(firmware.Devices{Reader: sim.NewReader("sim"), Printer: sim.NewPrinter(filepath.Join(dir, "receipts")),
		Keypad: panel, Display: panel}, firmware.Options{Totem: totemID, Outbox: box,
		CommandsRefused: func() map[string]uint64 { return refused }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	table := cmdsig.Commands(totemID)
	if len(table) == 0 {
		t.Fatal("empty table")
	}
	for name := range table {
		r := app.Command(ctx, &protocol.Command{V: 1, ID: "0123456789abcdef", Name: name})
		if r.Code == cmdsig.CodeUnknown {
			t.Errorf("%s, in the verifier's table, is unknown to the firmware: %+v", name, r)
		}
	}
	if r := app.Command(ctx, &protocol.Command{V: 1, ID: "0123456789abcdef", Name: "format_disk"}); r.OK || r.Code != cmdsig.CodeUnknown {
		t.Fatalf("format_disk: %+v", r)
	}
	if got := app.Telemetry().Refused; got[cmdsig.CodeUnsigned] != 7 || len(got) != 1 {
		t.Fatalf("telemetry refused %v", got)
	}
}
