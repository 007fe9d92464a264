package vprinter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/escpos"
)

// A printer started again on a paper directory goes on numbering: the
// receipts of an earlier run (the demo's previous make run) stay as they
// were.
func TestNumberingContinues(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"001.txt": "first", "001.png": "png", "007.txt": "seventh", "notes.txt": "x", "12a.txt": "y"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := lastNumber(dir); err != nil || n != 7 {
		t.Fatalf("lastNumber = %d, %v", n, err)
	}
	v, err := Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, _ := escpos.ProfileByName("tm-t20")
	b, err := escpos.Encode(escpos.TestDoc(p), p)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(v.TTY(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if _, err := tty.Write(b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := v.WaitReceipts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	files, err := v.Files()
	if err != nil || len(files) != 2 || filepath.Base(files[0]) != "008.txt" || filepath.Base(files[1]) != "008.png" {
		t.Fatalf("files %v, %v", files, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "001.txt")); string(b) != "first" {
		t.Fatalf("001.txt overwritten: %q", b)
	}
}
