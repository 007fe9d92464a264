// Package opkind declares every kind of operation a totem sends, once: its
// name on the wire and the rules both sides share (online-only or
// queueable, whether a technician may correct or cancel it, whether a
// totem flow originates it). Each side registers its own pieces against
// these names — the CMS its validation and apply (cms/refcms), the
// firmware its flow and receipt — and each side has a test that fails when
// a declared kind lacks one of them, so a kind half added is caught by a
// test rather than by a receipt titled "Operazione x" or an UNKNOWN_KIND at
// the hub.
//
// It sits under cms, which the firmware and the hub both import, and it
// imports nothing but the standard library.
//
// # Adding a kind
//
// A newcomer writes at most six files, and a test fails while any piece
// is missing:
//
//  1. cms/<kind>.go: the name (const KindX), its declaration
//     (opkind.Register in an init: online or queued, correctable,
//     cancellable, flow or receipt) and its payload types, shared by the
//     totem and the CMS (a request about a card embeds cms.Attendance:
//     channel, operator and the document checked at a counter). Adding
//     the name to the list below instead is the same declaration.
//  2. cms/refcms/<kind>.go: validation and apply, registered with
//     appliers[KindX] in an init (cardRule, when the request's
//     Validate(card, now) is all its check) — TestEveryKindApplies.
//  3. firmware/flows/<kind>.go: the flow (ask, Submit, Finish with its
//     receipt lines).
//  4. firmware/kinds.go: registerKind with the receipt title in Italian
//     and English and the flow, and its key on a menu —
//     TestEveryFlowKindIsComplete.
//  5. firmware/screens/catalogue.toml: its screens and texts in Italian
//     and English, as data (none if it shows only existing ones) — the
//     catalogue's tests check they fit the 20x4 display.
//  6. firmware/receipt_test.go: a golden receipt under its title, whose
//     testdata/receipt-<name>-*.golden files are written by
//     go test ./firmware -run TestReceiptGolden -update (generated,
//     reviewed as a diff) — TestReceiptGolden, TestEveryFlowKindIsComplete.
//
// The fixtures show it: firmware/kind_fixture_test.go is items 1, 3, 4 and
// 6 in one file (it reuses the catalogue's texts) plus its four generated
// goldens, cms/refcms/kinds_test.go items 1 and 2.
package opkind

import (
	"fmt"
	"sort"
	"sync"
)

// The operation kinds: the value of Op.Kind on the wire.
const (
	Consent      = "consent"      // Consensi FSE: ConsentRequest
	Activation   = "activation"   // Attivazione: ActivationRequest → ActivationResult
	Reprint      = "reprint"      // Ristampa PIN/PUK: ReprintRequest → ReprintResult
	Revocation   = "revocation"   // Revoca: RevocationRequest → RevocationResult
	Reader       = "reader"       // Richiesta lettore: ReaderRequest → ReaderResult
	History      = "history"      // Storico: HistoryRequest → HistoryResult
	PINChange    = "pin_change"   // Cambio PIN on the chip: PINEvent
	PINUnblock   = "pin_unblock"  // Sblocco PIN con PUK on the chip: PINEvent
	Suspension   = "suspension"   // Sospensione: always refused
	Reactivation = "reactivation" // Riattivazione: always refused
	Reissue      = "reissue"      // Riemissione: ReissueRequest → ReissueResult
	WrongData    = "wrong_data"   // Dati errati: WrongDataReport → WrongDataResult
	// CardLookup is the operator's second identity check (seed 002, step 5):
	// the CMS's record of a card, read before confirming, to compare
	// with the identity document. LookupRequest → LookupResult.
	CardLookup = "lookup"
	// Void settles a sequence number whose operation the totem can never
	// send (corrupt or unreadable record, shed telemetry): payload
	// {"reason":"…"}, always rejected with CodeVoid, nothing else changes.
	Void = "void"
	// The technician's variations of an operation already sent (seed 003:
	// "Aggiorna" and "Cancella"), each a new operation in sequence that
	// references the original.
	Correction   = "correction"   // CorrectionRequest: the original's effect, with corrected data
	Cancellation = "cancellation" // CancellationRequest: the original's effect reverted
	// Refund gives back the 4,20 € reader fee of a reader request that was
	// cancelled (seed 003: "Rimborsa"): a new operation in sequence that
	// references the reader request, distinct from its cancellation.
	Refund = "refund" // RefundRequest → RefundResult
	// Audit carries one action of a person at the totem (an operator's
	// session, a console command, a technician's maintenance) to the
	// hub's audit (sync/audit) through the outbox: in sequence, exactly
	// once, surviving offline periods. The CMS accepts it and changes
	// nothing; the hub appends it to the audit before it answers.
	Audit = "audit"
)

// Kind is the declaration of one operation kind.
type Kind struct {
	Name string
	// Online: the totem needs the CMS's answer before it can go on, so
	// the operation is sent at once and never queued for later.
	Online bool
	// Correctable and Cancellable: a technician's correction or
	// cancellation applies to operations of this kind (the consents, a
	// mistyped payment reference). An activation, a revocation or a
	// reprint has produced codes, letters or a new card: it cannot be
	// redone on paper.
	Correctable, Cancellable bool
	// Flow: a totem flow originates it and prints its receipt, so the
	// firmware must register a flow, a receipt title and a golden
	// receipt for it. Kinds without a flow are sent by the technician's
	// console, by a counter, or settled by the totem itself (void).
	Flow bool
	// Receipt: no totem flow originates it, yet the totem prints a
	// receipt for it (a console action whose paper the citizen takes to
	// the cashier: the refund), so the firmware must register a receipt
	// title and a golden receipt for it.
	Receipt bool
}

var declared = []Kind{
	{Name: Consent, Correctable: true, Cancellable: true, Flow: true},
	{Name: Activation, Online: true, Flow: true},
	{Name: Reprint, Online: true, Flow: true},
	{Name: Revocation, Online: true, Flow: true},
	{Name: Reader, Correctable: true, Cancellable: true, Flow: true},
	{Name: History, Online: true, Flow: true},
	{Name: PINChange, Flow: true},
	{Name: PINUnblock, Flow: true},
	{Name: Suspension},
	{Name: Reactivation},
	{Name: Reissue, Online: true, Flow: true},
	{Name: WrongData, Flow: true},
	{Name: CardLookup, Online: true},
	{Name: Void},
	{Name: Correction},
	{Name: Cancellation},
	{Name: Refund, Receipt: true},
	{Name: Audit},
}

var (
	mu    sync.RWMutex
	kinds = map[string]Kind{}
)

func init() {
	for _, k := range declared {
		Register(k)
	}
}

// Register declares a kind. It panics on an empty or repeated name, like
// http.Handle: a kind is declared once, at init. The package's own kinds
// are registered by its init; tests register fixtures.
func Register(k Kind) {
	mu.Lock()
	defer mu.Unlock()
	if k.Name == "" {
		panic("opkind: kind without a name")
	}
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("opkind: %q declared twice", k.Name))
	}
	kinds[k.Name] = k
}

// Lookup returns the declaration of the kind named name.
func Lookup(name string) (Kind, bool) {
	mu.RLock()
	defer mu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// All returns every declared kind, by name.
func All() []Kind {
	mu.RLock()
	defer mu.RUnlock()
	all := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		all = append(all, k)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Online reports whether an operation of kind needs the CMS's answer before
// the totem can go on (it is not queued for later). Unknown kinds are not.
func Online(name string) bool {
	k, _ := Lookup(name)
	return k.Online
}
