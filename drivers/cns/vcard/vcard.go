// Package vcard provides virtual TS-CNS cards that behave like the real
// lots, quirks included. A Card answers APDUs in process (it is a
// cns.Transmitter, for fast unit tests) and can also be inserted into the
// vsmartcard vpcd reader driver of a real pcscd (Insert / Remove), speaking
// the vpcd protocol over TCP.
package vcard

import (
	"bytes"
	"crypto/subtle"
	"slices"
	"sync"

	"github.com/aslcns/totem/drivers/cns"
)

// Quirks are behaviours of real lots a profile reproduces.
type Quirks struct {
	NoPathSelect bool // SELECT by path (P1=08) answers 6A86
	Le00Error    bool // READ BINARY with Le=00 on a file over 256 bytes answers 6700
	WrongLength  bool // READ BINARY past the end answers 6Cxx; SELECT returns no FCI
	NeedApplet   bool // files are visible only after selecting the CNS applet AID (then P1=09)
	STIncard     bool // PIN commands want P2 = 0x90
	GetResponse  bool // SELECT answers 61xx; the FCI comes with GET RESPONSE
	CIE          bool // a CIE 3.0: only the IAS/CIE applets and the NIS
	// CIENXP (with CIE): a CIE 3.0 on an NXP chip refuses the IAS
	// application (6A82) and serves the NIS on the master-file route the
	// CIE middleware uses: MF, then EF.ID_Servizi (1001), READ BINARY.
	CIENXP bool
	// JSign (with NeedApplet): the ST2022 TS-CNS over NFC keeps the CNS
	// files under application A0 00 00 00 95 01 00 4D instead of the CNS
	// applet, and GET DATA 01 80 answers the model, "JSign4".
	JSign bool
}

// Profile describes a virtual card.
type Profile struct {
	Name     string
	Desc     string
	ATR      []byte
	Serial   string // EF.ID_Carta
	Personal []byte // EF.Dati_personali content (padded to 400 bytes)
	NIS      string // CIE only
	PIN, PUK string
	Tries    int // PIN tries left (0: blocked)
	Quirks   Quirks
}

// Card is a virtual card. It is safe for concurrent use.
type Card struct {
	p Profile

	mu       sync.Mutex
	files    map[string][]byte // "1000/1003" → content
	cur      string            // selected EF, "" if none
	df       string            // current DF: "", "1000", "1100"
	applet   bool
	ciePhase int
	pin, puk []byte
	tries    int
	pukTries int
	verified bool
	apdus    int
	hook     func(apdu []byte) bool
	resp     []byte // pending GET RESPONSE data

	vpcd vpcdState
}

// New returns a fresh card built from p.
func New(p Profile) *Card {
	c := &Card{p: p, tries: p.Tries, pukTries: 10, pin: []byte(p.PIN), puk: []byte(p.PUK)}
	c.files = map[string][]byte{
		"1000/1003": []byte(p.Serial),
		"1100/1102": pad(p.Personal, 400),
		"1100/1101": bytes.Repeat([]byte{0x30}, 1200), // stand-in certificate
	}
	return c
}

func pad(b []byte, n int) []byte {
	out := make([]byte, max(n, len(b)))
	copy(out, b)
	return out
}

// Profile returns the profile the card was built from.
func (c *Card) Profile() Profile { return c.p }

// ATR returns the card's ATR.
func (c *Card) ATR() []byte { return slices.Clone(c.p.ATR) }

// APDUs returns the number of C-APDUs the card answered.
func (c *Card) APDUs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apdus
}

// Tries returns the PIN tries left.
func (c *Card) Tries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tries
}

// Verified reports whether the PIN is verified (it is cleared by a reset or
// power-off).
func (c *Card) Verified() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}

// OnAPDU installs a hook called with every C-APDU before it is answered. If
// it returns true the card is pulled out: over vpcd the connection is
// closed right after the answer (so the next command finds no card); in
// process, Transmit fails with ErrPulled.
func (c *Card) OnAPDU(f func(apdu []byte) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = f
}

// Reset is a warm reset: the selection and the verified state are lost.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
}

func (c *Card) reset() {
	c.cur, c.df, c.applet, c.verified, c.ciePhase = "", "", false, false, 0
}

// ErrPulled is returned by Transmit when the OnAPDU hook pulled the card.
var ErrPulled = errPulled{}

type errPulled struct{}

func (errPulled) Error() string { return "vcard: card pulled out" }

var _ cns.Transmitter = (*Card)(nil)

// Transmit answers one C-APDU in process.
func (c *Card) Transmit(apdu []byte) ([]byte, error) {
	c.mu.Lock()
	hook := c.hook
	c.mu.Unlock()
	if hook != nil && hook(apdu) {
		return nil, ErrPulled
	}
	return c.answer(apdu), nil
}

func sw(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func ok(data []byte) []byte { return append(slices.Clone(data), 0x90, 0x00) }

// answer processes one C-APDU.
func (c *Card) answer(a []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apdus++
	if len(a) < 4 {
		return sw(0x6700)
	}
	if a[0]&0xFC != 0x00 {
		return sw(0x6E00)
	}
	// Decode Lc / data / Le (short APDUs only).
	var data []byte
	le, hasLe := 0, false
	switch {
	case len(a) == 4:
	case len(a) == 5:
		le, hasLe = int(a[4]), true
		if le == 0 {
			le = 256
		}
	default:
		lc := int(a[4])
		if len(a) < 5+lc || len(a) > 6+lc || lc == 0 {
			return sw(0x6700)
		}
		data = a[5 : 5+lc]
		if len(a) == 6+lc {
			le, hasLe = int(a[5+lc]), true
			if le == 0 {
				le = 256
			}
		}
	}
	if c.p.Quirks.CIE {
		return c.answerCIE(a, data, le)
	}
	switch a[1] {
	case 0xA4:
		return c.selectFile(a[2], a[3], data)
	case 0xB0:
		if !hasLe {
			return sw(0x6700)
		}
		return c.readBinary(int(a[2])<<8|int(a[3]), le, a[4] == 0)
	case 0x20:
		return c.verify(a[3], data)
	case 0x24:
		return c.change(a[3], data)
	case 0x2C:
		return c.unblock(a[3], data)
	case 0xC0:
		return c.getResponse(le)
	case 0xCA:
		return c.getData(a[2], a[3])
	}
	return sw(0x6D00)
}

var (
	aidCNS   = []byte{0xA0, 0x00, 0x00, 0x05, 0x30, 0x00, 0x0B, 0x10, 0x40, 0x01, 0x02, 0x1A}
	aidIAS   = []byte{0xA0, 0x00, 0x00, 0x00, 0x30, 0x80, 0x00, 0x00, 0x00, 0x09, 0x81, 0x60, 0x01}
	aidCIE   = []byte{0xA0, 0x00, 0x00, 0x00, 0x00, 0x39}
	aidJSign = []byte{0xA0, 0x00, 0x00, 0x00, 0x95, 0x01, 0x00, 0x4D}
)

// appletAID is the application a NeedApplet card keeps its files under.
func (c *Card) appletAID() []byte {
	if c.p.Quirks.JSign {
		return aidJSign
	}
	return aidCNS
}

// CIE phases: 1 IAS selected, 2 CIE selected (NIS by SFI), 3 MF selected
// (NXP route), 4 EF.ID_Servizi selected.
func (c *Card) answerCIE(a, data []byte, le int) []byte {
	if c.p.Quirks.CIENXP {
		return c.answerCIENXP(a, data, le)
	}
	switch {
	case a[1] == 0xA4 && a[2] == 0x04 && bytes.Equal(data, aidIAS):
		c.ciePhase = 1
		return sw(0x9000)
	case a[1] == 0xA4 && a[2] == 0x04 && bytes.Equal(data, aidCIE) && c.ciePhase >= 1:
		c.ciePhase = 2
		return sw(0x9000)
	case a[1] == 0xA4:
		return sw(0x6A82)
	case a[1] == 0xB0 && a[2] == 0x81 && a[3] == 0x00 && c.ciePhase == 2:
		return ok(upTo([]byte(c.p.NIS), le))
	case a[1] == 0xB0:
		return sw(0x6982) // needs PACE
	}
	return sw(0x6D00)
}

// upTo is b cut to at most le bytes.
func upTo(b []byte, le int) []byte {
	if le < len(b) {
		return b[:le]
	}
	return b
}

// answerCIENXP is a CIE 3.0 on an NXP chip: no IAS application, the NIS in
// EF.ID_Servizi under the MF.
func (c *Card) answerCIENXP(a, data []byte, le int) []byte {
	switch {
	case a[1] == 0xA4 && a[2] == 0x00 && bytes.Equal(data, []byte{0x3F, 0x00}):
		c.ciePhase = 3
		return sw(0x9000)
	case a[1] == 0xA4 && a[2] == 0x02 && bytes.Equal(data, []byte{0x10, 0x01}) && c.ciePhase >= 3:
		c.ciePhase = 4
		return sw(0x9000)
	case a[1] == 0xA4:
		return sw(0x6A82)
	case a[1] == 0xB0 && a[2] == 0x00 && c.ciePhase == 4:
		nis, off := []byte(c.p.NIS), int(a[3])
		if off >= len(nis) {
			return sw(0x6B00)
		}
		return ok(upTo(nis[off:], le))
	case a[1] == 0xB0:
		return sw(0x6982) // needs PACE
	}
	return sw(0x6D00)
}

func (c *Card) fci(path string) []byte {
	f := c.files[path]
	fid := path[len(path)-4:]
	b := []byte{0x62, 0x0D, 0x80, 0x02, byte(len(f) >> 8), byte(len(f)), 0x82, 0x01, 0x01, 0x83, 0x02}
	b = append(b, hexByte(fid[0:2]), hexByte(fid[2:4]))
	b = append(b, 0x8A, 0x01, 0x05)
	b[1] = byte(len(b) - 2)
	return b
}

func hexByte(s string) byte {
	v := 0
	for i := 0; i < 2; i++ {
		ch := s[i]
		switch {
		case ch >= '0' && ch <= '9':
			v = v<<4 | int(ch-'0')
		default:
			v = v<<4 | int(ch-'A'+10)
		}
	}
	return byte(v)
}

func fidString(b []byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{hex[b[0]>>4], hex[b[0]&15], hex[b[1]>>4], hex[b[1]&15]})
}

// selected answers a successful EF selection.
func (c *Card) selected(path string, p2 byte) []byte {
	c.cur = path
	c.df = path[:4]
	if p2&0x0C == 0x0C || c.p.Quirks.WrongLength {
		return sw(0x9000)
	}
	fci := c.fci(path)
	if c.p.Quirks.GetResponse {
		c.resp = fci
		return sw(0x6100 | uint16(len(fci)))
	}
	return ok(fci)
}

func (c *Card) selectFile(p1, p2 byte, data []byte) []byte {
	q := c.p.Quirks
	hidden := q.NeedApplet && !c.applet
	switch p1 {
	case 0x04: // by AID
		if bytes.Equal(data, c.appletAID()) && q.NeedApplet {
			c.applet, c.cur, c.df = true, "", ""
			return sw(0x9000)
		}
		return sw(0x6A82)
	case 0x08: // path from the MF
		if q.NoPathSelect || q.NeedApplet {
			return sw(0x6A86)
		}
		return c.selectPath(data, p2)
	case 0x09: // path from the current DF
		if hidden {
			return sw(0x6A82)
		}
		return c.selectPath(data, p2)
	case 0x00: // by FID
		if len(data) != 2 {
			return sw(0x6A87)
		}
		fid := fidString(data)
		if hidden && fid != "3F00" {
			return sw(0x6A82)
		}
		switch {
		case fid == "3F00":
			c.df, c.cur = "", ""
			return c.dfAnswer(p2)
		case c.df == "" && (fid == "1000" || fid == "1100"):
			c.df, c.cur = fid, ""
			return c.dfAnswer(p2)
		case c.df != "":
			if _, ok := c.files[c.df+"/"+fid]; ok {
				return c.selected(c.df+"/"+fid, p2)
			}
		}
		return sw(0x6A82)
	}
	return sw(0x6A86)
}

func (c *Card) dfAnswer(p2 byte) []byte {
	if p2&0x0C == 0x0C {
		return sw(0x9000)
	}
	return ok([]byte{0x62, 0x03, 0x82, 0x01, 0x38})
}

func (c *Card) selectPath(data []byte, p2 byte) []byte {
	if len(data) >= 2 && data[0] == 0x3F && data[1] == 0x00 {
		data = data[2:]
	}
	if len(data) != 4 {
		return sw(0x6A82)
	}
	path := fidString(data[:2]) + "/" + fidString(data[2:])
	if _, ok := c.files[path]; !ok {
		return sw(0x6A82)
	}
	return c.selected(path, p2)
}

// getData answers GET DATA 01 80 (the model) on the JSign4 application.
func (c *Card) getData(p1, p2 byte) []byte {
	if c.p.Quirks.JSign && c.applet && p1 == 0x01 && p2 == 0x80 {
		return ok([]byte("JSign4"))
	}
	return sw(0x6A88)
}

func (c *Card) getResponse(le int) []byte {
	if c.resp == nil {
		return sw(0x6985)
	}
	r := c.resp
	c.resp = nil
	if le < len(r) {
		return sw(0x6C00 | uint16(len(r)))
	}
	return ok(r)
}

func (c *Card) readBinary(off, le int, le00 bool) []byte {
	if c.cur == "" {
		return sw(0x6986)
	}
	f := c.files[c.cur]
	if le00 && c.p.Quirks.Le00Error && len(f) > 256 {
		return sw(0x6700)
	}
	if off > len(f) {
		return sw(0x6B00)
	}
	rest := len(f) - off
	if le > rest {
		if c.p.Quirks.WrongLength {
			if rest == 0 {
				return sw(0x6B00)
			}
			return sw(0x6C00 | uint16(rest))
		}
		return append(slices.Clone(f[off:]), 0x62, 0x82)
	}
	return ok(f[off : off+le])
}

func (c *Card) pinRef(p2 byte) (byte, bool) {
	if c.p.Quirks.STIncard {
		if p2&0x80 == 0 {
			return 0, false
		}
		return p2 &^ 0x80, true
	}
	return p2, p2&0x80 == 0
}

// checkRef compares the padded reference data in constant time.
func checkRef(want, got []byte) bool {
	var w [8]byte
	n := copy(w[:], want)
	for i := n; i < 8; i++ {
		w[i] = 0xFF
	}
	return len(got) == 8 && subtle.ConstantTimeCompare(w[:], got) == 1
}

func (c *Card) verify(p2 byte, data []byte) []byte {
	ref, okRef := c.pinRef(p2)
	if !okRef || ref != 0x10 {
		return sw(0x6A88)
	}
	if len(data) == 0 {
		// An empty VERIFY costs a try on some lots: this card counts it.
		return c.wrongPIN()
	}
	if c.tries == 0 {
		return sw(0x6983)
	}
	if !checkRef(c.pin, data) {
		return c.wrongPIN()
	}
	c.tries = 3
	c.verified = true
	return sw(0x9000)
}

func (c *Card) wrongPIN() []byte {
	if c.tries == 0 {
		return sw(0x6983)
	}
	c.tries--
	c.verified = false
	return sw(0x63C0 | uint16(c.tries))
}

// checkPINPair checks the reference and the data of a CHANGE REFERENCE
// DATA or a RESET RETRY COUNTER (two padded 8-byte PINs): nil when they
// are right, the status word refusing them otherwise.
func (c *Card) checkPINPair(p2 byte, data []byte) []byte {
	ref, okRef := c.pinRef(p2)
	if !okRef || ref != 0x10 {
		return sw(0x6A88)
	}
	if len(data) != 16 {
		return sw(0x6700)
	}
	return nil
}

func (c *Card) change(p2 byte, data []byte) []byte {
	if bad := c.prove(p2, data, c.pin, c.tries, c.wrongPIN); bad != nil {
		return bad
	}
	return c.setPIN(data[8:])
}

func (c *Card) unblock(p2 byte, data []byte) []byte {
	if bad := c.prove(p2, data, c.puk, c.pukTries, c.wrongPUK); bad != nil {
		return bad
	}
	c.pukTries = 10
	return c.setPIN(data[8:])
}

// prove checks a CHANGE or RESET command's pair of codes and that its first
// code is ref, which tries wrong ones are left for; nil when it is, else
// the status word to answer (wrong for a wrong code).
func (c *Card) prove(p2 byte, data, ref []byte, tries int, wrong func() []byte) []byte {
	if bad := c.checkPINPair(p2, data); bad != nil {
		return bad
	}
	if tries == 0 {
		return sw(0x6983)
	}
	if !checkRef(ref, data[:8]) {
		return wrong()
	}
	return nil
}

func (c *Card) wrongPUK() []byte {
	c.pukTries--
	return sw(0x63C0 | uint16(c.pukTries))
}

// setPIN makes padded the PIN, with its tries restored.
func (c *Card) setPIN(padded []byte) []byte {
	c.pin = unpad(padded)
	c.tries = 3
	return sw(0x9000)
}

func unpad(b []byte) []byte {
	if i := bytes.IndexByte(b, 0xFF); i >= 0 {
		b = b[:i]
	}
	return slices.Clone(b)
}
