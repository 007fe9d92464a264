// Package screens is the catalogue of what the totem's 20x4 display shows,
// in Italian and English: each screen declared as data with its rows and
// the keys it answers to, the texts the flows wrap into pages, and Format,
// which fills a screen's verbs. A test checks every screen fits the
// display, shows on the LCD's character ROMs and binds the keys it hints
// at. firmware shows them; nothing here touches a device.
package screens

import (
	"fmt"
	"strings"

	"github.com/aslcns/totem/hal"
)

// Every text a citizen can see lives here, in Italian and English. Screens
// are at most 20 columns and 4 rows (a test checks every entry).

// Lang is a catalogue language.
type Lang int

// Languages.
const (
	IT Lang = iota
	EN
)

// ParseLang maps "it"/"en" to a Lang (Italian for anything else).
func ParseLang(s string) Lang {
	if s == "en" {
		return EN
	}
	return IT
}

type text [2]string // IT, EN

// screen is one screen of the catalogue, declared as data: its rows in
// each language (%-verbs filled in order by show) and the keys it answers
// to. Keys not listed are ignored while it is shown; every key a row hints
// at ("#=OK") is listed, and every screen that takes input has Back (*)
// and Cancel (D) — a test checks both.
type screen struct {
	rows [2][]string // IT, EN
	keys string      // bound keys; "" for screens that only inform
}

const digits = "0123456789"

var screens = map[string]screen{
	// Without a card: # the menu of the services that need none (7-9
	// also work from here, as on the card menu).
	"idle": {keys: "#789*D", rows: [2][]string{{"    Benvenuto/a", "Inserire la tessera", "sanitaria TS-CNS", "Senza tessera #=Menu"},
		{"      Welcome", "Insert your health", "card (TS-CNS)", "No card? #=Menu"}}},
	"reading": {rows: [2][]string{{"Lettura tessera...", "Attendere, prego", "", ""},
		{"Reading the card...", "Please wait", "", ""}}},
	// The menu pages: # turns to the next page (from the last back to the
	// first), * to the previous one (on the first it ends the session, as
	// D does). Every function key works from every page: 1-9 the
	// functions, 0 the requests the totem cannot serve.
	"menu": {keys: digits + "#*D", rows: [2][]string{{"Menu: #=Altro D=Esci", "1 Consensi FSE", "2 Richiesta lettore", "3 Cambio PIN"},
		{"Menu: #=More D=Exit", "1 FSE consents", "2 Card reader", "3 Change PIN"}}},
	"menu_2": {keys: digits + "#*D", rows: [2][]string{{"2/4 #=Avanti *=Ind.", "4 Storico", "5 Ristampa PIN/PUK", "6 Sblocco PIN (PUK)"},
		{"2/4 #=Next *=Back", "4 History", "5 Reprint PIN/PUK", "6 Unblock PIN (PUK)"}}},
	"menu_3": {keys: digits + "#*D", rows: [2][]string{{"3/4 #=Avanti *=Ind.", "7 Revoca tessera", "8 Moduli da stampare", "9 Guida"},
		{"3/4 #=Next *=Back", "7 Revoke the card", "8 Printable forms", "9 Help"}}},
	"menu_4": {keys: digits + "#*D", rows: [2][]string{{"4/4 #=Inizio *=Ind.", "0 Sospensione,", "  riemissione,", "  dati errati"},
		{"4/4 #=Start *=Back", "0 Suspension,", "  reissue,", "  wrong data"}}},
	"menu_other": {keys: "123*D", rows: [2][]string{{"Altre: *=Ind. D=Esci", "1 Sospens./Riattiv.", "2 Riemissione", "3 Dati errati"},
		{"Other: *=Back D=Exit", "1 Suspend/Reactivate", "2 Reissue", "3 Wrong data"}}},
	// Long texts (refusals, the CMS's rejections) page three rows at a time.
	"page": {keys: "#*D", rows: [2][]string{{"%s", "%s", "%s", "#=Avanti *=Indietro"},
		{"%s", "%s", "%s", "#=Next *=Back"}}},
	"page_last": {keys: "#*D", rows: [2][]string{{"%s", "%s", "%s", "#=Menu D=Esci"},
		{"%s", "%s", "%s", "#=Menu D=Exit"}}},
	"unavailable": {rows: [2][]string{{"Servizio non", "disponibile ora:", "riprovare più tardi", "o allo sportello"},
		{"Service unavailable", "now: try again later", "or go to the", "counter"}}},
	// An operation that needs the CMS's answer, asked for while the hub is
	// unreachable: every key goes back to the menu, where the operations
	// that work offline still do.
	"act_already_active": {keys: "#*D", rows: [2][]string{{"Tessera già attiva:", "per i codici usare", "Ristampa PIN/PUK", "#=Torna al menu"},
		{"Card already active:", "for the codes use", "Reprint PIN/PUK", "#=Back to the menu"}}},
	"offline_refused": {keys: "#*D", rows: [2][]string{{"Servizio non", "disponibile ora:", "riprovare più tardi", "#=Torna al menu"},
		{"Service unavailable", "now: try again", "later", "#=Back to the menu"}}},
	"asking": {rows: [2][]string{{"Richiesta in corso", "Attendere, prego", "", ""},
		{"Request in progress", "Please wait", "", ""}}},
	"late": {keys: "*D", rows: [2][]string{{"Risposta in ritardo", "attendere: se arriva", "stampo la ricevuta.", "D=Non attendere"},
		{"Answer delayed", "please wait: if it", "comes, the receipt", "prints. D=Don't wait"}}},
	"late_gone": {rows: [2][]string{{"Risposta non giunta", "in tempo: riprovare", "più tardi o andare", "allo sportello"},
		{"No answer in time:", "try again later or", "go to the counter", ""}}},
	"history_scope": {keys: "12*D", rows: [2][]string{{"Storico:", "1 Tutte le tessere", "2 Solo questa", "*=Indietro D=Esci"},
		{"History:", "1 All my cards", "2 This card only", "*=Back D=Exit"}}},
	// One card of the history per page: "1/2 attiva", the masked serial,
	// the expiry.
	"history_card": {keys: "1#*D", rows: [2][]string{{"Tessera %s", "N. %s", "Scadenza %s", "#=Avanti 1=Stampa"},
		{"Card %s", "No. %s", "Expires %s", "#=Next 1=Print"}}},
	"history_none": {keys: "*D", rows: [2][]string{{"Nessuna tessera", "nell'archivio", "", "*=Menu D=Esci"},
		{"No card on record", "", "", "*=Menu D=Exit"}}},
	"reprint_reason": {keys: "1234*D", rows: [2][]string{{"1 Codici dimenticati", "2 Codici smarriti", "3 Codici non giunti", "4 PIN/PUK bloccati"},
		{"1 Codes forgotten", "2 Codes lost", "3 Codes not received", "4 PIN/PUK blocked"}}},
	"payment": {keys: digits + "#*D", rows: [2][]string{{"Richiesta lettore:", "n. ricevuta 4,20 €", "%s", "#=OK *=Canc D=Esci"},
		{"Card reader request:", "4,20 € receipt no.", "%s", "#=OK *=Del D=Exit"}}},
	"pin_new": {keys: digits + "#*D", rows: [2][]string{{"Nuovo PIN:", "da 5 a 8 cifre", "PIN: %s", "#=OK *=Canc D=Esci"},
		{"New PIN:", "5 to 8 digits", "PIN: %s", "#=OK *=Del D=Exit"}}},
	"pin_again": {keys: digits + "#*D", rows: [2][]string{{"Ripetere il", "nuovo PIN", "PIN: %s", "#=OK *=Canc D=Esci"},
		{"Type the new PIN", "again", "PIN: %s", "#=OK *=Del D=Exit"}}},
	"pin_mismatch": {keys: "#*D", rows: [2][]string{{"I due PIN non", "coincidono.", "", "#=Riprova D=Esci"},
		{"The two PINs", "differ.", "", "#=Retry D=Exit"}}},
	// # on a number shorter than its field takes: the length expected,
	// then # or * back to the digits typed so far (issue 17).
	"too_short": {keys: "#*D", rows: [2][]string{{"Troppo poche cifre.", "Servono %d-%d cifre", "", "#=Riprova D=Esci"},
		{"Too few digits.", "%d to %d are needed", "", "#=Retry D=Exit"}}},
	"too_short_exact": {keys: "#*D", rows: [2][]string{{"Troppo poche cifre.", "Servono %d cifre", "", "#=Riprova D=Esci"},
		{"Too few digits.", "%d are needed", "", "#=Retry D=Exit"}}},
	"pin": {keys: digits + "#*D", rows: [2][]string{{"Digitare il PIN", "della tessera", "PIN: %s", "#=OK *=Canc D=Esci"},
		{"Enter the card PIN", "", "PIN: %s", "#=OK *=Del D=Exit"}}},
	"pin_wrong": {keys: "#*D", rows: [2][]string{{"PIN errato", "Tentativi rimasti:%d", "", "#=Riprova D=Esci"},
		{"Wrong PIN", "Tries left: %d", "", "#=Retry D=Exit"}}},
	"pin_last": {keys: "#*D", rows: [2][]string{{"PIN errato.", "ATTENZIONE: ultimo", "tentativo prima del", "blocco. #=OK D=Esci"},
		{"Wrong PIN.", "WARNING: last try", "before the PIN is", "blocked. #=OK D=Exit"}}},
	"reader_gone": {rows: [2][]string{{"Servizio sospeso:", "lettore di tessere", "non disponibile.", "Ci scusiamo."},
		{"Out of service:", "card reader not", "available.", "We apologise."}}},
	"pin_blocked": {rows: [2][]string{{"PIN bloccato: si", "sblocca con il PUK", "(menu, tasto 6)", "Rimuovere tessera"},
		{"PIN blocked: unblock", "it with the PUK", "(menu, key 6)", "Remove the card"}}},
	"consent": {keys: "12*D", rows: [2][]string{{"Consenso %d di %d", "%s", "%s", "1=Sì 2=No *=Indietro"},
		{"Consent %d of %d", "%s", "%s", "1=Yes 2=No *=Back"}}},
	"summary": {keys: "#*D", rows: [2][]string{{"Riepilogo:", "", "", "#=Conferma D=Annulla"},
		{"Summary:", "", "", "#=Confirm D=Cancel"}}},
	"saving": {rows: [2][]string{{"Registrazione...", "Attendere, prego", "", ""},
		{"Saving...", "Please wait", "", ""}}},
	"printing": {rows: [2][]string{{"Stampa ricevuta...", "", "", ""},
		{"Printing receipt...", "", "", ""}}},
	"done": {rows: [2][]string{{"Accolta. Protocollo:", "%s", "Ritirare ricevuta", "e tessera"},
		{"Accepted. Reference:", "%s", "Take the receipt", "and your card"}}},
	"provisional": {rows: [2][]string{{"Salvata: l'esito", "arriverà appena", "possibile. Ritirare", "ricevuta e tessera"},
		{"Request saved: the", "outcome follows when", "online. Take receipt", "and your card"}}},
	"rejected": {rows: [2][]string{{"Operazione rifiutata", "%s", "%s", "Ritirare tessera"},
		{"Request refused", "%s", "%s", "Remove your card"}}},
	"no_receipt": {rows: [2][]string{{"Operazione salvata", "Stampante:", "%s", "ricevuta in attesa"},
		{"Request saved", "Printer:", "%s", "receipt will follow"}}},
	"card_unknown": {rows: [2][]string{{"Tessera non", "riconosciuta", "", "Rimuovere tessera"},
		{"Card not", "recognised", "", "Remove the card"}}},
	"card_cie": {rows: [2][]string{{"Carta d'identità:", "usare la tessera", "sanitaria", "Rimuovere la carta"},
		{"Identity card:", "please use your", "health card", "Remove the card"}}},
	"card_contactless": {rows: [2][]string{{"Tessera letta senza", "contatto: inserirla", "a fondo nella", "fessura"},
		{"Card read without", "contact: insert it", "fully into", "the slot"}}},
	"card_data": {rows: [2][]string{{"Dati non leggibili:", "rivolgersi allo", "sportello Scelta", "e Revoca"},
		{"Unreadable data:", "please go to the", "Scelta e Revoca", "desk"}}},
	"card_expired": {rows: [2][]string{{"Tessera scaduta", "", "", "Rimuovere tessera"},
		{"Card expired", "", "", "Remove the card"}}},
	"card_error": {rows: [2][]string{{"Errore di lettura", "Rimuovere e", "reinserire la", "tessera"},
		{"Card read error", "Remove and insert", "the card again", ""}}},
	"cancelled": {rows: [2][]string{{"Operazione annullata", "", "Rimuovere tessera", ""},
		{"Cancelled", "", "Remove the card", ""}}},
	"remove_card": {rows: [2][]string{{"", "Rimuovere la", "tessera", ""},
		{"", "Please remove", "your card", ""}}},
	"save_failed": {rows: [2][]string{{"Operazione NON", "registrata: guasto", "del totem. Andare", "allo sportello"},
		{"Request NOT saved:", "totem fault. Please", "go to the counter", ""}}},
	// The outbox reached its quota (the hub has been unreachable for a
	// long time): nothing was stored, the citizen must try again.
	"queue_full": {rows: [2][]string{{"NON registrata:", "memoria piena.", "Riprovare più tardi", "o allo sportello"},
		{"Request NOT saved:", "totem memory full.", "Try again later or", "go to the counter"}}},
	"idle_warning": {rows: [2][]string{{"Sessione in", "scadenza: premere", "un tasto per", "continuare"},
		{"Session about to", "end: press a key", "to continue", ""}}},
	"not_available": {keys: "*D", rows: [2][]string{{"Servizio non", "disponibile su", "questo totem", "*=Indietro"},
		{"Service not", "available on", "this totem", "*=Back"}}},
}

var texts = map[string]text{
	"yes":                   {"Sì", "Yes"}, // Ì has no glyph on the common LCD ROM
	"no":                    {"No", "No"},
	"paper_out":             {"carta esaurita", "out of paper"},
	"cover_open":            {"coperchio aperto", "cover open"},
	"printer_fault":         {"guasto", "fault"},
	"not_responding":        {"non risponde", "not responding"},
	"alimentazione":         {"Alimentazione del Fascicolo", "Feeding of the FSE"},
	"consultazione":         {"Consultazione del Fascicolo", "Consultation of the FSE"},
	"pregresso":             {"Recupero documenti pregressi", "Past documents"},
	"opposizione_pregresso": {"Opposizione ai documenti ante 2020", "Opposition to pre-2020 documents"},
	"refuse_suspension": {"Le CNS non possono più essere sospese né riattivate: per bloccarla (furto, smarrimento, malfunzionamento) usare la revoca, allo sportello.",
		"Health cards can no longer be suspended or reactivated: to block one (theft, loss, fault) ask for its revocation at the counter."},
	"refuse_reissue": {"La riemissione della tessera si chiede solo agli sportelli aziendali abilitati, non al totem.",
		"A new card can be asked for only at an enabled ASL counter, not at the totem."},
	"refuse_wrong_data": {"I dati anagrafici errati si correggono allo sportello Scelta e Revoca della propria ASL, con un documento di identità.",
		"Wrong personal data are corrected at the Scelta e Revoca desk of your ASL, with an identity document."},
	"state_issued":                {"emessa", "issued"},
	"state_active":                {"attiva", "active"},
	"state_revoked":               {"revocata", "revoked"},
	"rejected_prefix":             {"Operazione rifiutata: ", "Request refused: "},
	"short_alimentazione":         {"Alimentazione", "Feeding"},
	"short_consultazione":         {"Consultazione", "Consultation"},
	"short_pregresso":             {"Pregresso", "Past docs"},
	"short_opposizione_pregresso": {"Opp. pregresso", "Opp. past docs"},
}

// The self-service catalogue (issue 6): Sblocco PIN con PUK, Revoca,
// Dati errati, Modulistica, Guida, Riemissione. Kept apart from the
// tables above; init adds them.
var selfScreens = map[string]screen{
	"puk": {keys: digits + "#*D", rows: [2][]string{{"Sblocco PIN: PUK", "della tessera", "PUK: %s", "#=OK *=Canc D=Esci"},
		{"Unblock PIN: the", "card's PUK", "PUK: %s", "#=OK *=Del D=Exit"}}},
	"puk_wrong": {keys: "#*D", rows: [2][]string{{"PUK errato", "Tentativi rimasti:%d", "", "#=Riprova D=Esci"},
		{"Wrong PUK", "Tries left: %d", "", "#=Retry D=Exit"}}},
	"menu_nocard": {keys: "789*D", rows: [2][]string{{"Senza tessera *=Ind.", "7 Revoca tessera", "8 Moduli da stampare", "9 Guida"},
		{"No card: *=Back", "7 Revoke a card", "8 Printable forms", "9 Help"}}},
	"cancelled_nocard": {rows: [2][]string{{"Operazione annullata", "", "", ""},
		{"Cancelled", "", "", ""}}},
	"revoke_team": {keys: digits + "#*D", rows: [2][]string{{"Revoca: codice TEAM", "(20 cifre sul retro)", "%s", "#=OK *=Canc D=Esci"},
		{"Revoke: TEAM code", "(20 digits, back)", "%s", "#=OK *=Del D=Exit"}}},
	"revoke_team_bad": {keys: "#*D", rows: [2][]string{{"Codice TEAM errato:", "controllare le 20", "cifre sul retro", "#=Riprova D=Esci"},
		{"Wrong TEAM code:", "check the 20 digits", "on the back", "#=Retry D=Exit"}}},
	"revoke_cip": {keys: digits + "#*D", rows: [2][]string{{"CIP (8 cifre, dal", "modulo di attivaz.)", "CIP: %s", "#=OK *=Canc D=Esci"},
		{"CIP (8 digits, on", "the activation form)", "CIP: %s", "#=OK *=Del D=Exit"}}},
	"revoke_reason": {keys: "123*D", rows: [2][]string{{"Motivo della revoca:", "1 Furto", "2 Smarrimento", "3 Malfunzionamento"},
		{"Reason:", "1 Theft", "2 Loss", "3 Malfunction"}}},
	"revoke_confirm": {keys: "#*D", rows: [2][]string{{"Revoca: TEAM %s", "e richiesta di una", "nuova tessera.", "#=Conferma D=Annulla"},
		{"Revoke: TEAM %s", "and request a new", "card.", "#=Confirm D=Cancel"}}},
	"revoke_done": {rows: [2][]string{{"Tessera revocata.", "Protocollo:", "%s", "Ritirare ricevuta"},
		{"Card revoked.", "Reference:", "%s", "Take the receipt"}}},
	"revoke_no_receipt": {rows: [2][]string{{"Revocata. Prot.:", "%s", "Ricevuta in attesa:", "%s"},
		{"Revoked. Reference:", "%s", "Receipt pending:", "%s"}}},
	"forms": {keys: "1234*D", rows: [2][]string{{"1 Richiesta lettore", "2 Delega", "3 Dich. sostitutiva", "4 Modulo di revoca"},
		{"1 Card reader form", "2 Delegation", "3 Self-declaration", "4 Revocation form"}}},
	"form_printed": {keys: "#*D", rows: [2][]string{{"Modulo stampato:", "compilarlo e", "consegnarlo allo", "sportello. #=Altri"},
		{"Form printed: fill", "it in and hand it in", "at the counter.", "#=More forms"}}},
	"form_not_printed": {keys: "#*D", rows: [2][]string{{"Modulo non stampato", "Stampante:", "%s", "#=Altri D=Esci"},
		{"Form not printed", "Printer:", "%s", "#=More D=Exit"}}},
	"wrong_data_field": {keys: "123*D", rows: [2][]string{{"Quale dato è errato?", "1 Nome o cognome", "2 Nascita o sesso", "3 Codice fiscale"},
		{"Which data is wrong?", "1 Name or surname", "2 Birth or sex", "3 Tax code"}}},
	"puk_wrong_unknown": {keys: "#*D", rows: [2][]string{{"PUK errato", "", "", "#=Riprova D=Esci"},
		{"Wrong PUK", "", "", "#=Retry D=Exit"}}},
}

var selfTexts = map[string]text{
	"wrong_data_saved":   {"Segnalazione salvata sul totem (ricevuta provvisoria): sarà trasmessa appena possibile.", "Report saved on the totem (provisional receipt): it will be sent as soon as possible."},
	"wrong_data_done":    {"Segnalazione registrata, protocollo %s.", "Report recorded, reference %s."},
	"wrong_data_refused": {"Segnalazione non registrata: %s", "Report not recorded: %s"},
	"receipt_pending":    {"Ricevuta in attesa (stampante: %s).", "Receipt pending (printer: %s)."},
	"reissue_counter": {"Questo sportello è abilitato alla riemissione: la nuova tessera la chiede a un operatore il titolare, il genitore o il tutore, con un documento di identità.",
		"This counter can reissue cards: the holder, a parent or the guardian asks an operator for the new card, with an identity document."},
	"guide": {"Con la tessera nel lettore: 1 consensi FSE, 2 lettore di smart card, 3 cambio PIN, 4 storico, 5 ristampa PIN/PUK, 6 sblocco PIN con il PUK, 7 revoca. " +
		"Senza tessera: 7 revoca con codice TEAM e CIP, 8 moduli da stampare. " +
		"Tasti: # conferma e va avanti, * torna indietro o cancella una cifra, D esce. " +
		"Il PIN si digita solo qui e resta nella tessera. " +
		"Attivazione, riemissione e dati errati: allo sportello della ASL.",
		"With the card in the reader: 1 FSE consents, 2 smart card reader, 3 change PIN, 4 history, 5 reprint PIN/PUK, 6 unblock the PIN with the PUK, 7 revocation. " +
			"Without a card: 7 revocation with TEAM code and CIP, 8 printable forms. " +
			"Keys: # confirms and goes on, * goes back or deletes a digit, D leaves. " +
			"The PIN is typed only here and stays in the card. " +
			"Activation, reissue and wrong data: at the ASL counter."},
	"puk_blocked": {"PUK bloccato: il PIN non si può più sbloccare. La tessera resta valida come tessera sanitaria; per i servizi in rete serve una nuova tessera, da chiedere allo sportello.",
		"PUK blocked: the PIN can no longer be unblocked. The card stays valid as a health card; for online services a new card is needed, to be asked for at the counter."},
}

func init() {
	for k, v := range selfScreens {
		if _, dup := screens[k]; dup {
			panic("screens: screen " + k + " declared twice")
		}
		screens[k] = v
	}
	for k, v := range selfTexts {
		if _, dup := texts[k]; dup {
			panic("screens: text " + k + " declared twice")
		}
		texts[k] = v
	}
}

// Screen returns the rows of screen key in l, with their %-verbs unfilled
// (Format fills them); an unknown key shows as itself.
func (l Lang) Screen(key string) []string {
	s, ok := screens[key]
	if !ok {
		return []string{key}
	}
	return append([]string(nil), s.rows[l]...)
}

// Has reports whether the catalogue has screen key.
func Has(key string) bool {
	_, ok := screens[key]
	return ok
}

// Bound reports whether screen name answers to k.
func Bound(name string, k hal.Key) bool {
	return strings.IndexByte(screens[name].keys, byte(k)) >= 0
}

// Text returns the text key in l; an unknown key shows as itself.
func (l Lang) Text(key string) string {
	t, ok := texts[key]
	if !ok {
		return key
	}
	return t[l]
}

// Assisted mode (assisted.go, activation.go): what the operator and the
// citizen at the counter see. Merged into screens and texts at init.
var assistedScreens = map[string]screen{
	"op_invalid": {rows: [2][]string{{"Carta operatore non", "valida: serve il", "livello 8 o 9", "Rimuovere la carta"},
		{"Operator card not", "valid: level 8 or 9", "needed", "Remove the card"}}},
	"op_remove": {keys: "*D", rows: [2][]string{{"Op. %s", "Sessione aperta.", "Rimuovere la carta", "operatore. D=Esci"},
		{"Op. %s", "Session open.", "Remove the operator", "card. D=Exit"}}},
	"op_insert": {keys: "1*D", rows: [2][]string{{"Op. %s", "Inserire la TS del", "cittadino", "1=Revoca TEAM D=Esci"},
		{"Op. %s", "Insert the citizen's", "health card", "1=Revoke TEAM D=Exit"}}},
	"op_closed": {rows: [2][]string{{"Sessione operatore", "chiusa", "", ""},
		{"Operator session", "closed", "", ""}}},
	"op_not_citizen": {rows: [2][]string{{"Carta operatore:", "inserire la tessera", "del cittadino", "Rimuovere la carta"},
		{"Operator card:", "insert the citizen's", "health card", "Remove the card"}}},
	// The citizen's menu in an operator session, two pages (# turns);
	// every key works from both. 3-6 are the self-service operations with
	// the operator's document check in place of the card's PIN.
	"op_menu": {keys: "123456#*D", rows: [2][]string{{"TS %s", "1 Attivazione", "2 Revoca", "#=Altre D=Fine"},
		{"TS %s", "1 Activation", "2 Revocation", "#=More D=Done"}}},
	"op_menu_2": {keys: "123456#*D", rows: [2][]string{{"3 Consensi FSE", "4 Ristampa PIN/PUK", "5 Storico 6 Lettore", "#=Inizio *=Ind."},
		{"3 FSE consents", "4 Reprint PIN/PUK", "5 History 6 Reader", "#=Start *=Back"}}},
	// The operator's own PIN, not the citizen's "PIN della tessera".
	"op_pin": {keys: digits + "#*D", rows: [2][]string{{"Sessione operatore:", "PIN carta operatore", "PIN: %s", "#=OK *=Canc D=Esci"},
		{"Operator session:", "operator card PIN", "PIN: %s", "#=OK *=Del D=Exit"}}},
	// Multi-tap text entry: 2=ABC … 9=WXYZ, pressed again for the next
	// letter; C closes the letter (two in a row from one key).
	"text": {keys: digits + "C#*D", rows: [2][]string{{"%s", "%s", "C=Avanti *=Canc", "#=OK D=Esci"},
		{"%s", "%s", "C=Next *=Del", "#=OK D=Exit"}}},
	"who": {keys: "1234*D", rows: [2][]string{{"1 Diretta", "2 Potestà parentale", "3 Tutore", "4 Curatore  *=Ind."},
		{"1 In person", "2 Parent of a minor", "3 Guardian (tutore)", "4 Curator  *=Back"}}},
	"parental_adult": {keys: "#*D", rows: [2][]string{{"Potestà parentale", "solo per i minori:", "titolare maggiorenne", "#=Indietro D=Esci"},
		{"Parental authority", "only for minors: the", "holder is an adult", "#=Back D=Exit"}}},
	"cf_invalid": {keys: "#*D", rows: [2][]string{{"Codice fiscale", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid codice", "fiscale", "", "#=Retry D=Exit"}}},
	"cf_holder": {keys: "#*D", rows: [2][]string{{"Il delegato non può", "essere il titolare", "", "#=Riprova D=Esci"},
		{"The delegate cannot", "be the holder", "", "#=Retry D=Exit"}}},
	"doc_type": {keys: "1234*D", rows: [2][]string{{"Documento:", "1 C.I.    2 CIE", "3 Patente 4 Passap.", "*=Indietro D=Esci"},
		{"Identity document:", "1 ID card  2 CIE", "3 Licence 4 Passport", "*=Back D=Exit"}}},
	"doc_expiry": {keys: digits + "#*D", rows: [2][]string{{"Scadenza documento", "(GGMMAAAA)", "%s", "#=OK *=Canc D=Esci"},
		{"Document expiry", "(DDMMYYYY)", "%s", "#=OK *=Del D=Exit"}}},
	"date_invalid": {keys: "#*D", rows: [2][]string{{"Data non valida", "", "", "#=Riprova D=Esci"},
		{"Invalid date", "", "", "#=Retry D=Exit"}}},
	"doc_expired": {keys: "#*D", rows: [2][]string{{"Documento scaduto:", "serve un documento", "valido", "#=Riprova D=Esci"},
		{"Document expired: a", "valid one is needed", "", "#=Retry D=Exit"}}},
	"id_check": {keys: "12*D", rows: [2][]string{{"%s", "documento e dati", "coincidono?", "1=Sì 2=No *=Ind."},
		{"%s", "document and data", "match?", "1=Yes 2=No *=Back"}}},
	"act_privacy": {keys: "1*D", rows: [2][]string{{"Attivazione:", "informativa letta", "dal cittadino?", "1=Sì *=Ind. D=Esci"},
		{"Activation: has the", "citizen read the", "privacy notice?", "1=Yes *=Back D=Exit"}}},
	"contact_channel": {keys: "12*D", rows: [2][]string{{"Seconde metà di", "PIN e PUK via:", "1=SMS 2=E-mail", "*=Indietro D=Esci"},
		{"Second halves of", "PIN and PUK by:", "1=SMS 2=E-mail", "*=Back D=Exit"}}},
	"contact_sms": {keys: digits + "#*D", rows: [2][]string{{"Numero di cellulare", "(solo cifre)", "%s", "#=OK *=Canc D=Esci"},
		{"Mobile number", "(digits only)", "%s", "#=OK *=Del D=Exit"}}},
	"email_invalid": {keys: "#*D", rows: [2][]string{{"Indirizzo e-mail", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid e-mail", "address", "", "#=Retry D=Exit"}}},
	"reader_offer": {keys: "12*D", rows: [2][]string{{"Lettore smart card", "pagato 4,20 €?", "1=Sì 2=No", "*=Indietro D=Esci"},
		{"Card reader paid", "(4,20 €)?", "1=Yes 2=No", "*=Back D=Exit"}}},
	"fse_offer": {keys: "12*D", rows: [2][]string{{"Creare il Fascicolo", "Sanitario (FSE)", "con i consensi?", "1=Sì 2=No *=Ind."},
		{"Create the health", "record (FSE) with", "the consents?", "1=Yes 2=No *=Back"}}},
	"act_summary1": {keys: "#*D", rows: [2][]string{{"Riepilogo 1/2", "%s", "%s", "#=Avanti *=Ind."},
		{"Summary 1/2", "%s", "%s", "#=Next *=Back"}}},
	"act_summary2": {keys: "#*D", rows: [2][]string{{"%s", "Lettore: %s", "FSE: %s", "#=Conferma D=Esci"},
		{"%s", "Reader: %s", "FSE: %s", "#=Confirm D=Exit"}}},
	"decl_failed": {rows: [2][]string{{"Dichiarazione non", "stampata. Stampante:", "%s", "Attivazione annull."},
		{"Declaration not", "printed. Printer:", "%s", "Activation cancelled"}}},
	"decl_signed": {keys: "1*D", rows: [2][]string{{"Far firmare la", "dichiarazione e", "conservarla.", "1=Firmata *=Ind."},
		{"Have the declaration", "signed and keep it.", "", "1=Signed *=Back"}}},
	"revoke_summary": {keys: "#*D", rows: [2][]string{{"Revoca per", "%s", "+ nuova tessera", "#=Conferma *=Ind."},
		{"Revocation for", "%s", "+ a new card", "#=Confirm *=Back"}}},
	"team": {keys: digits + "#*D", rows: [2][]string{{"Codice TEAM (20", "cifre, retro TS)", "%s", "#=OK *=Canc D=Esci"},
		{"TEAM code (20", "digits, card back)", "%s", "#=OK *=Del D=Exit"}}},
	"team_invalid": {keys: "#*D", rows: [2][]string{{"Codice TEAM", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid TEAM code", "", "", "#=Retry D=Exit"}}},
}

var assistedTexts = map[string]text{
	"t_deleg_name":            {"Cognome nome deleg.", "Delegate's name"},
	"t_deleg_cf":              {"Cod. fiscale deleg.", "Delegate's CF"},
	"t_doc_number":            {"Numero documento", "Document number"},
	"t_email":                 {"Indirizzo e-mail", "E-mail address"},
	"direct":                  {"Diretta", "In person"},
	"deleg_potesta_parentale": {"Potestà parentale", "Parent of a minor"},
	"deleg_tutore":            {"Tutore", "Guardian (tutore)"},
	"deleg_curatore":          {"Curatore", "Curator"},
	"doc_carta_identita":      {"C.I.", "ID card"},
	"doc_cie":                 {"CIE", "CIE"},
	"doc_patente":             {"Patente", "Licence"},
	"doc_passaporto":          {"Passaporto", "Passport"},
	"reason_furto":            {"furto", "theft"},
	"reason_smarrimento":      {"smarrimento", "loss"},
	"reason_malfunzionamento": {"malfunzionamento", "malfunction"},
	"id_mismatch": {"Documento e dati della tessera non coincidono: la procedura termina. Il cittadino va allo sportello Scelta e Revoca per sanare l'errore.",
		"The document and the card's data do not match: the procedure ends. The citizen goes to the Scelta e Revoca desk to have it corrected."},
}

// The assisted block shares revoke_reason with the self-service one.
func init() {
	for k, s := range assistedScreens {
		if _, dup := screens[k]; dup {
			panic("screens: screen " + k + " declared twice")
		}
		screens[k] = s
	}
	for k, t := range assistedTexts {
		if _, dup := texts[k]; dup {
			panic("screens: text " + k + " declared twice")
		}
		texts[k] = t
	}
}

// Format returns screen key in l with its %-verbs filled, in row order,
// from args; rows take as many arguments as they have verbs.
func Format(l Lang, key string, args ...any) []string {
	rows := l.Screen(key)
	for i, r := range rows {
		n := countVerbs(r)
		if n > len(args) {
			n = len(args)
		}
		if n > 0 {
			rows[i] = fmt.Sprintf(r, args[:n]...)
			args = args[n:]
		}
	}
	return rows
}

func countVerbs(s string) int {
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' {
			if s[i+1] != '%' {
				n++
			}
			i++
		}
	}
	return n
}
