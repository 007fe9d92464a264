package cns_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/cnstest"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/hal"
)

var demoFields = [16]string{"6090", "31122024", "31122030", "ROSSI", "MARIO", "01011980", "M", "",
	"RSSMRA80A01H501U", "", "H501", "", "", "H501", "VIA ROMA 1", ""}

func padTo(b []byte, n int) []byte { return append(bytes.Clone(b), make([]byte, n-len(b))...) }

func TestParsePersonal(t *testing.T) {
	incl := cns.EncodePersonal(demoFields, true)
	if string(incl[:6]) != "00006F" || len(incl) != 111 {
		t.Fatalf("header %q, %d bytes", incl[:6], len(incl))
	}
	excl := cns.EncodePersonal(demoFields, false)
	for name, b := range map[string][]byte{"inclusive": padTo(incl, 400), "exclusive": padTo(excl, 400), "unpadded": incl} {
		p, err := cns.ParsePersonal(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Surname != "ROSSI" || p.Name != "MARIO" || p.CF != "RSSMRA80A01H501U" || p.Address != "VIA ROMA 1" ||
			p.Expiry != time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC) || p.BirthDate != time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC) ||
			p.ResidenceTown != "H501" || p.Height != "" || p.Sex != "M" {
			t.Fatalf("%s: %+v", name, p)
		}
	}
	bad := map[string][]byte{
		"empty":       nil,
		"zeros":       make([]byte, 400),
		"header":      []byte("00ZZ6F"),
		"short":       incl[:60],
		"length":      bytes.Replace(incl, []byte("05ROSSI"), []byte("7FROSSI"), 1),
		"headerwrong": append([]byte("000070"), incl[6:]...),
		"date":        bytes.Replace(incl, []byte("31122030"), []byte("31132030"), 1),
		"cf":          bytes.Replace(incl, []byte("RSSMRA80A01H501U"), []byte("RSSMRA80A01H501?"), 1),
		"cf check":    bytes.Replace(incl, []byte("RSSMRA80A01H501U"), []byte("RSSMRA80A01H501X"), 1),
		"sex":         bytes.Replace(incl, []byte("01M"), []byte("01X"), 1),
		"stray":       append(bytes.Clone(incl), 'X'),
		"nul inside":  bytes.Replace(incl, []byte("MARIO"), []byte("MA\x00IO"), 1),
	}
	for name, b := range bad {
		if p, err := cns.ParsePersonal(b); !errors.Is(err, cns.ErrPersonal) {
			t.Errorf("%s: got %+v, %v", name, p, err)
		}
	}
}

func FuzzParsePersonal(f *testing.F) {
	for _, p := range vcard.Profiles() {
		if p.Personal != nil {
			f.Add(padTo(p.Personal, 400))
			f.Add(p.Personal)
		}
	}
	f.Add(cns.EncodePersonal(demoFields, false))
	f.Add(cns.EncodePersonal([16]string{"6090", "", "31122030", "", "", "", "", "", "12345678901"}, true))
	f.Add([]byte("00000600"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := cns.ParsePersonal(b)
		if err != nil {
			if !errors.Is(err, cns.ErrPersonal) {
				t.Fatalf("error not wrapping ErrPersonal: %v", err)
			}
			return
		}
		// Round trip: re-encoding the parsed record parses to the same.
		enc := cns.EncodePersonal([16]string{p.Issuer, date(p.IssueDate), date(p.Expiry), p.Surname, p.Name, date(p.BirthDate),
			p.Sex, p.Height, p.CF, p.Citizenship, p.BirthTown, p.BirthCountry, p.BirthAct, p.ResidenceTown, p.Address, p.ExpatriationNote}, true)
		q, err := cns.ParsePersonal(enc)
		if err != nil || *q != *p {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, p, q)
		}
	})
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("02012006")
}

func hexs(b []byte) string { return fmt.Sprintf("% X", b) }

// TestPlaybackRead replays the read of a classic card: select by path with
// FCI, 16-byte EF.ID_Carta, one 255-byte chunk of EF.Dati_personali (the
// header says 111 bytes, so no second chunk).
func TestPlaybackRead(t *testing.T) {
	pers := padTo(cns.EncodePersonal(demoFields, true), 400)
	fci := "62 0E 80 02 01 90 82 01 01 83 02 11 02 8A 01 05"
	info, err := readInfo(t, vcard.New(vcard.Profiles()[0]).ATR(),
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "62 0E 80 02 00 10 82 01 01 83 02 10 03 8A 01 05 90 00"),
		cnstest.X("00 B0 00 00 10", hexs([]byte(vcard.DemoSerial))+" 90 00"),
		cnstest.X("00 A4 08 00 04 11 00 11 02 00", fci+" 90 00"),
		cnstest.X("00 B0 00 00 FF", hexs(pers[:255])+" 90 00"),
	)
	if err != nil || info.CF != "RSSMRA80A01H501U" {
		t.Fatal(info, err)
	}
}

// TestPlaybackFallbacks: path select refused, step-by-step FIDs, 61xx on
// select, 6Cxx on read, a long record read in two chunks with no Le=00.
func TestPlaybackFallbacks(t *testing.T) {
	f := demoFields
	f[14] = string(bytes.Repeat([]byte("A"), 200)) // a long address: the record is over 255 bytes
	rec := cns.EncodePersonal(f, true)
	n := len(rec) // 301
	pers := padTo(rec, 400)
	info, err := readInfo(t, vcard.New(vcard.Profiles()[0]).ATR(),
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "6A 86"),
		cnstest.X("00 A4 00 00 02 3F 00 00", "61 05"),
		cnstest.X("00 C0 00 00 05", "62 03 82 01 38 90 00"),
		cnstest.X("00 A4 00 00 02 10 00 00", "90 00"),
		cnstest.X("00 A4 00 00 02 10 03 00", "90 00"),
		cnstest.X("00 B0 00 00 10", "6C 10"),
		cnstest.X("00 B0 00 00 10", hexs([]byte(vcard.DemoSerial))+" 90 00"),
		cnstest.X("00 A4 00 00 02 3F 00 00", "90 00"),
		cnstest.X("00 A4 00 00 02 11 00 00", "90 00"),
		cnstest.X("00 A4 00 00 02 11 02 00", "90 00"),
		cnstest.X("00 B0 00 00 FF", hexs(pers[:255])+" 90 00"),
		cnstest.X(fmt.Sprintf("00 B0 00 FF %02X", n+6-255), hexs(pers[255:n+6])+" 90 00"),
	)
	if err != nil || info.Surname != "ROSSI" {
		t.Fatal(info, err)
	}
}

// TestPlaybackReset: the transport reports a reset; the read restarts from
// SELECT once.
func TestPlaybackReset(t *testing.T) {
	pers := padTo(cns.EncodePersonal(demoFields, true), 400)
	if _, err := readInfo(t, vcard.New(vcard.Profiles()[0]).ATR(),
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "90 00"),
		cnstest.XErr("00 B0 00 00 10", fmt.Errorf("pcsc: transmit: %w", cns.ErrCardReset)),
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "90 00"),
		cnstest.X("00 B0 00 00 10", hexs([]byte(vcard.DemoSerial))+" 90 00"),
		cnstest.X("00 A4 08 00 04 11 00 11 02 00", "90 00"),
		cnstest.X("00 B0 00 00 FF", hexs(pers[:255])+" 90 00"),
	); err != nil {
		t.Fatal(err)
	}
}

// TestRemovedMidRead: a transport error aborts with that error, not as bad data.
func TestRemovedMidRead(t *testing.T) {
	pb := &cnstest.Playback{T: t, Script: []cnstest.Exchange{
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "90 00"),
		cnstest.XErr("00 B0 00 00 10", hal.ErrCardRemoved),
	}}
	c := cns.New(pb, nil)
	_, err := c.Info(context.Background())
	if !errors.Is(err, hal.ErrCardRemoved) || errors.Is(err, hal.ErrCardData) {
		t.Fatal(err)
	}
	pb.Done()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cns.New(&cnstest.Playback{T: t}, nil).Info(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestNotCNS: a card that knows none of the files is not a TS-CNS.
func TestNotCNS(t *testing.T) {
	pb := &cnstest.Playback{T: t, Script: []cnstest.Exchange{
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "6A 82"),
		cnstest.X("00 A4 00 00 02 3F 00 00", "6A 82"),
		cnstest.X("00 A4 04 00 0C A0 00 00 05 30 00 0B 10 40 01 02 1A 00", "6A 82"),
	}}
	_, err := cns.New(pb, []byte{0x3B, 0x02, 0x14, 0x50}).Info(context.Background())
	if !errors.Is(err, hal.ErrCardUnknown) {
		t.Fatal(err)
	}
	pb.Done()
}

// TestLe00: the le00 lot refuses Le=00 on its 400-byte file.
func TestLe00(t *testing.T) {
	p, _ := vcard.Lookup("le00")
	vc := vcard.New(p)
	vc.Transmit([]byte{0x00, 0xA4, 0x08, 0x0C, 0x04, 0x11, 0x00, 0x11, 0x02})
	r, _ := vc.Transmit([]byte{0x00, 0xB0, 0x00, 0x00, 0x00})
	if !bytes.Equal(r, []byte{0x67, 0x00}) {
		t.Fatalf("% X", r)
	}
}
