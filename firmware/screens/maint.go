package screens

// Maintenance mode (firmware/maintenance.go): what a field technician sees
// at the panel. Nothing here shows a citizen's data. Merged into screens
// and texts at init.
var maintScreens = map[string]screen{
	// The door: the technician's number, then the TOTP of their app, or
	// the hub's one-time unlock code while the clock is not synchronised.
	"maint_id": {keys: digits + "#*D", rows: [2][]string{{"Manutenzione", "Numero tecnico:", "%s", "#=OK *=Cancella"},
		{"Maintenance", "Technician number:", "%s", "#=OK *=Delete D=Exit"}}},
	"maint_totp": {keys: digits + "#*D", rows: [2][]string{{"Tecnico %s", "Codice dell'app:", "%s", "#=OK *=Cancella"},
		{"Technician %s", "Code from the app:", "%s", "#=OK *=Delete D=Exit"}}},
	"maint_unlock": {keys: digits + "#*D", rows: [2][]string{{"Orologio non sincr.:", "codice di sblocco", "%s", "#=OK *=Cancella"},
		{"Clock not in sync:", "unlock code", "%s", "#=OK *=Delete D=Exit"}}},
	"maint_refused": {keys: "#*D", rows: [2][]string{{"Numero o codice", "non valido.", "Restano %d tentativi", "#=Riprova D=Esci"},
		{"Number or code not", "valid.", "%d tries left", "#=Retry D=Exit"}}},
	"maint_reused": {keys: "#*D", rows: [2][]string{{"Codice già usato:", "attendere il codice", "successivo", "#=Riprova D=Esci"},
		{"Code already used:", "wait for the next", "one", "#=Retry D=Exit"}}},
	"maint_expired": {keys: "#*D", rows: [2][]string{{"Codice scaduto:", "chiederne un altro", "con totemctl", "#=Riprova D=Esci"},
		{"Code expired: ask", "totemctl for a new", "one", "#=Retry D=Exit"}}},
	"maint_noset": {keys: "*D", rows: [2][]string{{"Manutenzione non", "disponibile: nessun", "tecnico registrato", "*=Indietro D=Esci"},
		{"Maintenance not", "available: no", "technician enrolled", "*=Back D=Exit"}}},
	"maint_locked": {rows: [2][]string{{"Manutenzione", "bloccata: troppi", "tentativi. Riprovare", "tra %d minuti"},
		{"Maintenance locked:", "too many attempts.", "Try again in", "%d minutes"}}},
	"maint_closed": {rows: [2][]string{{"Manutenzione", "terminata", "", ""},
		{"Maintenance", "ended", "", ""}}},
	// The menu, three pages as the citizen's: # turns, * back, every
	// function key works from every page; D leaves maintenance.
	"maint_menu": {keys: "1234567#*D", rows: [2][]string{{"1/3 #=Avanti D=Esci", "1 Stampante", "2 Lettore tessere", "3 Rete e orologio"},
		{"1/3 #=Next D=Exit", "1 Printer", "2 Card reader", "3 Network and clock"}}},
	"maint_menu_2": {keys: "1234567#*D", rows: [2][]string{{"#=Avanti *=Indietro", "4 Coda e invii", "5 Codice iscrizione", "6 Test credenziali"},
		{"2/3 #=Next *=Back", "4 Queue and sends", "5 Enrollment code", "6 Credentials test"}}},
	"maint_menu_3": {keys: "1234567#*D", rows: [2][]string{{"#=Inizio *=Indietro", "7 Versione software", "", "D=Esci"},
		{"3/3 #=Start *=Back", "7 Software version", "", "D=Exit"}}},
	// 1 Printer: its condition and the paper, and a test page.
	"maint_printer": {keys: "1*D", rows: [2][]string{{"Stampante:", "%s", "Carta: %s", "1=Prova *=Indietro"},
		{"Printer:", "%s", "Paper: %s", "1=Test *=Back D=Exit"}}},
	"maint_printing": {rows: [2][]string{{"Stampa della pagina", "di prova...", "", ""},
		{"Printing the test", "page...", "", ""}}},
	"maint_printed": {keys: "#*D", rows: [2][]string{{"Pagina di prova", "stampata.", "", "#=OK D=Esci"},
		{"Test page printed.", "", "", "#=OK D=Exit"}}},
	"maint_print_failed": {keys: "#*D", rows: [2][]string{{"Pagina di prova non", "stampata:", "%s", "#=OK D=Esci"},
		{"Test page not", "printed:", "%s", "#=OK D=Exit"}}},
	// 2 Card reader: any card; its class and ATR only, read from the
	// connection, nothing from the chip's files.
	"maint_card": {keys: "*D", rows: [2][]string{{"Prova lettore:", "inserire una carta", "qualsiasi", "*=Indietro D=Esci"},
		{"Reader test: insert", "any card", "", "*=Back D=Exit"}}},
	"maint_card_info": {keys: "*D", rows: [2][]string{{"Carta: %s", "%s", "%s", "*=Indietro D=Esci"},
		{"Card: %s", "%s", "%s", "*=Back D=Exit"}}},
	// 3 Network and clock, three pages.
	"maint_net": {keys: "#*D", rows: [2][]string{{"Hub: %s", "%s", "TLS: %s", "#=Avanti *=Indietro"},
		{"Hub: %s", "%s", "TLS: %s", "#=Next *=Back"}}},
	"maint_clock": {keys: "#*D", rows: [2][]string{{"Orologio:", "%s", "Scarto hub: %s", "#=Avanti *=Indietro"},
		{"Clock:", "%s", "Hub offset: %s", "#=Next *=Back"}}},
	"maint_linkerr": {keys: "#*D", rows: [2][]string{{"Ultimo errore rete:", "%s", "%s", "#=Menu *=Indietro"},
		{"Last link error:", "%s", "%s", "#=Menu *=Back"}}},
	// 4 Queue and send log: counts only, and the resend of what is stuck
	// in quarantine.
	"maint_queue": {keys: "1#*D", rows: [2][]string{{"In coda: %d", "Quarantena: %d", "Più vecchia: %s", "1=Reinvia #=Avanti"},
		{"Queued: %d", "Quarantined: %d", "Oldest: %s", "1=Resend #=Next"}}},
	"maint_resent": {keys: "#*D", rows: [2][]string{{"Reinviate: %d", "Non reinviate: %d", "", "#=OK D=Esci"},
		{"Resent: %d", "Not resent: %d", "", "#=OK D=Exit"}}},
	"maint_sendlog": {keys: "#*D", rows: [2][]string{{"Ultimi %d: %d ok", "respinti: %d", "in attesa: %d", "#=Menu *=Indietro"},
		{"Last %d: %d ok", "rejected: %d", "pending: %d", "#=Menu *=Back"}}},
	// 5 Enrollment code, by multi-tap (2=ABC … 9=WXYZ, C closes a letter).
	"maint_enroll": {keys: digits + "C#*D", rows: [2][]string{{"Codice attivazione:", "%s", "C=Avanti *=Cancella", "#=OK D=Esci"},
		{"Enrollment code:", "%s", "C=Next *=Delete", "#=OK D=Exit"}}},
	"maint_enrolling": {rows: [2][]string{{"Attivazione in", "corso...", "", ""},
		{"Enrolling...", "", "", ""}}},
	"maint_enrolled": {keys: "#*D", rows: [2][]string{{"Credenziali salvate.", "Se era già collegato", "riavviare il totem.", "#=OK D=Esci"},
		{"Credentials saved.", "If it was connected,", "restart the totem.", "#=OK D=Exit"}}},
	"maint_enroll_failed": {keys: "#*D", rows: [2][]string{{"Codice non accettato", "(sbagliato, scaduto", "o già usato)", "#=Riprova D=Esci"},
		{"Code not accepted", "(wrong, expired or", "used already)", "#=Retry D=Exit"}}},
	"maint_enroll_offline": {keys: "#*D", rows: [2][]string{{"Hub non raggiunto:", "riprovare più tardi", "", "#=Riprova D=Esci"},
		{"Hub not reached:", "try again later", "", "#=Retry D=Exit"}}},
	// 6 Credentials test (Test credenziali, seed 003).
	"maint_credtest": {rows: [2][]string{{"Test credenziali...", "", "", ""},
		{"Credentials test...", "", "", ""}}},
	"maint_cred_ok": {keys: "#*D", rows: [2][]string{{"Test credenziali:", "OK", "", "#=OK D=Esci"},
		{"Credentials test:", "OK", "", "#=OK D=Exit"}}},
	"maint_cred_ko": {keys: "#*D", rows: [2][]string{{"Test credenziali: KO", "%s", "%s", "#=OK D=Esci"},
		{"Credentials test: KO", "%s", "%s", "#=OK D=Exit"}}},
	// 7 Software version.
	"maint_version": {keys: "#*D", rows: [2][]string{{"Versione software:", "%s", "Totem %s", "#=OK D=Esci"},
		{"Software version:", "%s", "Totem %s", "#=OK D=Exit"}}},
}

// maintTexts are the words the maintenance screens fill in. Those whose
// key starts with "m_two_" wrap on two rows of 20 (a test checks).
var maintTexts = map[string]text{
	"m_connected":       {"collegato", "connected"},
	"m_disconnected":    {"non collegato", "not connected"},
	"m_yes":             {"sì", "yes"},
	"m_no":              {"no", "no"},
	"m_synced":          {"sincronizzato", "synchronised"},
	"m_not_synced":      {"NON sincronizzato", "NOT synchronised"},
	"m_unknown":         {"n.d.", "n/a"},
	"m_printer_ok":      {"pronta", "ready"},
	"m_paper_ok":        {"presente", "loaded"},
	"m_paper_low":       {"quasi finita", "running low"},
	"m_paper_out":       {"esaurita", "out"},
	"m_class_cns":       {"TS-CNS", "TS-CNS"},
	"m_class_cie":       {"CIE", "CIE"},
	"m_class_nfc":       {"contactless", "contactless"},
	"m_class_unknown":   {"sconosciuta", "unknown"},
	"m_card_unread":     {"non letta", "not read"},
	"m_two_none":        {"nessun errore", "no error"},
	"m_two_network":     {"rete o hub non raggiungibili", "network or hub unreachable"},
	"m_two_tls":         {"certificato del broker rifiutato", "broker certificate refused"},
	"m_two_auth":        {"credenziali rifiutate dal broker", "credentials refused by the broker"},
	"m_two_locked":      {"credenziali bloccate (sblocco da ops)", "credentials locked (ops must unlock)"},
	"m_two_refused":     {"collegamento rifiutato dal broker", "connection refused by the broker"},
	"m_two_acl":         {"permessi dei topic errati (ACL)", "topic permissions wrong (ACL)"},
	"m_two_expired":     {"credenziali scadute", "credentials expired"},
	"m_two_nocreds":     {"credenziali assenti (codice attivaz.)", "no credentials (enrollment code)"},
	"m_two_no_answer":   {"nessuna risposta entro il tempo", "no answer in time"},
	"m_two_not_offered": {"funzione non disponibile qui", "not available here"},
}

func init() {
	for k, s := range maintScreens {
		if _, dup := screens[k]; dup {
			panic("screens: screen " + k + " declared twice")
		}
		screens[k] = s
	}
	for k, t := range maintTexts {
		if _, dup := texts[k]; dup {
			panic("screens: text " + k + " declared twice")
		}
		texts[k] = t
	}
}

// Wrap cuts s into rows of at most width runes at spaces (a word longer
// than a row is cut), for the texts a screen shows on several rows.
func Wrap(s string, width int) []string {
	var rows []string
	var cur []rune
	for _, w := range splitWords(s) {
		r := []rune(w)
		switch {
		case len(cur) == 0:
			cur = r
		case len(cur)+1+len(r) <= width:
			cur = append(append(cur, ' '), r...)
		default:
			rows = append(rows, string(cur))
			cur = r
		}
		for len(cur) > width {
			rows = append(rows, string(cur[:width]))
			cur = cur[width:]
		}
	}
	if len(cur) > 0 {
		rows = append(rows, string(cur))
	}
	return rows
}

func splitWords(s string) []string {
	var out []string
	start := -1
	for i, c := range s {
		if c == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}
