package bundle

import (
	"archive/zip"
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"golang.org/x/text/encoding/charmap"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var at = time.Date(2026, 11, 23, 16, 5, 7, 0, time.UTC)

// records are send log entries of every shape a bundle is made of.
func records() map[string]cms.Transmission {
	stamp := &cms.Stamp{Boot: "b1", Mono: 1234, Wall: at.Add(-3 * time.Second), Synced: true}
	return map[string]cms.Transmission{
		"accepted": {N: 41, At: at, Totem: "demo-01", Seq: 7, OpID: strings.Repeat("a", 32), Kind: cms.KindConsent, Stamp: stamp,
			Transport: cms.TxReceived, Protocol: "261123000000041", Processing: cms.TxAccepted},
		"rejected": {N: 42, At: at, Totem: "demo-01", Seq: 8, OpID: strings.Repeat("b", 32), Kind: cms.KindReader, Stamp: stamp,
			Transport: cms.TxReceived, Protocol: "261123000000042", Processing: cms.TxRejected,
			Codes: []string{cms.CodePaymentReused, cms.CodeCardMismatch},
			Errors: []cms.Reject{{Code: cms.CodePaymentReused, Message: "Questa ricevuta di pagamento è già stata usata per un lettore."},
				{Code: cms.CodeCardMismatch, Message: "Il codice fiscale RSSMRA80A01H501U non corrisponde; né rssmra80a01h501u."}}},
		"refused-gap": {N: 43, At: at, Totem: "demo-02", Seq: 12, OpID: strings.Repeat("c", 32), Kind: cms.KindConsent,
			Transport: cms.TxRefused, Processing: cms.TxPending, Expect: 10, Repeats: 2, Last: at.Add(time.Minute)},
		"refund": {N: 44, At: at, Totem: "demo-01", Seq: 9, OpID: strings.Repeat("d", 32), Kind: cms.KindRefund, Ref: strings.Repeat("b", 32),
			Stamp: &cms.Stamp{Wall: at, Synced: false}, Transport: cms.TxReceived, Protocol: "261123000000044", Processing: cms.TxAccepted},
		"duplicate": {N: 45, At: at, Totem: "demo-01", Seq: 7, OpID: strings.Repeat("a", 32), Kind: cms.KindConsent, Duplicate: true,
			Transport: cms.TxReceived, Protocol: "261123000000041", Processing: cms.TxAccepted},
	}
}

// pdfText is the text an uncompressed fpdf document shows, one line per
// text operator, decoded from Windows-1252.
func pdfText(t *testing.T, b []byte) string {
	t.Helper()
	var out strings.Builder
	for _, m := range regexp.MustCompile(`\(((?:\\.|[^\\)])*)\) ?Tj`).FindAllSubmatch(b, -1) {
		s := regexp.MustCompile(`\\(.)`).ReplaceAll(m[1], []byte("$1"))
		u, err := charmap.Windows1252.NewDecoder().Bytes(s)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(u)
		out.WriteByte('\n')
	}
	return out.String()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cms/bundle -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

// unzip returns the files of a bundle by name.
func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range z.File {
		if !f.Modified.Equal(at) {
			t.Errorf("%s: modified %v, want the record's time", f.Name, f.Modified)
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(r)
		r.Close()
	}
	return files
}

// Every shape of record: the ZIP holds the PDF receipt and, only when the
// transmission was rejected or refused, the CSV of its errors; the PDF's
// text and the CSV are golden files; the bytes are the same every time;
// no codice fiscale in clear anywhere.
func TestBundle(t *testing.T) {
	compress = false
	defer func() { compress = true }()
	cf := regexp.MustCompile(`(?i)[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]`)
	for name, rec := range records() {
		t.Run(name, func(t *testing.T) {
			var a, b bytes.Buffer
			if err := Write(&a, rec); err != nil {
				t.Fatal(err)
			}
			if err := Write(&b, rec); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two bundles of the same record differ")
			}
			files := unzip(t, a.Bytes())
			pdf, ok := files[PDFName(rec.N)]
			if !ok || !bytes.HasPrefix(pdf, []byte("%PDF-")) || !bytes.Contains(pdf, []byte("/CreationDate (D:20261123170507)")) {
				t.Fatalf("no PDF dated from the record in %v", keys(files))
			}
			csvFile, hasCSV := files[CSVName(rec.N)]
			want := 1
			if HasErrors(&rec) {
				want = 2
			}
			if hasCSV != HasErrors(&rec) || len(files) != want {
				t.Fatalf("files %v for a %s/%s transmission", keys(files), rec.Transport, rec.Processing)
			}
			text := pdfText(t, pdf)
			golden(t, "pdf-"+name+".golden", []byte(text))
			for _, f := range files {
				if cf.Match(f) {
					t.Errorf("a codice fiscale in clear: %s", cf.Find(f))
				}
			}
			if hasCSV {
				golden(t, "csv-"+name+".golden", csvFile)
				if !bytes.HasPrefix(csvFile, []byte(strings.Join(Header, ";")+"\r\n")) {
					t.Errorf("csv header: %q", csvFile)
				}
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The compressed PDF (what Write gives outside these tests) is as
// deterministic, and a record without a number or a time is refused.
func TestBundleCompressedAndRefused(t *testing.T) {
	rec := records()["rejected"]
	var a, b bytes.Buffer
	if err := Write(&a, rec); err != nil {
		t.Fatal(err)
	}
	Write(&b, rec)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two compressed bundles differ")
	}
	t.Logf("bundle of a rejected transmission with 2 errors: %d bytes", a.Len())
	for _, bad := range []cms.Transmission{{At: at}, {N: 1}} {
		if err := Write(io.Discard, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"CF RSSMRA80A01H501U.":         "CF RSS**********01U.",
		"omocodia RSSMRA80A01H50MU ok": "omocodia RSS**********0MU ok",
		"team 80380001234567890123":    "team 80380001234567890123",
		"PAG-2026-000042":              "PAG-2026-000042",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}
