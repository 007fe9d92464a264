package evdev

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/hal"
)

var update = flag.Bool("update", false, "rewrite testdata/typing.events")

// session is what testdata/typing.events holds, as a keyboard sends it
// (EV_MSC scan code, EV_KEY, EV_SYN per key; Shift and AltGr held around
// keys; an auto-repeat): an operator at an Italian keyboard types the
// delegate's name "D'Angelo Anna", a CF with a wrong letter that is then
// corrected with the arrows and Backspace, an e-mail with AltGr+ò for @,
// and Esc.
type step struct {
	code  uint16
	value int32
}

func press(codes ...uint16) []step {
	var s []step
	for _, c := range codes {
		s = append(s, step{c, 1}, step{c, 0})
	}
	return s
}

func held(mod uint16, codes ...uint16) []step {
	return append(append([]step{{mod, 1}}, press(codes...)...), step{mod, 0})
}

func session() []step {
	const (
		a, d, e, g, i, l, m, n, o, r, s, t, u, x, p = 30, 32, 18, 34, 23, 38, 50, 49, 24, 19, 31, 20, 22, 45, 25
		k1, k5, k8, k0                              = 2, 6, 9, 11
		h, apos, dot, ograve, space                 = 35, 12, 52, 39, 57
	)
	var out []step
	add := func(s ...[]step) {
		for _, x := range s {
			out = append(out, x...)
		}
	}
	// D'Angelo Anna
	add(held(keyLeftShift, d), press(apos), held(keyLeftShift, a), press(n, g, e, l, o, space), held(keyRightShift, a), press(n, n, a), press(keyEnter))
	// RSSMRA8OA01H501U with O for 0 (Caps Lock on), then ← ×7, Backspace, 0, → ×7, Enter
	add(press(keyCapsLock), press(r, s, s, m, r, a, k8, o, a, k0, k1, h, k5, k0, k1, u))
	add([]step{{keyLeft, 1}, {keyLeft, 2}, {keyLeft, 2}, {keyLeft, 2}, {keyLeft, 2}, {keyLeft, 2}, {keyLeft, 2}, {keyLeft, 0}})
	add(press(keyBackspace, k0), press(keyRight, keyRight, keyRight, keyRight, keyRight, keyRight, keyRight), press(keyCapsLock, keyEnter))
	// a.rossi@example.it
	add(press(a, dot, r, o, s, s, i), held(keyRightAlt, ograve), press(e, x, a, m, p, l, e, dot, i, t, keyKPEnter))
	add(press(keyDelete, keyEsc))
	return out
}

// want is what session types.
var want = "D'Angelo Anna#" + "RSSMRA8OA01H501U" + "<<<<<<<*0>>>>>>>#" + "a.rossi@example.it#" + "~D"

func keyString(k hal.Key) string {
	if c, ok := k.Char(); ok {
		return string(c)
	}
	switch k {
	case hal.KeyLeft:
		return "<"
	case hal.KeyRight:
		return ">"
	case hal.KeyDelete:
		return "~"
	}
	return string(rune(k))
}

// encode writes steps as 24-byte little-endian input_event records, with
// the scan code and the SYN_REPORT a keyboard sends around each.
func encode(steps []step) []byte {
	var b bytes.Buffer
	rec := func(usec int64, typ, code uint16, value int32) {
		var r [24]byte
		binary.LittleEndian.PutUint64(r[0:], uint64(1764990000+usec/1e6))
		binary.LittleEndian.PutUint64(r[8:], uint64(usec%1e6))
		binary.LittleEndian.PutUint16(r[16:], typ)
		binary.LittleEndian.PutUint16(r[18:], code)
		binary.LittleEndian.PutUint32(r[20:], uint32(value))
		b.Write(r[:])
	}
	for i, s := range steps {
		t := int64(i) * 48000
		rec(t, 0x04, 0x04, 0x70000+int32(s.code)) // EV_MSC MSC_SCAN
		rec(t, evKey, s.code, s.value)
		rec(t, 0x00, 0x00, 0) // EV_SYN SYN_REPORT
	}
	return b.Bytes()
}

func typed(t *testing.T, r io.Reader, size int) string {
	t.Helper()
	var sb strings.Builder
	err := Stream(r, size, NewDecoder(Layouts["it"]), func(k hal.Key) bool { sb.WriteString(keyString(k)); return true })
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Stream: %v", err)
	}
	return sb.String()
}

// The recorded stream, fed through the decoder, types what the operator
// typed on the Italian layout.
func TestRecordedStream(t *testing.T) {
	path := filepath.Join("testdata", "typing.events")
	if *update {
		if err := os.WriteFile(path, encode(session()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the recording is little-endian")
	}
	// A read returns any number of bytes: one byte at a time too.
	for _, r := range []io.Reader{bytes.NewReader(b), &oneByte{b: b}} {
		if got := typed(t, r, 24); got != want {
			t.Errorf("typed\n%q\nwant\n%q", got, want)
		}
	}
	// On the US layout the same keys type other signs: the layout matters.
	var sb strings.Builder
	Stream(bytes.NewReader(b), 24, NewDecoder(Layouts["us"]), func(k hal.Key) bool { sb.WriteString(keyString(k)); return true })
	if got := sb.String(); got == want || !strings.HasPrefix(got, "D-Angelo") {
		t.Errorf("US layout typed %q", got)
	}
}

type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], o.b = o.b[0], o.b[1:]
	return 1, nil
}

// 32-bit boards (armhf) have 16-byte records.
func TestDecode32(t *testing.T) {
	var r [16]byte
	binary.NativeEndian.PutUint32(r[0:], 7)
	binary.NativeEndian.PutUint32(r[4:], 9)
	binary.NativeEndian.PutUint16(r[8:], evKey)
	binary.NativeEndian.PutUint16(r[10:], keyEnter)
	binary.NativeEndian.PutUint32(r[12:], 1)
	e, err := Decode(r[:], 16)
	if err != nil || e != (Event{Sec: 7, Usec: 9, Type: evKey, Code: keyEnter, Value: 1}) {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := Decode(r[:15], 16); !errors.Is(err, ErrShort) {
		t.Errorf("short record: %v", err)
	}
	if _, err := Decode(r[:], 12); err == nil {
		t.Error("size 12 accepted")
	}
	if Size != 24 && Size != 16 {
		t.Errorf("Size %d", Size)
	}
	// A stream cut inside a record is an error, not a key made up.
	if err := Stream(bytes.NewReader(r[:10]), 16, NewDecoder(nil), func(hal.Key) bool { return true }); !errors.Is(err, ErrShort) {
		t.Errorf("cut stream: %v", err)
	}
}

// The keyboard is read from its device path, waits for it when it is not
// there, and Run ends with ctx.
func TestKeyboardRun(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "typing.events"))
	if err != nil {
		t.Fatal(err)
	}
	kb := New("/dev/input/event-test", nil)
	opened := 0
	kb.retry, kb.size = 0, 24 // the recording's records, whatever this machine's
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the recording is little-endian")
	}
	kb.open = func(string) (io.ReadCloser, error) {
		opened++
		if opened == 2 { // plugged in after the first try, then unplugged
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		return nil, os.ErrNotExist
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
	done := make(chan error, 1)
	go func() { done <- kb.Run(ctx, nil) }()
	var sb strings.Builder
	for sb.Len() < len(want) {
		k, err := kb.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(keyString(k))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := sb.String(); got != want {
		t.Errorf("typed %q, want %q", got, want)
	}
}

// FuzzStream: any bytes decode without a panic, every key is a keypad
// key, a cursor key or a printable character, and decoding in one read
// or byte by byte gives the same keys.
func FuzzStream(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "typing.events")); err == nil {
		f.Add(b[:24*40])
	}
	f.Add(encode(held(keyLeftShift, 30, 52)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var all, slow []hal.Key
		Stream(bytes.NewReader(b), 24, NewDecoder(nil), func(k hal.Key) bool { all = append(all, k); return true })
		Stream(&oneByte{b: b}, 24, NewDecoder(nil), func(k hal.Key) bool { slow = append(slow, k); return true })
		if string(all) != string(slow) {
			t.Fatalf("one read %q, byte by byte %q", all, slow)
		}
		for _, k := range all {
			if _, ok := k.Char(); !ok && !k.Valid() && k != hal.KeyLeft && k != hal.KeyRight && k != hal.KeyDelete {
				t.Fatalf("key %#x", k)
			}
		}
	})
}
