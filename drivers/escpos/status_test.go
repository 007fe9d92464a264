package escpos

import (
	"errors"
	"testing"

	"github.com/aslcns/totem/hal"
)

func TestDecodeStatus(t *testing.T) {
	tests := []struct {
		n, b byte
		want Status
		err  error // hal sentinel from Err
	}{
		{1, 0x12, Status{}, nil},
		{2, 0x12, Status{}, nil},
		{3, 0x12, Status{}, nil},
		{4, 0x12, Status{}, nil},
		{1, 0x1a, Status{Offline: true}, hal.ErrNotResponding},
		{2, 0x16, Status{CoverOpen: true}, hal.ErrCoverOpen},
		{2, 0x1a, Status{FeedButton: true}, nil},
		{2, 0x32, Status{PaperStop: true}, hal.ErrPaperOut},
		{2, 0x52, Status{Error: true}, nil},
		{3, 0x1a, Status{CutterError: true}, hal.ErrPrinterFault},
		{3, 0x32, Status{Unrecoverable: true}, hal.ErrPrinterFault},
		{3, 0x52, Status{AutoRecoverable: true}, nil},
		{4, 0x1e, Status{PaperNearEnd: true}, nil},
		{4, 0x72, Status{PaperOut: true}, hal.ErrPaperOut},
		{4, 0x7e, Status{PaperNearEnd: true, PaperOut: true}, hal.ErrPaperOut},
	}
	for _, tt := range tests {
		got, err := DecodeStatus(tt.n, tt.b)
		if err != nil {
			t.Errorf("DecodeStatus(%d, %#x): %v", tt.n, tt.b, err)
			continue
		}
		if got != tt.want {
			t.Errorf("DecodeStatus(%d, %#x) = %+v, want %+v", tt.n, tt.b, got, tt.want)
		}
		if err := got.Err(); !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("DecodeStatus(%d, %#x).Err() = %v, want %v", tt.n, tt.b, err, tt.err)
		}
	}
	for _, b := range []byte{0x00, 0xff, 0x10, 0x13, 0x11, 0x92, 0x03} {
		if _, err := DecodeStatus(1, b); !errors.Is(err, ErrBadStatus) {
			t.Errorf("DecodeStatus(1, %#x) accepted", b)
		}
	}
	if _, err := DecodeStatus(5, 0x12); err == nil {
		t.Error("DLE EOT 5 accepted")
	}
}

func TestDecodeASB(t *testing.T) {
	st, err := DecodeASB([4]byte{0x38, 0x08, 0x0f, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Offline: true, CoverOpen: true, CutterError: true, PaperNearEnd: true, PaperOut: true}
	if st != want {
		t.Errorf("ASB = %+v, want %+v", st, want)
	}
	if st, _ := DecodeASB([4]byte{0x10, 0, 0, 0}); st != (Status{}) {
		t.Errorf("ASB all ok = %+v", st)
	}
	for _, f := range [][4]byte{{0x12, 0, 0, 0}, {0x10, 0x10, 0, 0}, {0x10, 0, 0, 0x80}} {
		if _, err := DecodeASB(f); err == nil {
			t.Errorf("ASB % x accepted", f)
		}
	}
}

func TestDemux(t *testing.T) {
	in := []byte{
		0x12,                   // DLE EOT answer
		0x13,                   // XOFF
		0x10, 0x00, 0x03, 0x00, // ASB: near end
		0x11,       // XON
		0xff,       // noise
		0x10, 0x00, // truncated ASB…
		0x72,             // …interrupted by a status answer
		0x10, 0, 0, 0x60, // ASB
	}
	var d Demux
	var got []Event
	for _, b := range in {
		if ev, ok := d.Feed(b); ok {
			got = append(got, ev)
		}
	}
	want := []Event{
		{Kind: EvStatus, Byte: 0x12},
		{Kind: EvXOFF},
		{Kind: EvASB, Frame: [4]byte{0x10, 0x00, 0x03, 0x00}},
		{Kind: EvXON},
		{Kind: EvStatus, Byte: 0x72},
		{Kind: EvASB, Frame: [4]byte{0x10, 0, 0, 0x60}},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if d.Dropped != 3 {
		t.Errorf("Dropped = %d, want 3", d.Dropped)
	}
}

func FuzzStatus(f *testing.F) {
	for _, s := range [][2]byte{{1, 0x12}, {1, 0x1a}, {2, 0x16}, {2, 0x32}, {3, 0x1a}, {4, 0x1e}, {4, 0x72}, {9, 0xff}} {
		f.Add(s[0], s[1], []byte{0x10, 0, 3, 0})
	}
	f.Fuzz(func(t *testing.T, n, b byte, asb []byte) {
		st, err := DecodeStatus(n, b)
		if err == nil {
			if !ValidStatus(b) || n < 1 || n > 4 {
				t.Fatalf("accepted n=%d b=%#x", n, b)
			}
			_ = st.Err()
			_ = st.String()
		}
		var f4 [4]byte
		copy(f4[:], asb)
		if st, err := DecodeASB(f4); err == nil {
			if f4[0]&0x93 != 0x10 {
				t.Fatalf("ASB % x accepted", f4)
			}
			_ = st.HAL()
		}
	})
}

func FuzzDemux(f *testing.F) {
	f.Add([]byte{0x12, 0x13, 0x10, 0, 3, 0, 0x11, 0x72})
	f.Add([]byte{0x10, 0x10, 0x10, 0x12, 0x1a})
	f.Add([]byte{0xff, 0x00, 0x93})
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Demux
		events := 0
		for _, b := range in {
			ev, ok := d.Feed(b)
			if !ok {
				continue
			}
			events++
			switch ev.Kind {
			case EvStatus:
				if !ValidStatus(ev.Byte) {
					t.Fatalf("status event with %#x", ev.Byte)
				}
			case EvASB:
				if !ValidASB(ev.Frame) {
					t.Fatalf("ASB event % x", ev.Frame)
				}
			case EvXON, EvXOFF:
			default:
				t.Fatalf("event kind %d", ev.Kind)
			}
		}
		if events > len(in) {
			t.Fatalf("%d events from %d bytes", events, len(in))
		}
	})
}
