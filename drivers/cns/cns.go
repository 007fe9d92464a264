// Package cns is the TS-CNS card application (Italian "Carta Nazionale dei
// Servizi" / Tessera Sanitaria): ATR classification, file selection with
// the fallbacks real lots need, READ BINARY, the EF.Dati_personali parser,
// codice TEAM, and PIN VERIFY / CHANGE / UNBLOCK.
//
// It is transport-independent: everything goes through a Transmitter, so
// the same code runs on PC/SC (drivers/pcsc), on a virtual card in process
// (drivers/cns/vcard) and on recorded traffic in tests (drivers/cns/cnstest).
// cns imports only hal and the standard library.
package cns

import (
	"errors"
	"fmt"
)

// Transmitter sends one C-APDU and returns the R-APDU (data and the two
// status bytes). It is the only seam between the card application and the
// transport.
type Transmitter interface {
	Transmit(apdu []byte) ([]byte, error)
}

// ErrCardReset is returned (wrapped) by a Transmitter when the card was
// reset by someone else and the transport reconnected: the command was not
// executed and the card application restarts its read from SELECT.
var ErrCardReset = errors.New("cns: card reset")

// Status words.
const (
	swOK             = 0x9000
	swEOFWarning     = 0x6282
	swWrongPINNoInfo = 0x6300
	swWrongLength    = 0x6700
	swSecurity       = 0x6982
	swBlocked        = 0x6983
	swRefDataInvalid = 0x6984
	swWrongParams    = 0x6A86
	swFileNotFound   = 0x6A82
	swRefNotFound    = 0x6A88
	swOffsetBeyond   = 0x6B00
	swInsNotSupp     = 0x6D00
)

// StatusError is an unexpected status word.
type StatusError struct {
	Op string
	SW uint16
}

func (e *StatusError) Error() string { return fmt.Sprintf("cns: %s: status %04X", e.Op, e.SW) }

// response splits an R-APDU into data and status word.
type response struct {
	data []byte
	sw   uint16
}

func splitResponse(r []byte) (response, error) {
	if len(r) < 2 {
		return response{}, fmt.Errorf("cns: short response (%d bytes)", len(r))
	}
	n := len(r) - 2
	return response{data: r[:n], sw: uint16(r[n])<<8 | uint16(r[n+1])}, nil
}
