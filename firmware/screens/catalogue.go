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
	// typed: a keyboard's characters and cursor keys are bound too (the
	// operator's text fields, assisted mode).
	typed bool
	// secret: what is typed here goes from the keypad to the chip only
	// (PIN, PUK): a keyboard's digits are refused. A test checks every
	// screen with a PIN or PUK field is secret.
	secret bool
}

const digits = "0123456789"

var screens = map[string]screen{
	// Without a card: # the menu of the services that need none (7-9
	// also work from here, as on the card menu).
	// A turns speech on for the session (screens.go: spoken), B switches
	// to the other language, each named in its own (issue 17).
	"idle": {keys: "#789*DAB", rows: [2][]string{{"Inserire la tessera", "sanitaria TS-CNS", "Senza tessera #=Menu", "A=Voce   B=English"},
		{"Insert your health", "card (TS-CNS)", "No card? #=Menu", "A=Voice  B=Italiano"}}},
	"reading": {rows: [2][]string{{"Lettura tessera...", "Attendere, prego", "", ""},
		{"Reading the card...", "Please wait", "", ""}}},
	// The menu pages: # turns to the next page (from the last back to the
	// first), * to the previous one (on the first it ends the session, as
	// D does). Every function key works from every page: 1-9 the
	// functions, 0 the requests the totem cannot serve.
	"menu": {keys: digits + "#*D", rows: [2][]string{{"1/4 #=Avanti D=Esci", "1 Consensi FSE", "2 Richiesta lettore", "3 Cambio PIN"},
		{"1/4 #=Next D=Exit", "1 FSE consents", "2 Card reader", "3 Change PIN"}}},
	"menu_2": {keys: digits + "#*D", rows: [2][]string{{"2/4 #=Avanti *=Torna", "4 Storico", "5 Ristampa PIN/PUK", "6 Sblocco PIN (PUK)"},
		{"2/4 #=Next *=Back", "4 History", "5 Reprint PIN/PUK", "6 Unblock PIN (PUK)"}}},
	"menu_3": {keys: digits + "#*D", rows: [2][]string{{"3/4 #=Avanti *=Torna", "7 Revoca tessera", "8 Moduli da stampare", "9 Guida"},
		{"3/4 #=Next *=Back", "7 Revoke the card", "8 Printable forms", "9 Help"}}},
	"menu_4": {keys: digits + "#*D", rows: [2][]string{{"4/4 #=Inizio *=Torna", "0 Sospensione,", "  riemissione,", "  dati errati"},
		{"4/4 #=Start *=Back", "0 Suspension,", "  reissue,", "  wrong data"}}},
	"menu_other": {keys: "123*D", rows: [2][]string{{"*=Indietro D=Esci", "1 Sospensione", "2 Riemissione", "3 Dati errati"},
		{"*=Back D=Exit", "1 Suspension", "2 Reissue", "3 Wrong data"}}},
	// Long texts (refusals, the CMS's rejections) page three rows at a time.
	"page": {keys: "#*D", rows: [2][]string{{"%s", "%s", "%s", "#=Avanti *=Indietro"},
		{"%s", "%s", "%s", "#=Next *=Back"}}},
	// A refusal that can be put right at once (a wrong CIP): # asks again.
	"retry_page": {keys: "#*D", rows: [2][]string{{"%s", "%s", "%s", "#=Riprova D=Esci"},
		{"%s", "%s", "%s", "#=Retry D=Exit"}}},
	"page_last": {keys: "#*D", rows: [2][]string{{"%s", "%s", "%s", "#=Menu D=Esci"},
		{"%s", "%s", "%s", "#=Menu D=Exit"}}},
	"unavailable": {rows: [2][]string{{"Servizio non", "disponibile ora:", "riprovare più tardi", "o allo sportello"},
		{"Service unavailable", "now: try again later", "or go to the", "counter"}}},
	// An activation of a card the CMS says is active already: every key
	// goes back to the menu, where Ristampa gives the codes again.
	"act_already_active": {keys: "#*D", rows: [2][]string{{"Tessera già attiva:", "per i codici usare", "Ristampa PIN/PUK", "#=Torna al menu"},
		{"Card already active:", "for the codes use", "Reprint PIN/PUK", "#=Back to the menu"}}},
	// An operation that needs the CMS's answer, asked for while the hub is
	// unreachable: every key goes back to the menu, where the operations
	// that work offline still do.
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
	// The Storico, two lines a page (cards and their operations): 1
	// prints it from any page.
	"history_page": {keys: "1#*D", rows: [2][]string{{"%s 1=Stampa", "%s", "%s", "#=Avanti *=Indietro"},
		{"%s 1=Print", "%s", "%s", "#=Next *=Back"}}},
	"history_last": {keys: "1#*D", rows: [2][]string{{"%s 1=Stampa", "%s", "%s", "#=Menu *=Indietro"},
		{"%s 1=Print", "%s", "%s", "#=Menu *=Back"}}},
	// The Storico printed: an extract, not a request with an outcome.
	"printed_query": {keys: "#*D", rows: [2][]string{{"Storico stampato:", "ritirare il foglio", "", "#=Altra operazione"},
		{"History printed:", "take the sheet", "", "#=Another operation"}}},
	"history_none": {keys: "*D", rows: [2][]string{{"Nessuna tessera", "nell'archivio", "", "*=Menu D=Esci"},
		{"No card on record", "", "", "*=Menu D=Exit"}}},
	"reprint_reason": {keys: "1234*D", rows: [2][]string{{"1 Codici dimenticati", "2 Codici smarriti", "3 Codici non giunti", "4 PIN/PUK bloccati"},
		{"1 Codes forgotten", "2 Codes lost", "3 Codes not received", "4 PIN/PUK blocked"}}},
	// The summary of a reprint, confirmed before anything is sent or
	// printed (seed 001, Ristampa h.).
	"reprint_summary": {keys: "#*D", rows: [2][]string{{"Codici %s", "seconde metà a:", "%s", "#=Sì *=Indietro"},
		{"Codes %s", "second halves to:", "%s", "#=Confirm *=Back"}}},
	"payment": {keys: digits + "#*D", rows: [2][]string{{"Lettore: n. ricevuta", "(4,20 €), poi #=OK", "%s", "*=Cancella D=Esci"},
		{"Reader: receipt no.", "(4,20 €), then #=OK", "%s", "*=Delete D=Exit"}}},
	// Richiesta lettore's summary before it is sent: * corrects the number.
	"reader_confirm": {keys: "#*D", rows: [2][]string{{"Richiesta lettore,", "ricevuta 4,20 € n.", "%s", "#=Conferma D=Annulla"},
		{"Card reader request,", "4,20 € receipt no.", "%s", "#=Confirm D=Cancel"}}},
	"pin_new": {secret: true, keys: digits + "#*D", rows: [2][]string{{"Nuovo PIN: da 5 a 8", "cifre, poi #=OK", "PIN: %s", "*=Cancella D=Esci"},
		{"New PIN: 5 to 8", "digits, then #=OK", "PIN: %s", "*=Delete D=Exit"}}},
	"pin_again": {secret: true, keys: digits + "#*D", rows: [2][]string{{"Ripetere il nuovo", "PIN, poi #=OK", "PIN: %s", "*=Cancella D=Esci"},
		{"Type the new PIN", "again, then #=OK", "PIN: %s", "*=Delete D=Exit"}}},
	"pin_mismatch": {keys: "#*D", rows: [2][]string{{"I due PIN non", "coincidono.", "", "#=Riprova D=Esci"},
		{"The two PINs", "differ.", "", "#=Retry D=Exit"}}},
	// # on a number shorter than its field takes: the length expected,
	// then # or * back to the digits typed so far (issue 17).
	"too_short": {keys: "#*D", rows: [2][]string{{"Troppo poche cifre.", "Servono %d-%d cifre", "", "#=Riprova D=Esci"},
		{"Too few digits.", "%d to %d are needed", "", "#=Retry D=Exit"}}},
	"too_short_exact": {keys: "#*D", rows: [2][]string{{"Troppo poche cifre.", "Servono %d cifre", "", "#=Riprova D=Esci"},
		{"Too few digits.", "%d are needed", "", "#=Retry D=Exit"}}},
	"pin": {secret: true, keys: digits + "#*D", rows: [2][]string{{"Digitare il PIN", "della tessera e #=OK", "PIN: %s", "*=Cancella D=Esci"},
		{"Enter the card PIN", "then #=OK", "PIN: %s", "*=Delete D=Exit"}}},
	"pin_wrong": {keys: "#*D", rows: [2][]string{{"PIN errato.", "Restano %d tentativi", "", "#=Riprova D=Esci"},
		{"Wrong PIN.", "%d tries left", "", "#=Retry D=Exit"}}},
	"pin_last": {keys: "#*D", rows: [2][]string{{"PIN errato.", "ATTENZIONE: ultimo", "tentativo prima del", "blocco. #=OK D=Esci"},
		{"Wrong PIN.", "WARNING: last try", "before the PIN is", "blocked. #=OK D=Exit"}}},
	"reader_gone": {rows: [2][]string{{"Servizio sospeso:", "lettore di tessere", "non disponibile.", "Ci scusiamo."},
		{"Out of service:", "card reader not", "available.", "We apologise."}}},
	"pin_blocked": {rows: [2][]string{{"PIN bloccato: si", "sblocca con il PUK", "(menu, tasto 6)", "Rimuovere tessera"},
		{"PIN blocked: unblock", "it with the PUK", "(menu, key 6)", "Remove the card"}}},
	// The informativa on the FSE comes before the consents (seed 002,
	// step 1): on the wall by the totem, and printed on 1.
	"fse_info": {keys: "1#*D", rows: [2][]string{{"Informativa FSE:", "leggerla prima dei", "consensi. 1=Stampa", "#=Avanti *=Indietro"},
		{"FSE privacy notice:", "read it before the", "consents. 1=Print", "#=Next *=Back"}}},
	"info_not_printed": {keys: "#*D", rows: [2][]string{{"Informativa non", "stampata:", "%s", "#=Avanti D=Esci"},
		{"Notice not printed:", "", "%s", "#=Next D=Exit"}}},
	// The consent's name, then its explanation (consentTexts).
	"consent": {keys: "12*D", rows: [2][]string{{"Consenso %d di %d:", "%s", "%s", "1=Sì 2=No *=Indietro"},
		{"Consent %d of %d:", "%s", "%s", "1=Yes 2=No *=Back"}}},
	"summary": {keys: "#*D", rows: [2][]string{{"Riepilogo:", "", "", "#=Conferma D=Annulla"},
		{"Summary:", "", "", "#=Confirm D=Cancel"}}},
	"saving": {rows: [2][]string{{"Registrazione...", "Attendere, prego", "", ""},
		{"Saving...", "Please wait", "", ""}}},
	"printing": {rows: [2][]string{{"Stampa ricevuta...", "", "", ""},
		{"Printing receipt...", "", "", ""}}},
	// The outcome of an operation (Finish): # goes back to the menu for
	// another one in the same session, the PIN still verified; D ends it
	// (issue 17).
	"done": {keys: "#*D", rows: [2][]string{{"Accolta. Protocollo:", "%s", "Ritirare la ricevuta", "#=Altra operazione"},
		{"Accepted. Reference:", "%s", "Take the receipt", "#=Another operation"}}},
	"provisional": {keys: "#*D", rows: [2][]string{{"Salvata: l'esito", "arriverà appena", "possibile.", "#=Altra operazione"},
		{"Request saved: the", "outcome will follow", "as soon as possible", "#=Another operation"}}},
	"no_receipt": {keys: "#*D", rows: [2][]string{{"Salvata. Ricevuta", "in attesa:", "%s", "#=Altra operazione"},
		{"Saved. Receipt", "pending:", "%s", "#=Another operation"}}},
	// The definitive outcome of a provisional one, arrived while the
	// citizen is still there; its receipt is printed.
	"late_done": {keys: "#*D", rows: [2][]string{{"Esito arrivato:", "accolta, protocollo", "%s", "#=Altra operazione"},
		{"Outcome received:", "accepted, reference", "%s", "#=Another operation"}}},
	"late_rejected": {keys: "#*D", rows: [2][]string{{"Esito arrivato:", "RESPINTA. Il motivo", "è sulla ricevuta.", "#=Altra operazione"},
		{"Outcome received:", "REFUSED. The reason", "is on the receipt.", "#=Another operation"}}},
	"late_no_receipt": {keys: "#*D", rows: [2][]string{{"Esito arrivato, prot", "%s", "ricevuta in attesa", "#=Altra operazione"},
		{"Outcome received:", "%s", "receipt pending", "#=Another operation"}}},
	"goodbye": {rows: [2][]string{{"", "Ritirare la tessera", "e la ricevuta", ""},
		{"", "Take your card and", "the receipt", ""}}},
	// The acceptance form of an activation not printed.
	"form_no_receipt": {rows: [2][]string{{"Operazione salvata", "Stampante:", "%s", "ricevuta in attesa"},
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
	// Before an idle session ends (session.idle_warning before): any key
	// gives the full time again.
	"idle_warning": {rows: [2][]string{{"Serve altro tempo?", "Premere un tasto", "per continuare.", ""},
		{"Need more time?", "Press any key", "to continue.", ""}}},
	"not_available": {keys: "*D", rows: [2][]string{{"Servizio non", "disponibile su", "questo totem", "*=Indietro"},
		{"Service not", "available on", "this totem", "*=Back"}}},
}

var texts = map[string]text{
	"yes":            {"Sì", "Yes"}, // Ì has no glyph on the common LCD ROM
	"no":             {"No", "No"},
	"paper_out":      {"carta esaurita", "out of paper"},
	"cover_open":     {"coperchio aperto", "cover open"},
	"printer_fault":  {"guasto", "fault"},
	"not_responding": {"non risponde", "not responding"},
	"refuse_suspension": {"Le CNS non possono più essere sospese né riattivate: per bloccarla (furto, smarrimento, malfunzionamento) si chiede la revoca, qui al totem (tasto 7, anche senza tessera, con il codice TEAM e il CIP) o allo sportello.",
		"Health cards can no longer be suspended or reactivated: to block one (theft, loss, fault) ask for its revocation, here at the totem (key 7, also without the card, with the TEAM code and the CIP) or at the counter."},
	"refuse_reissue": {"La riemissione della tessera si chiede solo agli sportelli aziendali abilitati, non al totem.",
		"A new card can be asked for only at an enabled ASL counter, not at the totem."},
	"refuse_wrong_data": {"I dati anagrafici errati si correggono allo sportello Scelta e Revoca della propria ASL, con un documento di identità.",
		"Wrong personal data are corrected at the Scelta e Revoca desk of your ASL, with an identity document."},
	"h_title":                     {"Storico", "History"},
	"h_card":                      {"Tessera %s", "Card %s"},
	"h_expiry":                    {"Scadenza %s", "Expires %s"},
	"h_no_events":                 {"nessuna operazione", "no operations"},
	"h_events":                    {"operazioni:", "operations:"},
	"state_issued":                {"emessa", "issued"},
	"state_active":                {"attiva", "active"},
	"state_revoked":               {"revocata", "revoked"},
	"rejected_prefix":             {"Operazione rifiutata: ", "Request refused: "},
	"rejected_default":            {"Rivolgersi allo sportello.", "Please ask at the counter."},
	"on_file":                     {"recapito in archivio", "contact on file"},
	"no_contact":                  {"nessun recapito", "no contact on file"},
	"rp_dimenticato":              {"dimenticati", "forgotten"},
	"rp_smarrito":                 {"smarriti", "lost"},
	"rp_non_ricevuto":             {"non giunti", "not arrived"},
	"rp_bloccato":                 {"bloccati", "blocked"},
	"short_alimentazione":         {"Alimentazione", "Feeding"},
	"short_consultazione":         {"Consultazione", "Consultation"},
	"short_pregresso":             {"Pregresso", "Past docs"},
	"short_opposizione_pregresso": {"Opp. pregresso", "Opp. past docs"},
}

// The FSE consents, by the policy's code (issue 17): one name each, the
// same on the consent screen, the summary and the receipt (at most 16
// columns: "name: Sì" fits a row), asked so that 1=Sì gives the consent
// (no double negative: the "opposizione" to the data before 19/05/2020 is
// asked as excluding them), with a one-row explanation (why_) and the
// receipt's sentence (rcpt_, Italian as receipts are).
var consentTexts = map[string]text{
	"consultazione":              {"Consultazione", "Consultation"},
	"why_consultazione":          {"FSE letto dai medici", "doctors read the FSE"},
	"rcpt_consultazione":         {"Consultazione (i medici possono leggere il Fascicolo)", "Consultation (doctors may read the FSE)"},
	"opposizione_pregresso":      {"Escludi pre-2020", "Exclude pre-2020"},
	"why_opposizione_pregresso":  {"(nascosti a tutti)", "(hidden from all)"},
	"rcpt_opposizione_pregresso": {"Escludi pre-2020 (i dati del Fascicolo anteriori al 19/05/2020 restano nascosti)", "Exclude pre-2020 (the FSE data before 19/05/2020 stay hidden)"},
	"alimentazione":              {"Alimentazione", "Feeding"},
	"why_alimentazione":          {"referti nel FSE", "reports go to FSE"},
	"rcpt_alimentazione":         {"Alimentazione (i referti sono inviati al Fascicolo)", "Feeding (reports are sent to the FSE)"},
	"pregresso":                  {"Dati pregressi", "Past data"},
	"why_pregresso":              {"recuperati nel FSE", "added to the FSE"},
	"rcpt_pregresso":             {"Dati pregressi (i documenti precedenti sono recuperati nel Fascicolo)", "Past data (earlier documents are added to the FSE)"},
}

// ConsentCodes are the consent codes the catalogue names.
var ConsentCodes = []string{"consultazione", "opposizione_pregresso", "alimentazione", "pregresso"}

// The self-service catalogue (issue 6): Sblocco PIN con PUK, Revoca,
// Dati errati, Modulistica, Guida, Riemissione. Kept apart from the
// tables above; init adds them.
var selfScreens = map[string]screen{
	"puk": {secret: true, keys: digits + "#*D", rows: [2][]string{{"Sblocco PIN: PUK", "della tessera e #=OK", "PUK: %s", "*=Cancella D=Esci"},
		{"Unblock PIN: the", "card's PUK, #=OK", "PUK: %s", "*=Delete D=Exit"}}},
	"puk_wrong": {keys: "#*D", rows: [2][]string{{"PUK errato.", "Restano %d tentativi", "", "#=Riprova D=Esci"},
		{"Wrong PUK.", "%d tries left", "", "#=Retry D=Exit"}}},
	"menu_nocard": {keys: "789*D", rows: [2][]string{{"*=Indietro D=Esci", "7 Revoca tessera", "8 Moduli da stampare", "9 Guida"},
		{"*=Back D=Exit", "7 Revoke a card", "8 Printable forms", "9 Help"}}},
	"cancelled_nocard": {rows: [2][]string{{"Operazione annullata", "", "", ""},
		{"Cancelled", "", "", ""}}},
	"revoke_team": {keys: digits + "#*D", rows: [2][]string{{"Revoca: codice TEAM", "(20 cifre sul retro)", "%s", "#=OK *=Cancella"},
		{"Revoke: TEAM code", "(20 digits, back)", "%s", "#=OK *=Delete"}}},
	"revoke_team_bad": {keys: "#*D", rows: [2][]string{{"Codice TEAM errato:", "controllare le 20", "cifre sul retro", "#=Riprova D=Esci"},
		{"Wrong TEAM code:", "check the 20 digits", "on the back", "#=Retry D=Exit"}}},
	"revoke_cip": {keys: digits + "#*D", rows: [2][]string{{"CIP: 8 cifre, dal", "foglio con PIN e PUK", "CIP: %s", "#=OK *=Cancella"},
		{"CIP: 8 digits, from", "the PIN/PUK sheet", "CIP: %s", "#=OK *=Delete"}}},
	"revoke_reason": {keys: "123*D", rows: [2][]string{{"Motivo: 1 Furto", "2 Smarrimento", "3 Malfunzionamento", "*=Indietro D=Esci"},
		{"Reason: 1 Theft", "2 Loss", "3 Malfunction", "*=Back D=Exit"}}},
	"revoke_confirm": {keys: "#*D", rows: [2][]string{{"Revoca: TEAM %s", "e richiesta di una", "nuova tessera.", "#=Conferma D=Annulla"},
		{"Revoke: TEAM %s", "and request a new", "card.", "#=Confirm D=Cancel"}}},
	"revoke_done": {rows: [2][]string{{"Tessera revocata.", "Protocollo:", "%s", "Ritirare ricevuta"},
		{"Card revoked.", "Reference:", "%s", "Take the receipt"}}},
	"revoke_no_receipt": {rows: [2][]string{{"Revocata. Prot.:", "%s", "Ricevuta in attesa:", "%s"},
		{"Revoked. Reference:", "%s", "Receipt pending:", "%s"}}},
	"forms": {keys: "1234*D", rows: [2][]string{{"1 Richiesta lettore", "2 Delega  4 Revoca", "3 Dich. sostitutiva", "*=Indietro D=Esci"},
		{"1 Card reader form", "2 Delegate 4 Revoke", "3 Self-declaration", "*=Back D=Exit"}}},
	"form_printed": {keys: "#*D", rows: [2][]string{{"Modulo stampato:", "compilarlo e", "consegnarlo allo", "sportello. #=Altri"},
		{"Form printed: fill", "it in and hand it in", "at the counter.", "#=More forms"}}},
	"form_not_printed": {keys: "#*D", rows: [2][]string{{"Modulo non stampato", "Stampante:", "%s", "#=Altri D=Esci"},
		{"Form not printed", "Printer:", "%s", "#=More D=Exit"}}},
	"wrong_data_field": {keys: "123*D", rows: [2][]string{{"1 Nome o cognome", "2 Nascita o sesso", "3 Codice fiscale", "*=Indietro D=Esci"},
		{"1 Name or surname", "2 Birth or sex", "3 Tax code", "*=Back D=Exit"}}},
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
	for k, v := range consentTexts {
		if _, dup := texts[k]; dup {
			panic("screens: text " + k + " declared twice")
		}
		texts[k] = v
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
	s := screens[name]
	if _, ok := k.Char(); ok || k == hal.KeyLeft || k == hal.KeyRight || k == hal.KeyDelete {
		return s.typed
	}
	return strings.IndexByte(s.keys, byte(k)) >= 0
}

// Typed reports whether screen name takes a keyboard's characters.
func Typed(name string) bool { return screens[name].typed }

// Secret reports whether what is typed on screen name goes to the chip
// only (PIN, PUK): from the keypad, never from a keyboard.
func Secret(name string) bool { return screens[name].secret }

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
	"op_insert": {keys: "12*D", rows: [2][]string{{"Op. %s", "Inserire la TS del", "cittadino 2=Senza TS", "1=Revoca TEAM D=Esci"},
		{"Op. %s", "Insert the citizen's", "card  2=Card absent", "1=Revoke TEAM D=Exit"}}},
	// The citizen's card not in the slot: CF, TEAM code and expiry typed
	// (seed 001), for the operations that need no chip.
	"op_menu_nocard": {keys: "3456*D", rows: [2][]string{{"3 Consensi FSE", "4 Ristampa PIN/PUK", "5 Storico 6 Lettore", "D=Fine (senza TS)"},
		{"3 FSE consents", "4 Reprint PIN/PUK", "5 History 6 Reader", "D=Done (no card)"}}},
	"card_expiry": {keys: digits + "#*D", rows: [2][]string{{"Scadenza tessera", "(GGMMAAAA)", "%s", "#=OK *=Cancella"},
		{"Card expiry date", "(DDMMYYYY)", "%s", "#=OK *=Delete D=Exit"}}},
	"typed_card_expired": {keys: "#*D", rows: [2][]string{{"Tessera scaduta:", "serve la tessera", "nuova", "#=Riprova D=Esci"},
		{"Card expired: the", "new card is needed", "", "#=Retry D=Exit"}}},
	"op_closed": {rows: [2][]string{{"Sessione operatore", "chiusa", "", ""},
		{"Operator session", "closed", "", ""}}},
	"op_not_citizen": {rows: [2][]string{{"Carta operatore:", "inserire la tessera", "del cittadino", "Rimuovere la carta"},
		{"Operator card:", "insert the citizen's", "health card", "Remove the card"}}},
	// The citizen's menu in an operator session, two pages (# turns);
	// every key works from both. 3-6 are the self-service operations with
	// the operator's document check in place of the card's PIN.
	"op_menu": {keys: "1234567#*D", rows: [2][]string{{"TS %s", "1 Attivazione", "2 Revoca", "#=Altre D=Fine"},
		{"TS %s", "1 Activation", "2 Revocation", "#=More D=Done"}}},
	"op_menu_2": {keys: "1234567#*D", rows: [2][]string{{"3 Consensi FSE", "4 Ristampa PIN/PUK", "5 Storico 6 Lettore", "#=Inizio *=Indietro"},
		{"3 FSE consents", "4 Reprint PIN/PUK", "5 History 6 Reader", "#=Start *=Back"}}},
	// The second page at a counter enabled to reissue cards.
	"op_menu_2r": {keys: "1234567#*D", rows: [2][]string{{"3 Consensi FSE", "4 Ristampa 5 Storico", "6 Lettore 7 Riemiss.", "#=Inizio *=Indietro"},
		{"3 FSE consents", "4 Reprint 5 History", "6 Reader 7 Reissue", "#=Start *=Back"}}},
	"reissue_reason": {keys: "123*D", rows: [2][]string{{"Nuova tessera per:", "1 Furto", "2 Smarrimento", "3 Malfunzionamento"},
		{"New card because of:", "1 Theft", "2 Loss", "3 Malfunction"}}},
	"reissue_curator": {keys: "#*D", rows: [2][]string{{"Nuova tessera: solo", "titolare, genitore", "o tutore", "#=Indietro D=Esci"},
		{"New card: only the", "holder, a parent or", "the guardian", "#=Back D=Exit"}}},
	"reissue_summary": {keys: "#*D", rows: [2][]string{{"Riemissione per", "%s", "%s", "#=Sì *=Indietro"},
		{"Reissue because of", "%s", "%s", "#=Confirm *=Back"}}},
	// The operator's own PIN, not the citizen's "PIN della tessera".
	"op_pin": {secret: true, keys: digits + "#*D", rows: [2][]string{{"PIN carta operatore", "e #=OK", "PIN: %s", "*=Cancella D=Esci"},
		{"Operator card PIN,", "then #=OK", "PIN: %s", "*=Delete D=Exit"}}},
	// Text entry: the field's title, the text with its cursor, the hint
	// (the letters of the key being cycled, or what 0 and 1 type), the
	// keys. Multi-tap: 2=ABC … 9=WXYZ, pressed again for the next letter;
	// C closes the letter (two in a row from one key); A and B move the
	// cursor. A keyboard types and moves the cursor too (typed).
	"text": {typed: true, keys: digits + "ABC#*D", rows: [2][]string{{"%s", "%s", "%s", "#=OK *=Cancella"},
		{"%s", "%s", "%s", "#=OK *=Delete D=Exit"}}},
	"who": {keys: "1234*D", rows: [2][]string{{"1 Diretta", "2 Genitore (minore)", "3 Tutore 4 Curatore", "*=Indietro D=Esci"},
		{"1 In person", "2 Parent of a minor", "3 Guardian 4 Curator", "*=Back D=Exit"}}},
	"parental_adult": {keys: "#*D", rows: [2][]string{{"Genitore: solo per i", "minori, il titolare", "è maggiorenne", "#=Indietro D=Esci"},
		{"Parent: only for", "minors: the holder", "is an adult", "#=Back D=Exit"}}},
	"cf_invalid": {keys: "#*D", rows: [2][]string{{"Codice fiscale", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid codice", "fiscale", "", "#=Retry D=Exit"}}},
	"cf_holder": {keys: "#*D", rows: [2][]string{{"Il delegato non può", "essere il titolare", "", "#=Riprova D=Esci"},
		{"The delegate cannot", "be the holder", "", "#=Retry D=Exit"}}},
	"doc_type": {keys: "1234*D", rows: [2][]string{{"Documento: 1 C.I.", "2 CIE  3 Patente", "4 Passaporto", "*=Indietro D=Esci"},
		{"Document: 1 ID card", "2 CIE  3 Licence", "4 Passport", "*=Back D=Exit"}}},
	"doc_expiry": {keys: digits + "#*D", rows: [2][]string{{"Scadenza documento", "(GGMMAAAA) e #=OK", "%s", "*=Cancella D=Esci"},
		{"Document expiry", "(DDMMYYYY), #=OK", "%s", "*=Delete D=Exit"}}},
	"date_invalid": {keys: "#*D", rows: [2][]string{{"Data non valida", "", "", "#=Riprova D=Esci"},
		{"Invalid date", "", "", "#=Retry D=Exit"}}},
	"doc_expired": {keys: "#*D", rows: [2][]string{{"Documento scaduto:", "serve un documento", "valido", "#=Riprova D=Esci"},
		{"Document expired: a", "valid one is needed", "", "#=Retry D=Exit"}}},
	"id_check": {keys: "12*D", rows: [2][]string{{"Documento titolare:", "%s", "foto e dati giusti?", "1=Sì 2=No *=Indietro"},
		{"Holder's document:", "%s", "photo, data match?", "1=Yes 2=No *=Back"}}},
	// A delegate's document is checked against the delegate and the name
	// typed for them, not the holder's (issue 17).
	"id_check_deleg": {keys: "12*D", rows: [2][]string{{"Documento delegato:", "%s", "foto e dati giusti?", "1=Sì 2=No *=Indietro"},
		{"Delegate's document:", "%s", "photo, data match?", "1=Yes 2=No *=Back"}}},
	// The second identity check (seed 002, step 5): the document against
	// the holder as the CMS knows them.
	"id_check_cms": {keys: "12*D", rows: [2][]string{{"%s", "nato/a il %s", "foto e dati giusti?", "1=Sì 2=No *=Indietro"},
		{"%s", "born %s", "photo, data match?", "1=Yes 2=No *=Back"}}},
	"cms_unreachable": {keys: "#*D", rows: [2][]string{{"Archivio CMS non", "raggiungibile:", "verifica sul chip", "#=Avanti D=Esci"},
		{"CMS records not", "reachable: check on", "the chip's data", "#=Next D=Exit"}}},
	"act_privacy": {keys: "1*D", rows: [2][]string{{"Attivazione:", "informativa letta", "dal cittadino?", "1=Sì *=Indietro"},
		{"Activation: has the", "citizen read the", "privacy notice?", "1=Yes *=Back"}}},
	"contact_channel": {keys: "12*D", rows: [2][]string{{"Seconde metà di", "PIN e PUK via:", "1=SMS 2=E-mail", "*=Indietro D=Esci"},
		{"Second halves of", "PIN and PUK by:", "1=SMS 2=E-mail", "*=Back D=Exit"}}},
	// Ristampa at the counter: where the second halves go.
	"reprint_channel": {keys: "123*D", rows: [2][]string{{"Seconde metà a:", "%s", "1=Questo 2=Nuovo SMS", "3=E-mail *=Indietro"},
		{"Second halves to:", "%s", "1=This 2=New SMS", "3=New e-mail *=Back"}}},
	"contact_sms": {keys: digits + "#*D", rows: [2][]string{{"Numero di cellulare", "(solo cifre) e #=OK", "%s", "*=Cancella D=Esci"},
		{"Mobile number (only", "digits), then #=OK", "%s", "*=Delete D=Exit"}}},
	"email_invalid": {keys: "#*D", rows: [2][]string{{"Indirizzo e-mail", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid e-mail", "address", "", "#=Retry D=Exit"}}},
	"reader_offer": {keys: "12*D", rows: [2][]string{{"Lettore smart card", "pagato 4,20 €?", "1=Sì 2=No", "*=Indietro D=Esci"},
		{"Card reader paid", "(4,20 €)?", "1=Yes 2=No", "*=Back D=Exit"}}},
	"fse_offer": {keys: "12*D", rows: [2][]string{{"Creare il Fascicolo", "Sanitario (FSE)", "con i consensi?", "1=Sì 2=No *=Indietro"},
		{"Create the health", "record (FSE) with", "the consents?", "1=Yes 2=No *=Back"}}},
	// The activation's summary for the operator, everything in full, two
	// lines a page.
	"op_summary": {keys: "#*D", rows: [2][]string{{"Riepilogo %s", "%s", "%s", "#=Avanti *=Indietro"},
		{"Summary %s", "%s", "%s", "#=Next *=Back"}}},
	"op_summary_last": {keys: "#*D", rows: [2][]string{{"Riepilogo %s", "%s", "%s", "#=Conferma D=Esci"},
		{"Summary %s", "%s", "%s", "#=Confirm D=Exit"}}},
	"decl_failed": {rows: [2][]string{{"Dichiarazione non", "stampata. Stampante:", "%s", "Attivazione annull."},
		{"Declaration not", "printed. Printer:", "%s", "Activation cancelled"}}},
	"decl_failed_op": {rows: [2][]string{{"Dichiarazione non", "stampata. Stampante:", "%s", "Operazione annull."},
		{"Declaration not", "printed. Printer:", "%s", "Operation cancelled"}}},
	"decl_signed": {keys: "1*D", rows: [2][]string{{"Far firmare la", "dichiarazione e", "conservarla.", "1=Firmata *=Indietro"},
		{"Have the declaration", "signed and keep it.", "", "1=Signed *=Back"}}},
	"revoke_summary": {keys: "#*D", rows: [2][]string{{"Revoca per", "%s", "+ nuova tessera", "#=Conferma *=Torna"},
		{"Revocation for", "%s", "+ a new card", "#=Confirm *=Back"}}},
	"team": {keys: digits + "#*D", rows: [2][]string{{"Codice TEAM (20", "cifre, retro TS)", "%s", "#=OK *=Cancella"},
		{"TEAM code (20", "digits, card back)", "%s", "#=OK *=Delete"}}},
	"team_invalid": {keys: "#*D", rows: [2][]string{{"Codice TEAM", "non valido", "", "#=Riprova D=Esci"},
		{"Invalid TEAM code", "", "", "#=Retry D=Exit"}}},
}

var assistedTexts = map[string]text{
	"sum_request":  {"Richiesta:", "Request:"},
	"sum_delegate": {"Delegato:", "Delegate:"},
	"sum_cf":       {"CF", "CF"},
	"sum_expiry":   {"Scadenza", "Expires"},
	"sum_sms":      {"SMS al numero:", "SMS to:"},
	"sum_email":    {"E-mail a:", "E-mail to:"},
	"sum_reader":   {"Lettore:", "Reader:"},
	"sum_payment":  {"Ricevuta", "Receipt"},
	"t_deleg_name": {"Cognome nome deleg.", "Delegate's name"},
	"t_deleg_cf":   {"Cod. fiscale deleg.", "Delegate's CF"},
	"t_doc_number": {"Numero documento", "Document number"},
	"t_email":      {"Indirizzo e-mail", "E-mail address"},
	"t_cf":         {"Codice fiscale TS", "Card's codice fisc."},
	// The text entry's hint row (flows/identify.go): what 0 and 1 type,
	// A and B moving the cursor; while a key is cycled, its letters.
	"hint_name":               {"0=spazio 1=' - A< B>", "0=space 1=' - A< B>"},
	"hint_upper":              {"2=ABC2...  A< B>", "2=ABC2...  A< B>"},
	"hint_email":              {"1=.@-_1 A< B>", "1=.@-_1 A< B>"},
	"hint_next":               {"C=avanti", "C=next"},
	"direct":                  {"Diretta", "In person"},
	"deleg_potesta_parentale": {"Genitore", "Parent"},
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
	return fill(l.Screen(key), args)
}

// fill fills the %-verbs of rows, in row order, from args.
func fill(rows []string, args []any) []string {
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
