// Package cnstest ships test helpers for the card application: a Playback
// transmitter that replays a recorded APDU exchange and fails on anything
// unexpected, and a Recorder that captures an exchange to build one.
package cnstest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// Exchange is one C-APDU and the R-APDU answering it. An R-APDU of nil with
// Err set makes Transmit fail with Err (a removed card, a reset…).
type Exchange struct {
	C, R []byte
	Err  error
}

// X parses an exchange from hex strings ("00 A4 08 00 …"), for scripts.
func X(c, r string) Exchange { return Exchange{C: mustHex(c), R: mustHex(r)} }

// XErr is an exchange whose Transmit fails with err.
func XErr(c string, err error) Exchange { return Exchange{C: mustHex(c), Err: err} }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(fmt.Sprintf("cnstest: bad hex %q: %v", s, err))
	}
	return b
}

// TB is the part of testing.TB Playback needs.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Playback replays Script in order. Any C-APDU that differs from the next
// expected one, or comes after the end, is reported to T and answered with
// 6F00. Call Done at the end to check the script was used up.
type Playback struct {
	T      TB
	Script []Exchange

	mu sync.Mutex
	n  int
}

// Transmit implements cns.Transmitter.
func (p *Playback) Transmit(apdu []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.T.Helper()
	if p.n >= len(p.Script) {
		p.T.Errorf("cnstest: unexpected APDU #%d after the end of the script: % X", p.n+1, apdu)
		p.n++
		return []byte{0x6F, 0x00}, nil
	}
	x := p.Script[p.n]
	p.n++
	if !bytes.Equal(apdu, x.C) {
		p.T.Errorf("cnstest: APDU #%d:\n got % X\nwant % X", p.n, apdu, x.C)
		return []byte{0x6F, 0x00}, nil
	}
	if x.Err != nil {
		return nil, x.Err
	}
	return bytes.Clone(x.R), nil
}

// Done reports any exchange of the script that was not used.
func (p *Playback) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.T.Helper()
	if p.n < len(p.Script) {
		p.T.Errorf("cnstest: %d of %d exchanges not used; next: % X", len(p.Script)-p.n, len(p.Script), p.Script[p.n].C)
	}
}

// Transmitter is the seam cns uses (repeated here to keep cnstest free of
// an import cycle with cns's own tests).
type Transmitter interface {
	Transmit(apdu []byte) ([]byte, error)
}

// Recorder forwards to T and records every exchange.
type Recorder struct {
	T Transmitter

	mu  sync.Mutex
	Log []Exchange
}

// Transmit implements cns.Transmitter.
func (r *Recorder) Transmit(apdu []byte) ([]byte, error) {
	resp, err := r.T.Transmit(apdu)
	r.mu.Lock()
	r.Log = append(r.Log, Exchange{C: bytes.Clone(apdu), R: bytes.Clone(resp), Err: err})
	r.mu.Unlock()
	return resp, err
}

// Script returns the recording as Go source lines for a Playback script.
func (r *Recorder) Script() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, x := range r.Log {
		fmt.Fprintf(&b, "cnstest.X(%q, %q),\n", spaced(x.C), spaced(x.R))
	}
	return b.String()
}

func spaced(b []byte) string { return strings.TrimSpace(fmt.Sprintf("% X", b)) }
