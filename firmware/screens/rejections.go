package screens

// The CMS's refusals as the citizen reads them: the hub sends a code
// (cms.Code*) with an Italian message for logs; the panel and the receipt
// say the catalogue's text for the code, in the session's language. A code
// the catalogue does not know reads as "reject_unknown", never as itself.
// A test checks every code cms declares is here.
var rejections = map[string]text{
	"BAD_PAYLOAD":  {"Dati dell'operazione non validi: rivolgersi allo sportello.", "The request's data are not valid: please go to the counter."},
	"UNKNOWN_KIND": {"Operazione non disponibile: rivolgersi allo sportello.", "This request is not available: please go to the counter."},
	"CARD_UNKNOWN": {"Tessera non presente nell'archivio: rivolgersi allo sportello Scelta e Revoca.",
		"The card is not on record: please go to the Scelta e Revoca desk."},
	"CARD_MISMATCH": {"I dati della tessera non corrispondono all'archivio: rivolgersi allo sportello Scelta e Revoca.",
		"The card's data do not match the records: please go to the Scelta e Revoca desk."},
	"CARD_REVOKED":    {"La tessera è revocata.", "The card has been revoked."},
	"CARD_EXPIRED":    {"La tessera è scaduta.", "The card has expired."},
	"POLICY_MISMATCH": {"I consensi non seguono le regole in vigore: ripetere l'operazione.", "The consents do not follow the rules in force: please do it again."},
	"OP_EXPIRED":      {"Operazione scaduta prima dell'invio: ripeterla.", "The request expired before it could be sent: please do it again."},
	"SEQ_REUSED":      {"Operazione non valida: rivolgersi allo sportello.", "The request is not valid: please go to the counter."},
	"OP_VOID":         {"Operazione annullata dal totem: dati non leggibili. Ripeterla.", "The totem could not send this request: please do it again."},
	"ASSISTED_ONLY":   {"Si fa solo allo sportello, con un operatore.", "This is done only at the counter, with an operator."},
	"OPERATOR_INVALID": {"Carta operatore non valida per questa operazione.",
		"The operator card is not valid for this request."},
	"CARD_NOT_ACTIVE": {"La tessera non è ancora attiva: si attiva allo sportello.", "The card is not active yet: it is activated at the counter."},
	"CARD_ALREADY_ACTIVE": {"La tessera è già attiva: per avere di nuovo i codici usare Ristampa PIN/PUK.",
		"The card is already active: to get the codes again use Reprint PIN/PUK."},
	"DELEGATION_INVALID": {"Delega non valida: controllare tipo, nome e codice fiscale del delegato.",
		"The delegation is not valid: check the delegate's kind, name and codice fiscale."},
	"DECLARATION_MISSING": {"Stampare la dichiarazione sostitutiva, farla firmare e conservarla.",
		"Print the declaration, have it signed and keep it."},
	"DOCUMENT_INVALID": {"Documento di identità mancante o non valido.", "The identity document is missing or not valid."},
	"CONTACT_INVALID": {"Nessun recapito valido per la seconda parte dei codici: rivolgersi allo sportello.",
		"No valid contact for the second halves of the codes: please go to the counter."},
	"PRIVACY_MISSING": {"Serve la presa visione dell'informativa sul trattamento dei dati.",
		"The privacy notice must be read first."},
	"REASON_INVALID": {"Indicare il motivo.", "Please give the reason."},
	"TEAM_INVALID": {"Codice TEAM non valido: sono le 20 cifre sul retro della tessera.",
		"The TEAM code is not valid: it is the 20 digits on the back of the card."},
	"CIP_WRONG": {"CIP errato: controllare le 8 cifre del modulo di attivazione. Dopo troppi errori la revoca si chiede allo sportello.",
		"Wrong CIP: check the 8 digits on the activation form. After too many errors, ask for the revocation at the counter."},
	"CIP_BLOCKED": {"Troppi CIP errati: la revoca si chiede allo sportello, con un documento di identità.",
		"Too many wrong CIPs: ask for the revocation at the counter, with an identity document."},
	"PAYMENT_INVALID": {"Ricevuta di pagamento non valida: controllare il numero.", "The payment receipt is not valid: check its number."},
	"PAYMENT_REUSED": {"Questa ricevuta di pagamento è già stata usata per un lettore.",
		"This payment receipt has already been used for a reader."},
	"PIN_DATA": {"L'operazione conteneva dati riservati e non è stata registrata.", "The request held confidential data and was not recorded."},
	"SUSPENSION_NOT_ALLOWED": {"Le tessere non si possono più sospendere: per bloccarla usare la revoca.",
		"Cards can no longer be suspended: to block one, revoke it."},
	"REACTIVATION_NOT_ALLOWED": {"Le tessere non si possono più riattivare: serve una nuova tessera, allo sportello.",
		"Cards can no longer be reactivated: a new card is asked for at the counter."},
	"REISSUE_NOT_ENABLED": {"La nuova tessera si chiede solo agli sportelli abilitati.", "A new card can be asked for only at an enabled counter."},
	"REISSUE_REQUESTER": {"La nuova tessera la chiede solo il titolare, il genitore o il tutore.",
		"Only the holder, a parent or a guardian can ask for a new card."},
	"REISSUE_PENDING": {"Per questa tessera una nuova tessera è già stata richiesta.", "A new card has already been asked for in place of this one."},
	"DATA_REPORTED": {"I dati anagrafici si correggono allo sportello Scelta e Revoca della propria ASL: lì la tessera viene ritirata e la nuova arriva a casa.",
		"Personal data are corrected at the Scelta e Revoca desk of your ASL: the card is withdrawn there and the new one is sent to your home."},
	"REF_UNKNOWN":     {"Operazione originale non trovata.", "The original request was not found."},
	"NOT_CORRECTABLE": {"Questa operazione non si può correggere.", "This request cannot be corrected."},
	"NOT_CANCELLABLE": {"Questa operazione non si può annullare.", "This request cannot be cancelled."},
	"REF_NOT_ACCEPTED": {"L'operazione originale era stata respinta: non c'è nulla da annullare.",
		"The original request was refused: there is nothing to cancel."},
	"REF_SUPERSEDED": {"L'operazione originale è già stata annullata o superata da una successiva.",
		"The original request was already cancelled or replaced by a later one."},
	"REF_CARD_CHANGED": {"La correzione deve riguardare la stessa tessera.", "The correction must concern the same card."},
	"REF_PROTOCOL":     {"Il numero di protocollo non è quello dell'operazione originale.", "The reference number is not the original request's."},
	"NOT_REFUNDABLE":   {"Si rimborsa solo il costo di una richiesta lettore.", "Only a card reader request's fee is refunded."},
	"REF_NOT_CANCELLED": {"Annullare prima la richiesta lettore: si rimborsa solo una richiesta annullata.",
		"Cancel the card reader request first: only a cancelled request is refunded."},
	"REFUND_DONE":   {"Il costo di questo lettore è già stato rimborsato.", "This card reader's fee was already refunded."},
	"REFUND_AMOUNT": {"Si rimborsa solo il costo del lettore, 4,20 €.", "Only the card reader's fee, 4.20 €, is refunded."},
}

// rejectUnknown is what a code the catalogue does not know reads as.
var rejectUnknown = text{"Operazione non accolta: rivolgersi allo sportello.", "The request was not accepted: please go to the counter."}

// Rejection is the text, in l, of the CMS's refusal code.
func (l Lang) Rejection(code string) string {
	if t, ok := rejections[code]; ok {
		return t[l]
	}
	return rejectUnknown[l]
}
