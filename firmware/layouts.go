package firmware

import (
	"fmt"
	"strings"

	"github.com/aslcns/totem/cms"
)

// The receipt of every operation: its lines, in Italian (its title is
// registered with its kind, kinds.go).
// They show codes and outcomes, never health details; a receipt's frame
// (ASL, totem, date, masked CF, protocol or provisional id, QR) is added
// by receipt.

var reasons = map[string]string{
	cms.ReasonTheft: "furto", cms.ReasonLoss: "smarrimento", cms.ReasonMalfunction: "malfunzionamento",
	cms.ReprintForgotten: "PIN o PUK dimenticato", cms.ReprintLost: "prime metà smarrite",
	cms.ReprintBlocked: "PIN e PUK bloccati", cms.ReprintNotReceived: "seconde metà non ricevute",
}

func reasonText(r string) string {
	if t, ok := reasons[r]; ok {
		return t
	}
	return r
}

// activationLines: the acceptance form's first halves and the CIP, and
// where the second halves go.
func activationLines(r cms.ActivationResult) []string {
	lines := []string{
		"Prima metà del PIN: " + r.PINFirstHalf,
		"Prima metà del PUK: " + r.PUKFirstHalf,
		"Codice CIP (per la revoca): " + r.CIP,
		"Le seconde metà di PIN e PUK saranno inviate a: " + r.SecondHalvesTo,
		"Conservare PIN, PUK e CIP separati dalla tessera.",
	}
	if r.Readers > 0 {
		lines = append(lines, fmt.Sprintf("Lettori di smart card registrati: %d", r.Readers))
	}
	if r.FSE != "" {
		lines = append(lines, "Fascicolo Sanitario Elettronico: richiesta registrata")
	}
	return append(lines, "", "Firma del titolare: ____________________")
}

// reprintLines: the first halves again, the reason, the second halves' way.
func reprintLines(reason string, r cms.ReprintResult) []string {
	return []string{
		"Motivo: " + reasonText(reason),
		"Prima metà del PIN: " + r.PINFirstHalf,
		"Prima metà del PUK: " + r.PUKFirstHalf,
		"Le seconde metà saranno inviate a: " + r.SecondHalvesTo,
	}
}

// revocationLines: the revocation and the reissue requested with it.
func revocationLines(r cms.RevocationResult) []string {
	return []string{
		"Motivo: " + reasonText(r.Reason),
		"Tessera revocata il: " + r.RevokedAt.Local().Format("02/01/2006 15:04"),
		"Richiesta di nuova tessera: " + r.Reissue,
		"La tessera revocata non è più utilizzabile.",
	}
}

// readerLines: the payment and the card's reader counter.
func readerLines(payment string, r cms.ReaderResult) []string {
	lines := []string{"Ricevuta di pagamento: " + payment + " (4,20 €)"}
	if r.Readers > 0 {
		lines = append(lines, fmt.Sprintf("Lettori registrati per la tessera: %d", r.Readers))
	}
	return append(lines, "Presentare questa ricevuta per il ritiro del lettore.")
}

var stateText = map[cms.CardState]string{cms.CardIssued: "emessa", cms.CardActive: "attiva", cms.CardRevoked: "revocata"}

// historyLines: each card with its state and the operations on it.
func historyLines(r cms.HistoryResult) []string {
	var lines []string
	for i, c := range r.Cards {
		if i > 0 {
			lines = append(lines, "")
		}
		lines = append(lines, "Tessera "+maskSerial(c.Serial), "Scadenza "+c.Expiry+" - "+stateText[c.State])
		for _, e := range c.Events {
			lines = append(lines, e.At.Local().Format("02/01/2006")+" "+kindTitle(e.Kind)+" prot. "+e.Protocol)
		}
	}
	return lines
}

// maskSerial hides all but the last four digits of a card serial.
func maskSerial(serial string) string {
	if len(serial) <= 4 {
		return serial
	}
	return strings.Repeat("*", len(serial)-4) + serial[len(serial)-4:]
}

// pinEventLines: what happened on the chip; no code is ever recorded.
func pinEventLines(kind string) []string {
	what := "Il PIN è stato cambiato sul chip della tessera."
	if kind == cms.KindPINUnblock {
		what = "Il PIN è stato sbloccato con il PUK sul chip della tessera."
	}
	return []string{what, "Nessun codice è stato registrato o trasmesso."}
}

// wrongDataLines: the report and where to go.
func wrongDataLines() []string {
	return []string{
		"La segnalazione è stata registrata.",
		"Per correggere i dati rivolgersi allo sportello Scelta e Revoca della propria ASL, con un documento di identità.",
	}
}
