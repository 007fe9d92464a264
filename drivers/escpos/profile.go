// Package escpos drives ESC/POS thermal receipt printers on a serial line:
// an encoder of hal.Doc into ESC/POS bytes for a table of printer profiles
// (code page, columns, native QR, cutter, baud), a decoder of real-time
// status (DLE EOT, automatic status back, XON/XOFF) and a Printer that
// implements hal.Printer on an io.ReadWriter with paced, status-checked
// writes. OpenSerial is the only code that touches the serial library.
package escpos

import (
	"fmt"
	"sort"
	"time"
)

// Profile is what the encoder and the Printer need to know about a model.
type Profile struct {
	Name     string
	Model    string   // human description
	Cols     int      // columns in font A at normal width
	ColsB    int      // columns in font B
	Dots     int      // printable width in dots
	CodePage CodePage // character table selected with ESC t
	Clone    bool     // send FS . (leave double-byte mode) in the preamble
	NativeQR bool     // GS ( k QR model 2; otherwise a GS v 0 raster
	Cutter   bool     // GS V 66 0; otherwise feed lines to tear off
	ASB      bool     // automatic status back (GS a) is supported
	Baud     int      // default line speed
	Buffer   int      // receive buffer in bytes (paces the writes)
}

// Profiles known to the driver, by name.
var profiles = map[string]Profile{
	"tm-t20": {
		Name: "tm-t20", Model: "Epson TM-T20 (80 mm, 203 dpi)",
		Cols: 48, ColsB: 64, Dots: 576, CodePage: PC858,
		NativeQR: true, Cutter: true, ASB: true, Baud: 38400, Buffer: 4096,
	},
	"tm-t88": {
		Name: "tm-t88", Model: "Epson TM-T88 (80 mm, 180 dpi)",
		Cols: 42, ColsB: 56, Dots: 512, CodePage: PC858,
		NativeQR: true, Cutter: true, ASB: true, Baud: 38400, Buffer: 4096,
	},
	"clone80": {
		Name: "clone80", Model: "generic 80 mm clone (203 dpi)",
		Cols: 48, ColsB: 64, Dots: 576, CodePage: Windows1252, Clone: true,
		NativeQR: true, Cutter: true, Baud: 19200, Buffer: 1024,
	},
	"clone58": {
		Name: "clone58", Model: "generic 58 mm clone (203 dpi)",
		Cols: 32, ColsB: 42, Dots: 384, CodePage: PC858, Clone: true,
		NativeQR: false, Cutter: false, Baud: 9600, Buffer: 256,
	},
}

// DefaultProfile is the profile used when the configuration names none.
const DefaultProfile = "tm-t20"

// ProfileByName returns the named profile.
func ProfileByName(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("escpos: unknown profile %q (known: %v)", name, ProfileNames())
	}
	return p, nil
}

// Profiles returns every known profile, sorted by name.
func Profiles() []Profile {
	var out []Profile
	for _, n := range ProfileNames() {
		out = append(out, profiles[n])
	}
	return out
}

// ProfileNames returns the names of the known profiles, sorted.
func ProfileNames() []string {
	var names []string
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ChunkSize is how many bytes the Printer writes between status polls: a
// quarter of the printer's buffer, at least 32 bytes.
func (p Profile) ChunkSize() int {
	n := p.Buffer / 4
	if n < 32 {
		n = 32
	}
	return n
}

// WireTime is how long n bytes take on the line at the profile's baud
// (8N1: ten bits a byte).
func (p Profile) WireTime(n int) time.Duration {
	baud := p.Baud
	if baud <= 0 {
		baud = 9600
	}
	return time.Duration(n) * 10 * time.Second / time.Duration(baud)
}
