package cns

import (
	"context"
	"errors"
	"fmt"

	"github.com/aslcns/totem/hal"
)

// PIN references.
const (
	refPIN = 0x10
	refPUK = 0x11
)

// ErrPINFormat is returned, before anything is sent, for a PIN or PUK that
// is not 5–8 ASCII digits.
var ErrPINFormat = errors.New("cns: PIN must be 5 to 8 digits")

func checkPIN(p []byte) error {
	if len(p) < 5 || len(p) > 8 {
		return ErrPINFormat
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return ErrPINFormat
		}
	}
	return nil
}

// putPIN writes p padded with FF to 8 bytes into dst.
func putPIN(dst, p []byte) {
	n := copy(dst[:8], p)
	for i := n; i < 8; i++ {
		dst[i] = 0xFF
	}
}

// p2 is the PIN reference as this mask wants it: STIncard (H4 = 09) sets
// bit 8.
func (c *Card) p2(ref byte) byte {
	if c.atr.STIncard() {
		return ref | 0x80
	}
	return ref
}

// VerifyPIN presents the user PIN. pin is copied only into the APDU
// buffer, which is zeroed before returning. A wrong PIN returns a
// *hal.PINError (TriesLeft -1 when the chip does not say); a blocked one
// hal.ErrPINBlocked.
func (c *Card) VerifyPIN(ctx context.Context, pin []byte) error {
	return c.sendPINs(ctx, 0x20, "verify", pin)
}

// ChangePIN replaces the user PIN (CHANGE REFERENCE DATA).
func (c *Card) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	return c.sendPINs(ctx, 0x24, "change PIN", oldPIN, newPIN)
}

// UnblockPIN sets a new user PIN with the PUK (RESET RETRY COUNTER). A
// wrong PUK returns a *hal.PINError with the PUK tries left.
func (c *Card) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	return c.sendPINs(ctx, 0x2C, "unblock PIN", puk, newPIN)
}

// sendPINs checks codes (one or two) and sends them, 8 bytes each (putPIN),
// with instruction ins for the user PIN; the APDU buffer, the only copy
// of the codes, is zeroed before returning.
func (c *Card) sendPINs(ctx context.Context, ins byte, op string, codes ...[]byte) error {
	for _, p := range codes {
		if err := checkPIN(p); err != nil {
			return err
		}
	}
	var arr [5 + 16]byte
	buf := arr[:5+8*len(codes)]
	defer clear(buf)
	copy(buf, []byte{0x00, ins, 0x00, c.p2(refPIN), byte(8 * len(codes))})
	for i, p := range codes {
		putPIN(buf[5+8*i:], p)
	}
	return c.pinCommand(ctx, op, buf)
}

// pinCommand sends apdu once (twice if the transport reports that the card
// was reset before it got there) and maps the status word.
func (c *Card) pinCommand(ctx context.Context, op string, apdu []byte) error {
	r, err := c.exchange(ctx, op, apdu)
	if errors.Is(err, ErrCardReset) {
		c.forget()
		r, err = c.exchange(ctx, op, apdu)
	}
	if err != nil {
		return err
	}
	if err := PINStatus(r.sw); err != nil {
		return fmt.Errorf("cns: %s: %w", op, err)
	}
	return nil
}

// PINStatus maps the status word of VERIFY, CHANGE or RESET RETRY COUNTER
// to nil, *hal.PINError, hal.ErrPINBlocked or a *StatusError.
func PINStatus(sw uint16) error {
	switch {
	case sw == swOK:
		return nil
	case sw&0xFFF0 == 0x63C0:
		if sw&0x0F == 0 {
			return hal.ErrPINBlocked
		}
		return &hal.PINError{TriesLeft: int(sw & 0x0F)}
	case sw == swWrongPINNoInfo, sw == swSecurity:
		return &hal.PINError{TriesLeft: -1}
	case sw == swBlocked, sw == swRefDataInvalid:
		return hal.ErrPINBlocked
	}
	return &StatusError{Op: "PIN", SW: sw}
}
