package cms

import "github.com/aslcns/totem/cms/opkind"

// KindRefund gives back the reader fee of a cancelled reader request (seed
// 003: "Rimborsa"). It is an operation of its own, in sequence, with both
// outcomes and its own receipt; it references the reader request, whose
// cancellation it follows and never replaces: the cancellation reverts the
// request at the CMS, the refund says the money goes back.
const KindRefund = opkind.Refund

// Error codes of a refund.
const (
	CodeNotRefundable = "NOT_REFUNDABLE"    // the original is not a reader request
	CodeNotCancelled  = "REF_NOT_CANCELLED" // the reader request was not cancelled first
	CodeRefunded      = "REFUND_DONE"       // the fee was refunded already
	CodeRefundAmount  = "REFUND_AMOUNT"     // the amount is not the reader fee
)

// RefundRequest is the payload of a KindRefund operation: the reader
// request (Ref, by the same totem) whose fee goes back.
type RefundRequest struct {
	Ref         string `json:"ref"`                // the reader request's op id
	Protocol    string `json:"protocol,omitempty"` // its protocol number, when known
	AmountCents int    `json:"amount_cents"`       // ReaderFeeCents
	Reason      string `json:"reason,omitempty"`   // free text for the audit, no personal data
}

// RefundResult is the Data of an accepted refund.
type RefundResult struct {
	Ref          string `json:"ref"`
	Original     string `json:"original"`     // the reader request's protocol number
	Cancellation string `json:"cancellation"` // the protocol number of its cancellation
	Payment      string `json:"payment"`      // the payment receipt refunded
	AmountCents  int    `json:"amount_cents"`
}

// Check returns the refusals of a refund that its own fields give, before
// the original is looked up.
func (r *RefundRequest) Check() []Reject {
	var rs []Reject
	if r.Ref == "" || len(r.Ref) > 64 || len(r.Reason) > 200 {
		rs = append(rs, Reject{CodeBadPayload, "Dati dell'operazione non validi."})
	}
	if r.AmountCents != ReaderFeeCents {
		rs = append(rs, Reject{CodeRefundAmount, "Si rimborsa solo il costo del lettore, 4,20 €."})
	}
	return rs
}

// RefusalOfRefund returns the refusal of a refund whose original is of
// kind, accepted or not, and (for a reader request) cancelled or not and
// refunded or not; nil when the refund may go on.
func RefusalOfRefund(kind string, accepted, cancelled, refunded bool) []Reject {
	switch {
	case kind != KindReader:
		return []Reject{{CodeNotRefundable, "Si rimborsa solo il costo di una richiesta lettore."}}
	case !accepted:
		return []Reject{{CodeNotAccepted, "La richiesta lettore era stata respinta: non c'è nulla da rimborsare."}}
	case refunded:
		return []Reject{{CodeRefunded, "Il costo di questo lettore è già stato rimborsato."}}
	case !cancelled:
		return []Reject{{CodeNotCancelled, "Annullare prima la richiesta lettore: si rimborsa solo una richiesta annullata."}}
	}
	return nil
}
