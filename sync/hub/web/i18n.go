package web

import (
	_ "embed"
	"fmt"

	"github.com/aslcns/totem/internal/tomldata"
)

// The console's texts are data: i18n.toml, beside this file, compiled in
// and decoded once at start; a malformed file panics at init naming its
// line, and the package's tests load it first.

//go:embed i18n.toml
var i18nTOML []byte

const i18nFile = "sync/hub/web/i18n.toml"

// loadCatalogue decodes the console's texts file name strictly, every
// text in both languages.
func loadCatalogue(name string, b []byte) (map[string][2]string, error) {
	var d map[string]tomldata.Text
	if err := tomldata.Decode(name, b, &d); err != nil {
		return nil, err
	}
	if len(d) == 0 {
		return nil, fmt.Errorf("%s: no text", name)
	}
	return tomldata.Pairs[string, [2]string](name, "", d)
}

// The console's texts, in Italian (the default) and English: one key, both
// languages (TestCatalogue checks no key is missing in either).
var catalogue = map[string][2]string{
	"title":              {"Totem — console operativa", "Totem — ops console"},
	"nav_fleet":          {"Flotta", "Fleet"},
	"nav_alerts":         {"Allarmi", "Alerts"},
	"nav_sendlog":        {"Elenco invii", "Send log"},
	"nav_report":         {"Reportistica", "Reports"},
	"nav_tickets":        {"Ticket FSE", "FSE tickets"},
	"nav_access":         {"Accessi e credenziali", "Access and credentials"},
	"logout":             {"Esci", "Log out"},
	"login":              {"Accesso", "Log in"},
	"user":               {"Utente", "User"},
	"password":           {"Password", "Password"},
	"totp":               {"Codice dell'app di autenticazione", "Authenticator app code"},
	"login_failed":       {"Utente, password o codice errati.", "Wrong user, password or code."},
	"login_locked":       {"Troppi tentativi: riprovare più tardi.", "Too many attempts: try again later."},
	"role":               {"ruolo", "role"},
	"fleet_title":        {"Flotta dei totem", "Totem fleet"},
	"summary":            {"totem; non in linea:", "totems; offline:"},
	"with_alerts":        {"con avvisi:", "with alerts:"},
	"updated":            {"Aggiornato", "Updated"},
	"first_needs":        {"Prima i totem che richiedono un intervento.", "Totems that need a person first."},
	"filter":             {"Filtra", "Filter"},
	"f_all":              {"tutti", "all"},
	"f_offline":          {"non in linea", "offline"},
	"f_alert":            {"con avvisi", "with alerts"},
	"f_never":            {"mai visti", "never seen"},
	"search":             {"cerca", "search"},
	"col_totem":          {"Totem", "Totem"},
	"col_status":         {"Stato", "Status"},
	"col_since":          {"Da", "Since"},
	"col_alerts":         {"Avvisi", "Alerts"},
	"col_paper":          {"Carta", "Paper"},
	"col_reader":         {"Lettore", "Reader"},
	"col_queue":          {"In coda", "Queued"},
	"col_oldest":         {"Più vecchia in attesa", "Oldest pending"},
	"col_expiry":         {"Credenziali scadono", "Credentials expire"},
	"col_version":        {"Versione", "Version"},
	"col_clock":          {"Orologio", "Clock"},
	"col_lastseen":       {"Ultimo contatto", "Last seen"},
	"no_totems":          {"Nessun totem.", "No totem."},
	"online":             {"in linea", "online"},
	"offline":            {"non in linea", "offline"},
	"never_seen":         {"mai visto", "never seen"},
	"why_will":           {"connessione persa", "connection lost"},
	"why_goodbye":        {"spento", "shut down"},
	"why_silent":         {"silenzioso", "silent"},
	"yes":                {"sì", "yes"},
	"no":                 {"no", "no"},
	"synced":             {"sincronizzato", "synchronised"},
	"not_synced":         {"non sincronizzato", "not synchronised"},
	"totem_title":        {"Totem", "Totem"},
	"telemetry":          {"Telemetria", "Telemetry"},
	"devices":            {"Dispositivi", "Devices"},
	"quarantined":        {"In quarantena", "Quarantined"},
	"storage":            {"Uso dell'archivio", "Storage usage"},
	"last_op":            {"Ultima operazione", "Last operation"},
	"location":           {"Luogo", "Location"},
	"dev_ok":             {"ok", "ok"},
	"dev_paper_out":      {"carta esaurita", "out of paper"},
	"dev_cover_open":     {"coperchio aperto", "cover open"},
	"dev_not_responding": {"non risponde", "not responding"},
	"dev_fault":          {"guasto", "fault"},
	"dev_gone":           {"assente", "gone"},
	"al_offline":         {"non in linea", "offline"},
	"al_storage":         {"archivio quasi pieno", "outbox nearly full"},
	"al_quarantine":      {"quarantena", "quarantine"},
	"al_clock":           {"orologio", "clock"},
	"al_device":          {"dispositivo", "device"},
	"events":             {"Eventi recenti", "Recent events"},
	"recent":             {"Operazioni recenti (elenco invii dell'hub)", "Recent operations (hub's send log)"},
	"totem_log":          {"Elenco invii del totem e quarantena", "The totem's send log and quarantine"},
	"ask_totem":          {"Chiedi al totem", "Ask the totem"},
	"actions":            {"Azioni del tecnico", "Technician actions"},
	"act_print":          {"Stampa di prova", "Printer test"},
	"act_resend":         {"Reinvia", "Resend"},
	"act_void":           {"Annulla l'invio", "Void"},
	"act_correct":        {"Correggi", "Correct"},
	"act_cancel":         {"Revoca", "Cancel"},
	"act_resync":         {"Riallinea", "Resync"},
	"op_id":              {"Id operazione", "Operation id"},
	"consents":           {"Consensi (CODICE=1|0,…)", "Consents (CODE=1|0,…)"},
	"payment":            {"Riferimento del pagamento", "Payment reference"},
	"reason":             {"Motivo", "Reason"},
	"send":               {"Invia", "Send"},
	"not_allowed":        {"non consentita al ruolo", "not allowed to the role"},
	"result":             {"Esito", "Result"},
	"col_n":              {"N.", "No."},
	"col_at":             {"Ricevuto", "Received"},
	"col_seq":            {"Seq", "Seq"},
	"col_kind":           {"Tipo", "Kind"},
	"col_outcome":        {"Esito", "Outcome"},
	"col_codes":          {"Codici", "Codes"},
	"col_receipt":        {"Ricevuta", "Receipt"},
	"download":           {"Scarica ZIP", "Download ZIP"},
	"from":               {"Dal", "From"},
	"to":                 {"Al", "To"},
	"outcome":            {"Esito", "Outcome"},
	"older":              {"Più vecchi", "Older"},
	"no_rows":            {"Nessuna riga.", "No rows."},
	"no_data":            {"Dati non disponibili su questo hub.", "Data not available on this hub."},
	"operator":           {"Operatore", "Operator"},
	"by_day":             {"Per giorno", "By day"},
	"accepted":           {"accettate", "accepted"},
	"rejected":           {"respinte", "rejected"},
	"csv":                {"Scarica CSV", "Download CSV"},
	"chart":              {"Operazioni per giorno", "Operations per day"},
	"col_day":            {"Giorno", "Day"},
	"col_level":          {"Livello", "Level"},
	"col_ticket":         {"Ticket", "Ticket"},
	"col_opened":         {"Aperto", "Opened"},
	"col_attempts":       {"Tentativi", "Attempts"},
	"col_state":          {"Stato", "State"},
	"col_note":           {"Da fare", "To do"},
	"col_cf":             {"Assistito", "Citizen"},
	"ticket_open":        {"aperto: FSE non creato", "open: FSE not created"},
	"ticket_solved":      {"risolto: FSE creato", "solved: FSE created"},
	"ticket_retrying":    {"FSE in creazione (nuovi tentativi)", "FSE being created (retrying)"},
	"alerts_active":      {"Allarmi attivi", "Active alerts"},
	"alerts_recent":      {"Allarmi recenti (rientrati)", "Recent alerts (cleared)"},
	"col_alert":          {"Allarme", "Alert"},
	"col_cleared":        {"Rientrato", "Cleared"},
	"no_alerts":          {"Nessun allarme.", "No alert."},
	"a_offline":          {"non in linea da più di 10 minuti", "offline for more than 10 minutes"},
	"a_paper":            {"carta esaurita", "out of paper"},
	"a_reader":           {"lettore guasto", "reader fault"},
	"a_pending":          {"operazione in attesa da più di un'ora", "operation pending for over an hour"},
	"a_storage":          {"archivio quasi pieno", "outbox nearly full"},
	"a_quarantine":       {"voci in quarantena", "quarantined entries"},
	"a_clock":            {"orologio non sincronizzato", "clock not synchronised"},
	"a_expiry":           {"credenziali in scadenza entro 14 giorni", "credentials expire within 14 days"},
	"a_locked":           {"credenziali bloccate", "credentials locked"},
	"a_device":           {"dispositivo non funzionante", "device fault"},
	"credentials":        {"Credenziali dei totem", "Totems' credentials"},
	"col_user":           {"Utente", "User"},
	"col_expires":        {"Scade", "Expires"},
	"col_rotate":         {"Rinnovo in corso", "Rotation pending"},
	"col_locked":         {"Bloccato", "Locked"},
	"locked_since":       {"dal", "since"},
	"locked_from":        {"da", "from"},
	"col_cred_events":    {"Eventi dall'avvio dell'hub", "Events since the hub started"},
	"cev_enrolled":       {"attivazioni", "enrolled"},
	"cev_rotated":        {"rinnovi", "rotated"},
	"cev_expired":        {"scadute", "expired"},
	"cev_failed":         {"accessi errati", "failed"},
	"cev_locked":         {"blocchi", "locked"},
	"cev_unlocked":       {"sblocchi", "unlocked"},
	"unlock":             {"Sblocca", "Unlock"},
	"enroll":             {"Codice di attivazione", "Enrollment code"},
	"enroll_issue":       {"Genera", "Issue"},
	"ops_accounts":       {"Account della console bloccati", "Console accounts locked"},
	"until":              {"fino a", "until"},
	"none":               {"Nessuno.", "None."},
	"lang_other":         {"English", "Italiano"},
	"bundle_missing":     {"Il pacchetto ricevuta non è disponibile su questo hub.", "The receipt bundle is not available on this hub."},
}

// langs are the console's languages, by their index in catalogue.
var langs = map[string]int{"it": 0, "en": 1}

// texts returns the catalogue in lang (Italian for any other).
func texts(lang string) map[string]string {
	i := langs[lang]
	out := make(map[string]string, len(catalogue))
	for k, v := range catalogue {
		out[k] = v[i]
	}
	return out
}

// textsByLang is built once: a page is rendered without a map per request.
var textsByLang = map[string]map[string]string{"it": texts("it"), "en": texts("en")}
