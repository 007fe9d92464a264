package cns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/hal"
)

// Card is a TS-CNS card application on a Transmitter. It implements
// hal.Card; Close does not close the transport (whoever opened it does).
// A Card is used by one goroutine at a time.
type Card struct {
	t   Transmitter
	atr ATR
	// Clock decides whether the card has expired; nil means the system clock.
	Clock hal.Clock

	sel    selectMethod
	applet bool // the CNS applet is selected
	jsign  bool // the JSign4 application is selected (ST2022 over NFC)
	apdus  int
}

var (
	_ hal.Card       = (*Card)(nil)
	_ hal.PINChanger = (*Card)(nil)
	_ hal.CardProbe  = (*Card)(nil)
)

// New returns the card application for the card with the given ATR,
// reached through t.
func New(t Transmitter, atr []byte) *Card {
	return &Card{t: t, atr: ParseATR(append([]byte(nil), atr...))}
}

// ATR returns the parsed ATR.
func (c *Card) ATR() ATR { return c.atr }

// Probe returns the class the ATR implies and the ATR; nothing is sent
// to the chip.
func (c *Card) Probe() (hal.CardClass, []byte) {
	return c.atr.Class(), append([]byte(nil), c.atr.Raw...)
}

// APDUs returns how many C-APDUs were sent so far (for benchmarks).
func (c *Card) APDUs() int { return c.apdus }

// forget drops what the card application learnt about the file system
// (after a reset the current DF and the applet selection are gone).
func (c *Card) forget() { c.applet, c.jsign, c.sel = false, false, selUnknown }

// Serial reads EF.ID_Carta and validates it.
func (c *Card) Serial(ctx context.Context) (string, error) {
	if _, err := c.selectEF(ctx, pathIDCarta); err != nil {
		return "", fmt.Errorf("cns: EF.ID_Carta: %w", err)
	}
	b, err := c.readBinary(ctx, 16, nil)
	if err != nil {
		return "", fmt.Errorf("cns: EF.ID_Carta: %w", err)
	}
	s := string(b)
	if err := CheckSerial(s); err != nil {
		return "", fmt.Errorf("%w: %w", err, hal.ErrCardData)
	}
	return s, nil
}

// Personal reads and parses EF.Dati_personali, reading no further than the
// length its header announces.
func (c *Card) Personal(ctx context.Context) (*Personal, error) {
	size, err := c.selectEF(ctx, pathDatiPers)
	if err != nil {
		return nil, fmt.Errorf("cns: EF.Dati_personali: %w", err)
	}
	n := 400
	if size > 0 {
		n = min(size, personalMaxSize)
	}
	b, err := c.readBinary(ctx, n, func(b []byte) (int, error) {
		if len(b) < 6 {
			return n, nil
		}
		return PersonalLength(b)
	})
	if err != nil {
		if errors.Is(err, ErrPersonal) {
			err = fmt.Errorf("%w: %w", err, hal.ErrCardData)
		}
		return nil, fmt.Errorf("cns: EF.Dati_personali: %w", err)
	}
	p, err := ParsePersonal(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, hal.ErrCardData)
	}
	return p, nil
}

// NIS reads the 12-digit service number of a CIE 3.0 (readable without
// PACE). It tries the IAS route first (select the IAS application, then
// the CIE one, READ BINARY by short file id 1) and, when the chip refuses
// the IAS application (CIE 3.0 on NXP chips answer 6A82), the master-file
// route the CIE middleware uses: select the MF, select EF.ID_Servizi
// (1001) under it, read it.
func (c *Card) NIS(ctx context.Context) (string, error) {
	nis, err := c.nisIAS(ctx)
	var se *StatusError
	if err == nil || !errors.As(err, &se) || !notFound(se.SW) {
		return nis, err
	}
	return c.nisMF(ctx)
}

func (c *Card) nisIAS(ctx context.Context) (string, error) {
	for _, aid := range [][]byte{aidIAS, aidCIE} {
		a := append([]byte{0x00, 0xA4, 0x04, 0x0C, byte(len(aid))}, aid...)
		if err := c.mustOK(ctx, "select", a); err != nil {
			return "", err
		}
	}
	return c.readNIS(ctx, []byte{0x00, 0xB0, 0x81, 0x00, 0x0C})
}

func (c *Card) nisMF(ctx context.Context) (string, error) {
	for _, a := range [][]byte{
		{0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00}, // the MF by FID
		{0x00, 0xA4, 0x02, 0x0C, 0x02, 0x10, 0x01}, // EF.ID_Servizi under it
	} {
		if err := c.mustOK(ctx, "select", a); err != nil {
			return "", err
		}
	}
	return c.readNIS(ctx, []byte{0x00, 0xB0, 0x00, 0x00, 0x0C})
}

// mustOK sends apdu and wants 9000.
func (c *Card) mustOK(ctx context.Context, op string, apdu []byte) error {
	r, err := c.exchange(ctx, op, apdu)
	if err != nil {
		return fmt.Errorf("cns: CIE: %w", err)
	}
	if r.sw != swOK {
		return fmt.Errorf("cns: CIE: %w", &StatusError{Op: op, SW: r.sw})
	}
	return nil
}

func (c *Card) readNIS(ctx context.Context, apdu []byte) (string, error) {
	r, err := c.exchange(ctx, "read binary", apdu)
	if err != nil {
		return "", fmt.Errorf("cns: CIE: %w", err)
	}
	if r.sw != swOK {
		return "", fmt.Errorf("cns: CIE: %w", &StatusError{Op: "read binary", SW: r.sw})
	}
	if len(r.data) != 12 || !allDigits(string(r.data)) {
		return "", fmt.Errorf("cns: CIE: NIS is not 12 digits: %w", hal.ErrCardData)
	}
	return string(r.data), nil
}

// Info reads the identity data that needs no PIN. An expired card returns
// the info together with hal.ErrCardExpired; a chip that is not a TS-CNS
// returns hal.ErrCardUnknown (with Class set, e.g. ClassCIE); unreadable or
// malformed data returns hal.ErrCardData.
func (c *Card) Info(ctx context.Context) (hal.CardInfo, error) {
	info, err := c.info(ctx)
	if errors.Is(err, ErrCardReset) {
		c.forget()
		info, err = c.info(ctx)
	}
	return info, err
}

func (c *Card) info(ctx context.Context) (hal.CardInfo, error) {
	info := hal.CardInfo{Class: c.atr.Class()}
	contactless := info.Class == hal.ClassContactless
	if contactless {
		if _, err := c.NIS(ctx); err == nil {
			info.Class = hal.ClassCIE
			return info, fmt.Errorf("cns: CIE without CNS application: %w", hal.ErrCardCIE)
		} else if ctx.Err() != nil || transportErr(err) {
			return info, err
		}
		c.forget()
	}
	serial, err := c.Serial(ctx)
	if err != nil {
		if errors.Is(err, errNotSupported) {
			if contactless {
				// No CIE, and no application of ours found over the
				// contactless interface: the contact side may still hold
				// a TS-CNS the citizen only laid on the reader.
				return info, fmt.Errorf("%w: %w", err, hal.ErrCardContactless)
			}
			return info, fmt.Errorf("%w: %w", err, hal.ErrCardUnknown)
		}
		return info, dataErr(err)
	}
	p, err := c.Personal(ctx)
	if err != nil {
		if errors.Is(err, errNotSupported) {
			return info, fmt.Errorf("%w: %w", err, hal.ErrCardData)
		}
		return info, dataErr(err)
	}
	info.Class = hal.ClassCNS
	if Operator(serial) {
		info.Class = hal.ClassOperator
	}
	info.Serial = serial
	info.Issuer = p.Issuer
	info.CF = p.CF
	info.Surname = p.Surname
	info.Name = p.Name
	info.BirthDate = p.BirthDate
	info.IssueDate = p.IssueDate
	info.Expiry = p.Expiry
	if Expired(p.Expiry, c.now()) {
		return info, fmt.Errorf("cns: expired on %s: %w", p.Expiry.Format(time.DateOnly), hal.ErrCardExpired)
	}
	return info, nil
}

// transportErr reports whether err came from the transport (card removed,
// reader gone…) rather than from the card's answers.
func transportErr(err error) bool {
	var se *StatusError
	return !errors.As(err, &se) && !errors.Is(err, errCardData) && !errors.Is(err, hal.ErrCardData)
}

// dataErr marks status-word failures while reading as unreadable data and
// leaves transport errors (removal, reset, cancellation) alone.
func dataErr(err error) error {
	var se *StatusError
	if errors.As(err, &se) || errors.Is(err, errCardData) {
		if !errors.Is(err, hal.ErrCardData) {
			return fmt.Errorf("%w: %w", err, hal.ErrCardData)
		}
	}
	return err
}

func (c *Card) now() time.Time {
	if c.Clock != nil {
		return c.Clock.Now()
	}
	return time.Now()
}

// Expired reports whether a card valid through the day expiry (a date in
// UTC as on the chip) has expired at now, in Italian local time.
func Expired(expiry, now time.Time) bool {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		loc = time.UTC
	}
	n := now.In(loc)
	today := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
	return today.After(expiry)
}

// Close forgets the session state. The transport is closed (with a card
// reset) by whoever opened it.
func (c *Card) Close() error {
	c.forget()
	return nil
}
