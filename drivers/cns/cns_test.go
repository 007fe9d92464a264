package cns_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/cnstest"
	"github.com/aslcns/totem/drivers/cns/vcard"
	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/sim"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time                         { return time.Time(c) }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var today = fixedClock(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))

func TestTEAM(t *testing.T) {
	if got := cns.TEAM("6090012345678000"); got != "80380000900123456782" {
		t.Fatalf("TEAM = %q", got)
	}
	if err := cns.CheckTEAM("80380000900123456782", "6090012345678000"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"80380000900123456781", "8038000090012345678", "80380000900123456792", "8038000090012345678x"} {
		if cns.CheckTEAM(bad, "6090012345678000") == nil {
			t.Errorf("CheckTEAM(%q) accepted", bad)
		}
	}
	if err := cns.CheckSerial("6090012345678000"); err != nil {
		t.Fatal(err)
	}
	if cns.CheckSerial("6090012345678001") == nil || cns.CheckSerial("609001234567800") == nil {
		t.Fatal("bad serial accepted")
	}
	if !cns.Operator("8090000000042001") || cns.Operator("6090012345678000") {
		t.Fatal("Operator")
	}
}

func TestATR(t *testing.T) {
	for _, p := range vcard.Profiles() {
		a := cns.ParseATR(p.ATR)
		want := hal.ClassCNS
		switch p.Name {
		case "cie", "cie-nxp", "cns-nfc":
			want = hal.ClassContactless
		case "applet":
			want = hal.ClassUnknown
		}
		if a.Class() != want {
			t.Errorf("%s: class %s, want %s (hist % X)", p.Name, a.Class(), want, a.Historical)
		}
		if a.STIncard() != (p.Name == "stincard") {
			t.Errorf("%s: STIncard = %v", p.Name, a.STIncard())
		}
	}
	if cns.ParseATR([]byte{0x3B, 0x80, 0x80, 0x01, 0x01}).Class() != hal.ClassContactless {
		t.Error("3B 80 80 01 01 not contactless")
	}
	for _, b := range [][]byte{nil, {0x3B}, {0x3B, 0xFF}, {0x3B, 0xF0, 0x00}} {
		_ = cns.ParseATR(b).Class()
	}
}

// TestProfiles reads every virtual profile in process and checks the
// result or the specific sentinel.
func TestProfiles(t *testing.T) {
	demo := sim.DemoCard().Info
	for _, p := range vcard.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			vc := vcard.New(p)
			c := cns.New(vc, vc.ATR())
			c.Clock = today
			info, err := c.Info(context.Background())
			switch p.Name {
			case "expired":
				if !errors.Is(err, hal.ErrCardExpired) || info.Surname != "VERDI" || info.Class != hal.ClassCNS {
					t.Fatalf("err %v, info %+v", err, info)
				}
			case "malformed", "badcf":
				if !errors.Is(err, hal.ErrCardData) {
					t.Fatalf("err %v", err)
				}
			case "cie", "cie-nxp":
				// Recognised as a CIE whichever route serves its NIS.
				if !errors.Is(err, hal.ErrCardCIE) || !errors.Is(err, hal.ErrCardUnknown) || info.Class != hal.ClassCIE {
					t.Fatalf("err %v, class %s", err, info.Class)
				}
				if nis, err := c.NIS(context.Background()); err != nil || nis != p.NIS {
					t.Fatalf("NIS %q %v", nis, err)
				}
			case "operator":
				if err != nil || info.Class != hal.ClassOperator || info.CF != "BNCLCU75C15F205O" {
					t.Fatalf("err %v, info %+v", err, info)
				}
				if want := sim.OperatorCard().Info; info != want {
					t.Fatalf("info\n got %+v\nwant %+v (hal/sim)", info, want)
				}
			case "minor", "issued": // the assisted-mode demo: as hal/sim has them
				want := map[string]*sim.Card{"minor": sim.MinorCard(), "issued": sim.IssuedCard()}[p.Name].Info
				if err != nil || info != want {
					t.Fatalf("err %v, info\n got %+v\nwant %+v", err, info, want)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if info != demo {
					t.Fatalf("info\n got %+v\nwant %+v", info, demo)
				}
			}
			t.Logf("%s: %d APDUs", p.Name, c.APDUs())
		})
	}
}

func TestPIN(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"cns", "stincard"} {
		t.Run(name, func(t *testing.T) {
			p, _ := vcard.Lookup(name)
			vc := vcard.New(p)
			c := cns.New(vc, vc.ATR())
			var pe *hal.PINError
			if err := c.VerifyPIN(ctx, []byte("99999")); !errors.As(err, &pe) || pe.TriesLeft != 2 || !errors.Is(err, hal.ErrWrongPIN) {
				t.Fatalf("wrong PIN: %v", err)
			}
			if err := c.VerifyPIN(ctx, []byte("12345")); err != nil || !vc.Verified() {
				t.Fatalf("right PIN: %v", err)
			}
			if err := c.ChangePIN(ctx, []byte("12345"), []byte("24680")); err != nil {
				t.Fatal(err)
			}
			for want := 2; want >= 1; want-- {
				if err := c.VerifyPIN(ctx, []byte("12345")); !errors.As(err, &pe) || pe.TriesLeft != want {
					t.Fatalf("tries %d: %v", want, err)
				}
			}
			if err := c.VerifyPIN(ctx, []byte("12345")); !errors.Is(err, hal.ErrPINBlocked) {
				t.Fatalf("third wrong PIN: %v", err)
			}
			if err := c.VerifyPIN(ctx, []byte("24680")); !errors.Is(err, hal.ErrPINBlocked) {
				t.Fatalf("blocked: %v", err)
			}
			if err := c.UnblockPIN(ctx, []byte("00000000"), []byte("11111")); !errors.As(err, &pe) || pe.TriesLeft != 9 {
				t.Fatalf("wrong PUK: %v", err)
			}
			if err := c.UnblockPIN(ctx, []byte("12345678"), []byte("11111")); err != nil {
				t.Fatal(err)
			}
			if err := c.VerifyPIN(ctx, []byte("11111")); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"", "1234", "123456789", "12a45"} {
				if err := c.VerifyPIN(ctx, []byte(bad)); !errors.Is(err, cns.ErrPINFormat) {
					t.Fatalf("PIN %q: %v", bad, err)
				}
			}
		})
	}
	p, _ := vcard.Lookup("blocked")
	vc := vcard.New(p)
	if err := cns.New(vc, vc.ATR()).VerifyPIN(ctx, []byte("12345")); !errors.Is(err, hal.ErrPINBlocked) {
		t.Fatalf("blocked profile: %v", err)
	}
}

func TestPINStatus(t *testing.T) {
	var pe *hal.PINError
	for sw, want := range map[uint16]int{0x63C2: 2, 0x63C1: 1, 0x6300: -1, 0x6982: -1} {
		if err := cns.PINStatus(sw); !errors.As(err, &pe) || pe.TriesLeft != want {
			t.Errorf("%04X: %v", sw, err)
		}
	}
	for _, sw := range []uint16{0x63C0, 0x6983, 0x6984} {
		if err := cns.PINStatus(sw); !errors.Is(err, hal.ErrPINBlocked) {
			t.Errorf("%04X: %v", sw, err)
		}
	}
	if cns.PINStatus(0x9000) != nil {
		t.Error("9000")
	}
}

// TestPlaybackVerify checks the exact VERIFY APDU, FF padding, and that
// nothing else is sent (never an empty VERIFY).
func TestPlaybackVerify(t *testing.T) {
	pb := &cnstest.Playback{T: t, Script: []cnstest.Exchange{
		cnstest.X("00 20 00 10 08 31 32 33 34 35 FF FF FF", "63 C2"),
		cnstest.X("00 20 00 10 08 31 32 33 34 35 36 37 38", "90 00"),
	}}
	c := cns.New(pb, vcard.New(vcard.Profiles()[0]).ATR())
	var pe *hal.PINError
	if err := c.VerifyPIN(context.Background(), []byte("12345")); !errors.As(err, &pe) || pe.TriesLeft != 2 {
		t.Fatal(err)
	}
	if err := c.VerifyPIN(context.Background(), []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	pb.Done()
}
