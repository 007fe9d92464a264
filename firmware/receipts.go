package firmware

import (
	"time"

	"github.com/aslcns/totem/cms"
	layout "github.com/aslcns/totem/firmware/receipts"
	"github.com/aslcns/totem/hal"
)

// The layouts live in firmware/receipts (imported as layout: receipts is
// the golden tests' list); these are the names the flows and the golden
// tests use, with the App's frame filled in.

// MaskCF hides the part of a codice fiscale that tells birth date and
// place: RSSMRA80A01H501U → RSS**********01U.
func MaskCF(cf string) string { return layout.MaskCF(cf) }

// LocalID is the provisional identifier of an operation not yet answered
// by the hub: totem and sequence number.
func LocalID(totem string, seq uint64) string { return layout.LocalID(totem, seq) }

// Frame is what every document the App prints carries besides its lines.
func (a *App) Frame() layout.Frame {
	return layout.Frame{ASL: a.o.ASL, Totem: a.o.Totem, Location: a.o.Location, Now: a.now(), Lang: a.lang, Zone: a.o.Zone, Link: a.o.ReceiptLink, Town: a.o.Town}
}

// declaration is the dichiarazione sostitutiva a delegate signs.
func declaration(o Options, now time.Time, holder hal.CardInfo, d cms.Delegation, doc cms.IDDocument) *hal.Doc {
	return layout.Frame{ASL: o.ASL, Totem: o.Totem, Location: o.Location, Town: o.Town, Now: now, Zone: o.Zone}.Declaration(holder, d, doc)
}

// historyLines names each event by its kind's registered title.
func (a *App) historyLines(r cms.HistoryResult) []string { return a.Frame().History(r, a.title) }

var maskSerial = layout.MaskSerial
