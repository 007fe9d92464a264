package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/bundle"
	"github.com/aslcns/totem/sync/outbox"
)

// Seed 003's "Rimborsa" on the real parts — broker, hub and reference CMS,
// the totem's firmware, outbox, print queue and uplink, totemctl signing
// with an ops key: a citizen's reader request, a refund asked too early
// (refused, no receipt), the cancellation, the refund (accepted, its own
// receipt on the totem's printer, its own entry in the hub's send log
// referencing the reader request), and a second refund (refused).
func TestRefundAfterCancelledReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})
	reader := r.readerRequest(t, ctx, "20261123077")
	receipts := len(r.printer.Receipts())

	// Too early: the request stands.
	out, err := r.totemctl(ctx, r.ops, "refund", rigTotem, reader)
	if err != nil || !strings.Contains(out, "refund") || !strings.Contains(out, cms.CodeNotCancelled) || strings.Contains(out, "receipt:") {
		t.Fatalf("refund before the cancellation: %q %v", out, err)
	}
	// A technician may not: money goes back.
	if _, err := r.totemctl(ctx, r.tech, "refund", rigTotem, reader); refused(err) == "" {
		t.Fatalf("a technician's refund: %v", err)
	}
	if out, err := r.totemctl(ctx, r.ops, "cancel", rigTotem, reader, "--reason", "lettore non più necessario"); err != nil ||
		!strings.Contains(out, "accepted") {
		t.Fatalf("cancel: %q %v", out, err)
	}
	out, err = r.totemctl(ctx, r.ops, "refund", rigTotem, reader, "--reason", "lettore non più necessario")
	if err != nil || !strings.Contains(out, "received/accepted") || !strings.Contains(out, "refers to "+reader) ||
		!strings.Contains(out, "receipt: print job") {
		t.Fatalf("refund: %q %v", out, err)
	}
	got := r.printer.Receipts()
	if len(got) != receipts+1 || !strings.Contains(got[len(got)-1], "Rimborso lettore") ||
		!strings.Contains(got[len(got)-1], "Ricevuta di pagamento: 20261123077") || !strings.Contains(got[len(got)-1], "Esito: ACCOLTA") ||
		strings.Contains(got[len(got)-1], "RSSMRA80A01H501U") {
		t.Fatalf("receipts %q", got[receipts:])
	}
	// Its own entry in the hub's send log, referencing the reader request.
	out, err = r.totemctl(ctx, r.tech, "sendlog", "--hub", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []cms.Transmission
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	kinds := map[string]int{}
	for _, row := range rows {
		kinds[row.Kind]++
		if row.Kind == cms.KindRefund && row.Processing == cms.TxAccepted && row.Ref != reader {
			t.Errorf("refund entry %+v does not reference the reader request", row)
		}
	}
	if kinds[cms.KindRefund] != 2 || kinds[cms.KindCancellation] != 1 || kinds[cms.KindReader] != 1 {
		t.Fatalf("send log kinds %v", kinds)
	}
	// Once.
	out, err = r.totemctl(ctx, r.ops, "refund", rigTotem, reader)
	if err != nil || !strings.Contains(out, cms.CodeRefunded) || len(r.printer.Receipts()) != receipts+1 {
		t.Fatalf("second refund: %q %v", out, err)
	}

	// The receipt bundles of the refunds, as sendlog show N numbers them:
	// the refused one carries its errors' CSV, the accepted one none.
	dir := t.TempDir()
	for _, row := range rows {
		if row.Kind != cms.KindRefund {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("%d.zip", row.N))
		out, err := r.totemctl(ctx, r.tech, "sendlog", "receipt", fmt.Sprint(row.N), "--out", path)
		if err != nil {
			t.Fatalf("sendlog receipt %d: %v", row.N, err)
		}
		z, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range z.File {
			names = append(names, f.Name)
		}
		z.Close()
		want := []string{bundle.PDFName(row.N)}
		if row.Processing == cms.TxRejected {
			want = append(want, bundle.CSVName(row.N))
		}
		if !slices.Equal(names, want) || !strings.Contains(out, path) {
			t.Errorf("entry %d (%s): files %v, want %v; said %q", row.N, row.Processing, names, want, out)
		}
	}
	for _, args := range [][]string{{"sendlog", "receipt", "x", "--out", filepath.Join(dir, "x.zip")}, {"sendlog", "receipt", "1"}} {
		if _, err := r.totemctl(ctx, r.tech, args...); err == nil {
			t.Errorf("totemctl %v: no error", args)
		}
	}
	if _, err := r.totemctl(ctx, r.tech, "sendlog", "receipt", "999999", "--out", filepath.Join(dir, "none.zip")); err == nil {
		t.Error("an entry the hub does not have: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "none.zip")); err == nil {
		t.Error("a bundle written for an entry the hub does not have")
	}
}
