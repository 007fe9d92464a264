package cns_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aslcns/totem/cardid"
	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/cnstest"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/hal"
)

var bareNFC = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}

// TestPlaybackCIENXP: a CIE 3.0 on an NXP chip refuses the IAS application
// and answers the master-file route; it is a CIE, not "contactless".
func TestPlaybackCIENXP(t *testing.T) {
	p, _ := vcard.Lookup("cie-nxp")
	pb := &cnstest.Playback{T: t, Script: []cnstest.Exchange{
		cnstest.X("00 A4 04 0C 0D A0 00 00 00 30 80 00 00 00 09 81 60 01", "6A 82"),
		cnstest.X("00 A4 00 0C 02 3F 00", "90 00"),
		cnstest.X("00 A4 02 0C 02 10 01", "90 00"),
		cnstest.X("00 B0 00 00 0C", hexs([]byte("987654321098"))+" 90 00"),
	}}
	c := cns.New(pb, p.ATR)
	info, err := c.Info(context.Background())
	if !errors.Is(err, hal.ErrCardCIE) || info.Class != hal.ClassCIE {
		t.Fatalf("err %v, class %s", err, info.Class)
	}
	pb.Done()
}

// TestPlaybackJSign: the ST2022 TS-CNS over NFC, read through its JSign4
// application after the usual selections fail.
func TestPlaybackJSign(t *testing.T) {
	pers := padTo(cns.EncodePersonal(demoFields, true), 400)
	fci := "62 0E 80 02 01 90 82 01 01 83 02 11 02 8A 01 05"
	info, err := readInfo(t, bareNFC,
		// Not a CIE on either route.
		cnstest.X("00 A4 04 0C 0D A0 00 00 00 30 80 00 00 00 09 81 60 01", "6A 82"),
		cnstest.X("00 A4 00 0C 02 3F 00", "90 00"),
		cnstest.X("00 A4 02 0C 02 10 01", "6A 82"),
		// The contact-side routes fail over NFC.
		cnstest.X("00 A4 08 00 04 10 00 10 03 00", "6A 82"),
		cnstest.X("00 A4 00 00 02 3F 00 00", "90 00"),
		cnstest.X("00 A4 00 00 02 10 00 00", "6A 82"),
		cnstest.X("00 A4 04 00 0C A0 00 00 05 30 00 0B 10 40 01 02 1A 00", "6A 82"),
		// The JSign4 application, its model, then relative paths.
		cnstest.X("00 A4 04 00 08 A0 00 00 00 95 01 00 4D 00", "90 00"),
		cnstest.X("00 CA 01 80 00", hexs([]byte("JSign4"))+" 90 00"),
		cnstest.X("00 A4 09 00 04 10 00 10 03 00", "62 0E 80 02 00 10 82 01 01 83 02 10 03 8A 01 05 90 00"),
		cnstest.X("00 B0 00 00 10", hexs([]byte(vcard.DemoSerial))+" 90 00"),
		cnstest.X("00 A4 09 00 04 11 00 11 02 00", fci+" 90 00"),
		cnstest.X("00 B0 00 00 FF", hexs(pers[:255])+" 90 00"),
	)
	if err != nil || info.CF != "RSSMRA80A01H501U" || info.Class != hal.ClassCNS {
		t.Fatal(info, err)
	}
}

// TestContactlessRefusals: over NFC, a card answering the JSign AID with
// another model, or no application of ours at all, is not read; the
// citizen is told to insert it into the contact slot (ErrCardContactless),
// never "not recognised" for what may be a valid TS-CNS.
func TestContactlessRefusals(t *testing.T) {
	p, _ := vcard.Lookup("cns-nfc")
	for name, hook := range map[string]func(a []byte) []byte{
		"other model": func(a []byte) []byte {
			if bytes.HasPrefix(a, []byte{0x00, 0xCA, 0x01, 0x80}) {
				return []byte("JSign3\x90\x00")
			}
			return nil
		},
		"no application": func(a []byte) []byte {
			if a[1] == 0xA4 && a[2] == 0x04 {
				return []byte{0x6A, 0x82}
			}
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			vc := vcard.New(p)
			c := cns.New(override{vc, hook}, vc.ATR())
			c.Clock = today
			info, err := c.Info(context.Background())
			if !errors.Is(err, hal.ErrCardContactless) || !errors.Is(err, hal.ErrCardUnknown) || info.CF != "" {
				t.Fatalf("err %v, info %+v", err, info)
			}
		})
	}
	// The same card read through its application works, PIN included.
	vc := vcard.New(p)
	c := cns.New(vc, vc.ATR())
	c.Clock = today
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyPIN(context.Background(), []byte("12345")); err != nil {
		t.Fatal(err)
	}
}

// override answers the APDUs hook answers, the card the others.
type override struct {
	t    cns.Transmitter
	hook func([]byte) []byte
}

func (o override) Transmit(a []byte) ([]byte, error) {
	if r := o.hook(a); r != nil {
		return r, nil
	}
	return o.t.Transmit(a)
}

// TestCFCheckCharacter: a CF on the chip whose check character is wrong is
// unreadable data (the desk sends the citizen to Scelta e Revoca), not a
// citizen the CMS would look up under a CF that does not exist.
func TestCFCheckCharacter(t *testing.T) {
	p, _ := vcard.Lookup("cns")
	f := demoFields
	f[8] = "RSSMRA80A01H501X"
	p.Personal = cns.EncodePersonal(f, true)
	vc := vcard.New(p)
	c := cns.New(vc, vc.ATR())
	c.Clock = today
	info, err := c.Info(context.Background())
	if !errors.Is(err, hal.ErrCardData) || info.CF != "" {
		t.Fatalf("err %v, CF %q", err, info.CF)
	}
	// Omocodia and the 11-digit temporary code still pass.
	for _, cf := range []string{"RSSMRA80A01H50MM", "12345678901"} {
		f[8] = cf
		if _, err := cns.ParsePersonal(cns.EncodePersonal(f, true)); err != nil {
			t.Errorf("%s: %v", cf, err)
		}
	}
}

// replay answers each C-APDU with the next of a list of R-APDUs (6A82 once
// they run out).
type replay struct{ rs [][]byte }

func (r *replay) Transmit([]byte) ([]byte, error) {
	if len(r.rs) == 0 {
		return []byte{0x6A, 0x82}, nil
	}
	x := r.rs[0]
	r.rs = r.rs[1:]
	return x, nil
}

// FuzzContactless feeds a contactless card's answers (length-prefixed
// R-APDUs) to the probing of Info: it never panics, and whatever it accepts
// as a CNS carries a codice fiscale that passes its check.
func FuzzContactless(f *testing.F) {
	for _, name := range []string{"cie", "cie-nxp", "cns-nfc"} {
		p, _ := vcard.Lookup(name)
		rec := &cnstest.Recorder{T: vcard.New(p)}
		c := cns.New(rec, bareNFC)
		c.Info(context.Background())
		var seed []byte
		for _, x := range rec.Log {
			seed = append(seed, byte(min(len(x.R), 255)))
			seed = append(seed, x.R[:min(len(x.R), 255)]...)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var rs [][]byte
		for len(b) > 0 && len(rs) < 64 {
			n := min(int(b[0]), len(b)-1)
			rs = append(rs, b[1:1+n])
			b = b[1+n:]
		}
		c := cns.New(&replay{rs: rs}, bareNFC)
		c.Clock = today
		info, err := c.Info(context.Background())
		if err == nil && (info.Class != hal.ClassCNS && info.Class != hal.ClassOperator || len(info.CF) != 11 && !cardid.ValidCF(info.CF)) {
			t.Fatalf("accepted %+v", info)
		}
	})
}
