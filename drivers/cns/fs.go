package cns

import (
	"context"
	"errors"
	"fmt"
)

// File identifiers and AIDs.
var (
	pathIDCarta  = []byte{0x10, 0x00, 0x10, 0x03}
	pathDatiPers = []byte{0x11, 0x00, 0x11, 0x02}
	aidCNS       = []byte{0xA0, 0x00, 0x00, 0x05, 0x30, 0x00, 0x0B, 0x10, 0x40, 0x01, 0x02, 0x1A}
	aidIAS       = []byte{0xA0, 0x00, 0x00, 0x00, 0x30, 0x80, 0x00, 0x00, 0x00, 0x09, 0x81, 0x60, 0x01}
	aidCIE       = []byte{0xA0, 0x00, 0x00, 0x00, 0x00, 0x39}
	// The JSign4 application of the ST2022 TS-CNS: over NFC (bare ATR
	// 3B 80 80 01 01) the CNS files are visible only under it. GET DATA
	// 01 80 names the model, so an unrelated contactless card answering
	// the same AID is not taken for a CNS.
	aidJSign        = []byte{0xA0, 0x00, 0x00, 0x00, 0x95, 0x01, 0x00, 0x4D}
	jsignModel      = "JSign4"
	errNotSupported = errors.New("cns: selection method not supported")
)

// selectMethod is how this card accepts file selection.
type selectMethod int

const (
	selUnknown selectMethod = iota
	selPath                 // P1=08 from the MF, with FCI
	selSteps                // P1=00 one FID at a time
	selApplet               // CNS applet AID, then P1=09 relative path
	selJSign                // JSign4 application (ST2022 over NFC), model checked, then P1=09
)

// exchange sends apdu and handles 61xx (GET RESPONSE) and 6Cxx (resend
// with the right Le) transparently.
func (c *Card) exchange(ctx context.Context, op string, apdu []byte) (response, error) {
	var out []byte
	resent := false
	for range 16 {
		if err := ctx.Err(); err != nil {
			return response{}, err
		}
		c.apdus++
		raw, err := c.t.Transmit(apdu)
		if err != nil {
			return response{}, fmt.Errorf("cns: %s: %w", op, err)
		}
		r, err := splitResponse(raw)
		if err != nil {
			return response{}, fmt.Errorf("cns: %s: %w", op, errors.Join(err, errCardData))
		}
		switch sw1 := r.sw >> 8; {
		case sw1 == 0x61:
			out = append(out, r.data...)
			le := byte(r.sw)
			apdu = []byte{apdu[0] & 0x03, 0xC0, 0x00, 0x00, le}
			continue
		case sw1 == 0x6C && !resent && len(apdu) >= 5:
			resent = true
			a := append([]byte(nil), apdu...)
			a[len(a)-1] = byte(r.sw)
			apdu = a
			continue
		}
		r.data = append(out, r.data...)
		return r, nil
	}
	return response{}, fmt.Errorf("cns: %s: too many GET RESPONSE: %w", op, errCardData)
}

var errCardData = errors.New("cns: bad response")

func notFound(sw uint16) bool {
	return sw == swFileNotFound || sw == swWrongParams || sw == swInsNotSupp || sw>>8 == 0x6E || sw == 0x6A87 || sw == 0x6A00 || sw == 0x6900
}

// selectEF selects the EF at path (relative to the MF, without 3F00),
// trying the method that worked last and then the fallbacks. It returns the
// file size from the FCI, or -1 when the card gave none.
func (c *Card) selectEF(ctx context.Context, path []byte) (int, error) {
	methods := []selectMethod{selPath, selSteps, selApplet}
	if c.atr.Contactless() {
		methods = append(methods, selJSign)
	}
	if c.sel != selUnknown {
		methods = []selectMethod{c.sel}
	}
	var last error
	for _, m := range methods {
		size, err := c.selectWith(ctx, m, path)
		if err == nil {
			c.sel = m
			return size, nil
		}
		if !errors.Is(err, errNotSupported) {
			return 0, err
		}
		last = err
	}
	return 0, last
}

func (c *Card) selectWith(ctx context.Context, m selectMethod, path []byte) (int, error) {
	sel := func(p1, p2 byte, data []byte) (response, error) {
		a := append([]byte{0x00, 0xA4, p1, p2, byte(len(data))}, data...)
		if p2 == 0x00 {
			a = append(a, 0x00)
		}
		r, err := c.exchange(ctx, "select", a)
		if err != nil {
			return r, err
		}
		switch {
		case r.sw == swOK || r.sw>>8 == 0x62:
			return r, nil
		case notFound(r.sw):
			return r, fmt.Errorf("%w (%04X)", errNotSupported, r.sw)
		}
		return r, &StatusError{Op: "select", SW: r.sw}
	}
	var r response
	var err error
	switch m {
	case selPath:
		r, err = sel(0x08, 0x00, path)
	case selSteps:
		if _, err = sel(0x00, 0x00, []byte{0x3F, 0x00}); err != nil {
			return 0, err
		}
		for i := 0; i+1 < len(path); i += 2 {
			if r, err = sel(0x00, 0x00, path[i:i+2]); err != nil {
				return 0, err
			}
		}
	case selApplet:
		if !c.applet {
			if _, err = sel(0x04, 0x00, aidCNS); err != nil {
				return 0, err
			}
			c.applet = true
		}
		r, err = sel(0x09, 0x00, path)
	case selJSign:
		if !c.jsign {
			if _, err = sel(0x04, 0x00, aidJSign); err != nil {
				return 0, err
			}
			if err = c.checkJSign(ctx); err != nil {
				return 0, err
			}
			c.jsign = true
		}
		r, err = sel(0x09, 0x00, path)
	}
	if err != nil {
		return 0, err
	}
	return fciSize(r.data), nil
}

// checkJSign asks the selected application for its model (GET DATA 01 80)
// and wants JSign4: anything else is not the application looked for.
func (c *Card) checkJSign(ctx context.Context) error {
	r, err := c.exchange(ctx, "get data", []byte{0x00, 0xCA, 0x01, 0x80, 0x00})
	if err != nil {
		return err
	}
	if r.sw != swOK || string(r.data) != jsignModel {
		return fmt.Errorf("%w (model %04X)", errNotSupported, r.sw)
	}
	return nil
}

// fciSize finds the file size (tag 80, or 81) in an FCP/FCI template.
func fciSize(b []byte) int {
	if len(b) < 2 || (b[0] != 0x62 && b[0] != 0x6F) {
		return -1
	}
	l := int(b[1])
	b = b[2:]
	if l < len(b) {
		b = b[:l]
	}
	size := -1
	for len(b) >= 2 {
		tag, n := b[0], int(b[1])
		if 2+n > len(b) {
			break
		}
		v := b[2 : 2+n]
		if (tag == 0x80 || tag == 0x81 && size < 0) && n >= 1 && n <= 4 {
			s := 0
			for _, x := range v {
				s = s<<8 | int(x)
			}
			size = s
		}
		b = b[2+n:]
	}
	return size
}

// readBinary reads up to n bytes from the selected EF in chunks of at most
// 255 bytes (never Le=00), stopping at end of file (6282, 6B00). want, when
// not nil, is called with the bytes read so far and may lower n (for
// example once a header says how long the record is).
func (c *Card) readBinary(ctx context.Context, n int, want func([]byte) (int, error)) ([]byte, error) {
	var out []byte
	for len(out) < n {
		off := len(out)
		if off > 0x7FFF {
			break
		}
		le := min(n-off, 255)
		r, err := c.exchange(ctx, "read binary", []byte{0x00, 0xB0, byte(off >> 8), byte(off), byte(le)})
		if err != nil {
			return nil, err
		}
		switch {
		case r.sw == swOK:
		case r.sw == swEOFWarning:
			out = append(out, r.data...)
			return out, nil
		case r.sw == swOffsetBeyond:
			return out, nil
		default:
			return nil, &StatusError{Op: "read binary", SW: r.sw}
		}
		if len(r.data) == 0 {
			return out, nil
		}
		if len(r.data) > le {
			return nil, fmt.Errorf("cns: read binary: %d bytes for Le=%d: %w", len(r.data), le, errCardData)
		}
		out = append(out, r.data...)
		if want != nil {
			m, err := want(out)
			if err != nil {
				return nil, err
			}
			n = min(n, m)
		}
	}
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}
