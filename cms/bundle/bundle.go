// Package bundle makes the receipt bundle of one transmission of the hub's
// send log, shaped like Sistema TS's (seed 003: "le ricevute vengono
// scaricate in formato archivio ZIP contenente il file della ricevuta in
// formato PDF e, in caso di errori, anche … file in formato testuale CSV"):
// a ZIP with the PDF receipt and, when the transmission was rejected or
// refused, a CSV of its errors — semicolon-separated, an upper-case header
// row, one row per error.
//
// The output is a function of the record alone: the PDF's dates and the
// ZIP's times are the record's (received at the hub), nothing random, so
// the same entry always gives the same bytes. No codice fiscale appears in
// clear: the record holds none, and one quoted in a CMS message is masked.
//
// The hub's ops console and totemctl (`sendlog receipt N`) both call Write.
package bundle

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Rome on hosts without a zoneinfo database

	"codeberg.org/go-pdf/fpdf"
	"github.com/aslcns/totem/cms"
)

// CodeSeqGap is the error file's code of a transmission the hub refused
// for a sequence gap (the send log keeps the number it expected, no code).
const CodeSeqGap = "SEQ_GAP"

// Header is the CSV's header row.
var Header = []string{"PROTOCOLLO", "TOTEM", "SEQUENZA", "ID OPERAZIONE", "TIPO OPERAZIONE", "DATA INVIO", "CODICE ERRORE", "DESCRIZIONE ERRORE"}

// rome is the time zone the receipts are written in: the ASLs'.
var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic("bundle: " + err.Error()) // time/tzdata is embedded
	}
	return l
}()

// Names of the files in the ZIP for send log entry n.
func PDFName(n uint64) string { return fmt.Sprintf("ricevuta_%d.pdf", n) }
func CSVName(n uint64) string { return fmt.Sprintf("errori_%d.csv", n) }

// HasErrors reports whether the bundle of t carries an error file: the
// CMS rejected the operation, or the hub refused the transmission.
func HasErrors(t *cms.Transmission) bool {
	return t.Processing == cms.TxRejected || t.Transport == cms.TxRefused
}

// Write writes the ZIP of transmission t to w: the PDF receipt and, when
// the transmission was rejected or refused, the CSV of its errors.
func Write(w io.Writer, t cms.Transmission) error {
	if t.N == 0 || t.At.IsZero() {
		return fmt.Errorf("bundle: send log entry %d without a number or a time", t.N)
	}
	var pdf bytes.Buffer
	if err := PDF(&pdf, t); err != nil {
		return err
	}
	z := zip.NewWriter(w)
	add := func(name string, b []byte) error {
		f, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: t.At.In(rome)})
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		return err
	}
	if err := add(PDFName(t.N), pdf.Bytes()); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if HasErrors(&t) {
		var c bytes.Buffer
		if err := CSV(&c, t); err != nil {
			return err
		}
		if err := add(CSVName(t.N), c.Bytes()); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// errorsOf returns the errors of t, one per code when the record kept the
// codes only (a listing), with their messages masked.
func errorsOf(t *cms.Transmission) []cms.Reject {
	var out []cms.Reject
	for _, e := range t.Errors {
		out = append(out, cms.Reject{Code: e.Code, Message: Mask(e.Message)})
	}
	if len(out) == 0 {
		for _, c := range t.Codes {
			out = append(out, cms.Reject{Code: c})
		}
	}
	if len(out) == 0 && t.Transport == cms.TxRefused && t.Expect > 0 {
		out = append(out, cms.Reject{Code: CodeSeqGap,
			Message: fmt.Sprintf("Numero di sequenza non atteso: il CMS attendeva il %d.", t.Expect)})
	}
	return out
}

// CSV writes the error file of t: the header row, then one row per error
// (none for an accepted transmission).
func CSV(w io.Writer, t cms.Transmission) error {
	c := csv.NewWriter(w)
	c.Comma = ';'
	c.UseCRLF = true // as Sistema TS's, and what a spreadsheet on the ops desk expects
	c.Write(Header)
	date := t.At.In(rome).Format("02/01/2006 15:04:05")
	if HasErrors(&t) {
		for _, e := range errorsOf(&t) {
			c.Write([]string{t.Protocol, t.Totem, strconv.FormatUint(t.Seq, 10), t.OpID, t.Kind, date, e.Code, e.Message})
		}
	}
	c.Flush()
	if err := c.Error(); err != nil {
		return fmt.Errorf("bundle: csv: %w", err)
	}
	return nil
}

// cfPattern finds a codice fiscale, omocodia included.
var cfPattern = regexp.MustCompile(`(?i)\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b`)

// Mask hides every codice fiscale in s as the receipts do: the first three
// and the last three characters stay (RSS**********01U).
func Mask(s string) string {
	return cfPattern.ReplaceAllStringFunc(s, func(cf string) string { return cf[:3] + strings.Repeat("*", 10) + cf[13:] })
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var (
	transportText  = map[string]string{cms.TxReceived: "ricevuta", cms.TxRefused: "rifiutata"}
	processingText = map[string]string{cms.TxAccepted: "ACCOLTA", cms.TxRejected: "RESPINTA", cms.TxPending: "in attesa"}
)

func text(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return or(k)
}

// rows are the receipt's label/value lines.
func rows(t *cms.Transmission) [][2]string {
	rs := [][2]string{
		{"Numero dell'invio", strconv.FormatUint(t.N, 10)},
		{"Protocollo", or(t.Protocol)},
		{"Data di ricezione", t.At.In(rome).Format("02/01/2006 15:04:05")},
		{"Totem", t.Totem},
		{"Numero di sequenza", strconv.FormatUint(t.Seq, 10)},
		{"Identificativo operazione", t.OpID},
		{"Tipo operazione", t.Kind},
	}
	if t.Ref != "" {
		rs = append(rs, [2]string{"Riferita all'operazione", t.Ref})
	}
	if t.Stamp != nil && !t.Stamp.Wall.IsZero() {
		clock := t.Stamp.Wall.In(rome).Format("02/01/2006 15:04:05")
		if !t.Stamp.Synced {
			clock += " (orologio non sincronizzato)"
		}
		rs = append(rs, [2]string{"Registrata sul totem", clock})
	}
	rs = append(rs, [2]string{"Esito della trasmissione", text(transportText, t.Transport)},
		[2]string{"Esito dell'elaborazione", text(processingText, t.Processing)})
	if t.Duplicate {
		rs = append(rs, [2]string{"Duplicato", "sì: già applicata, esito ripetuto"})
	}
	if t.Repeats > 0 {
		rs = append(rs, [2]string{"Ricevuta di nuovo", fmt.Sprintf("%d volte, l'ultima il %s", t.Repeats, t.Last.In(rome).Format("02/01/2006 15:04:05"))})
	}
	return rs
}

// PDF writes the receipt of t as a one-page PDF (A4, the core Helvetica
// font in Windows-1252, which has every Italian letter and the euro),
// dated with the record's time.
func PDF(w io.Writer, t cms.Transmission) error {
	p := fpdf.New("P", "mm", "A4", "")
	at := t.At.In(rome)
	p.SetCreationDate(at)
	p.SetModificationDate(at)
	p.SetCatalogSort(true)
	p.SetCompression(compress)
	tr := p.UnicodeTranslatorFromDescriptor("") // cp1252
	p.SetTitle(fmt.Sprintf("Ricevuta dell'invio %d", t.N), true)
	p.SetCreator("totem", false)
	p.SetProducer("totem", false)
	p.SetMargins(20, 20, 20)
	p.SetAutoPageBreak(true, 20)
	p.AddPage()
	p.SetFont("Helvetica", "B", 16)
	p.CellFormat(0, 10, tr("Ricevuta di trasmissione"), "", 1, "L", false, 0, "")
	p.SetFont("Helvetica", "", 10)
	p.MultiCell(0, 5, tr("Totem self-service ASL: operazione ricevuta dal CMS centrale. Documento non fiscale."), "", "L", false)
	p.Ln(4)
	for _, r := range rows(&t) {
		p.SetFont("Helvetica", "B", 10)
		p.CellFormat(60, 7, tr(r[0]), "B", 0, "L", false, 0, "")
		p.SetFont("Helvetica", "", 10)
		p.CellFormat(0, 7, tr(r[1]), "B", 1, "L", false, 0, "")
	}
	if HasErrors(&t) {
		es := errorsOf(&t)
		p.Ln(6)
		p.SetFont("Helvetica", "B", 12)
		p.CellFormat(0, 8, tr(fmt.Sprintf("Errori (%d): dettaglio nel file %s", len(es), CSVName(t.N))), "", 1, "L", false, 0, "")
		p.SetFont("Helvetica", "", 10)
		for _, e := range es {
			p.MultiCell(0, 6, tr(e.Code+": "+or(e.Message)), "", "L", false)
		}
	}
	if err := p.Output(w); err != nil {
		return fmt.Errorf("bundle: pdf: %w", err)
	}
	return nil
}

// compress is off only in the tests that read the content stream.
var compress = true
