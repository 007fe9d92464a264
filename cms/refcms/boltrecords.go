package refcms

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// boltTx is the CMS's records in a bbolt transaction (cmsstore.Tx).
type boltTx struct{ tx *bolt.Tx }

var _ cmsstore.Tx = boltTx{}

// getJSON decodes the value of k in bucket b into v; false when absent.
func getJSON(b *bolt.Bucket, k []byte, v any, what string) (bool, error) {
	data := b.Get(k)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s %s: %w", what, k, err)
	}
	return true, nil
}

// getRecord is getJSON into a new T: nil when k is absent.
func getRecord[T any](b *bolt.Bucket, k []byte, what string) (*T, error) {
	var v T
	if ok, err := getJSON(b, k, &v, what); !ok || err != nil {
		return nil, err
	}
	return &v, nil
}

func getCard(tx *bolt.Tx, serial string) (*cms.Card, error) {
	return getRecord[cms.Card](tx.Bucket(bCards), []byte(serial), "card")
}

func (t boltTx) Card(serial string) (*cms.Card, error) { return getCard(t.tx, serial) }

// eachCard calls fn with the cards, in order of serial, until it says stop.
func (t boltTx) eachCard(fn func(k []byte, c *cms.Card) (stop bool)) error {
	c := t.tx.Bucket(bCards).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var card cms.Card
		if err := json.Unmarshal(v, &card); err != nil {
			return fmt.Errorf("card %s: %w", k, err)
		}
		if fn(k, &card) {
			return nil
		}
	}
	return nil
}

func (t boltTx) CardByTEAM(team string) (*cms.Card, error) {
	var found *cms.Card
	c := t.tx.Bucket(bCards).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if cms.TEAM(string(k)) != team {
			continue
		}
		var card cms.Card
		if err := json.Unmarshal(v, &card); err != nil {
			return nil, fmt.Errorf("card %s: %w", k, err)
		}
		found = &card
		break
	}
	return found, nil
}

func (t boltTx) CardsOf(cf string) ([]cms.Card, error) {
	var out []cms.Card
	err := t.eachCard(func(_ []byte, c *cms.Card) bool {
		if c.CF == cf {
			out = append(out, *c)
		}
		return false
	})
	return out, err
}

func (t boltTx) Consent(serial string) (*ConsentRecord, error) {
	return getRecord[ConsentRecord](t.tx.Bucket(bConsents), []byte(serial), "consents")
}

func (t boltTx) PreviousConsent(serial string) (*ConsentRecord, error) {
	var prev ConsentRecord
	if ok, err := getJSON(t.tx.Bucket(bConsentsPrev), []byte(serial), &prev, "previous consents"); !ok || err != nil {
		return nil, err
	}
	prev.Previous = nil
	return &prev, nil
}

func (t boltTx) ConsentOf(ref, protocol string) (string, *ConsentRecord, error) {
	return findByOp(t.tx.Bucket(bConsents), "consents", func(r *ConsentRecord) bool {
		return r.OpID == ref && r.Protocol == protocol
	})
}

// findByOp returns the first record of bucket b, in order of key, that
// match accepts, with its key (a scan: variations are rare).
func findByOp[T any](b *bolt.Bucket, what string, match func(*T) bool) (string, *T, error) {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", what, k, err)
		}
		if match(&r) {
			return string(k), &r, nil
		}
	}
	return "", nil, nil
}

func historyKey(serial string, n uint64) []byte {
	return append(append([]byte(serial), 0), be(n)...)
}

func (t boltTx) History(serial string) ([]cms.HistoryEvent, error) {
	var out []cms.HistoryEvent
	prefix := append([]byte(serial), 0)
	cur := t.tx.Bucket(bHistory).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		var e cms.HistoryEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("history %s: %w", serial, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (t boltTx) Notifications(serial string) ([]Notification, error) {
	return listJSON(t.tx.Bucket(bNotify), func(n *Notification) bool { return serial == "" || n.Serial == serial })
}

func (t boltTx) Payment(ref string) (*PaymentRecord, error) {
	return getRecord[PaymentRecord](t.tx.Bucket(bPayments), []byte(ref), "payments")
}

func (t boltTx) PaymentOf(ref, protocol string) (string, *PaymentRecord, error) {
	return findByOp(t.tx.Bucket(bPayments), "payments", func(r *PaymentRecord) bool {
		return r.OpID == ref && r.Protocol == protocol
	})
}

func (t boltTx) Reissue(serial string) (*ReissueRecord, error) {
	return getRecord[ReissueRecord](t.tx.Bucket(bReissue), []byte(serial), "reissue")
}

func (t boltTx) CIPFailures(serial string) (int, error) {
	if v := t.tx.Bucket(bCIPFail).Get([]byte(serial)); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v)), nil
	}
	return 0, nil
}

func (t boltTx) FSE(cf string) (*FSERecord, error) {
	return getRecord[FSERecord](t.tx.Bucket(bFSE), []byte(cf), "fse record")
}

func (t boltTx) PendingFSE() ([]FSERecord, error) {
	return listJSON(t.tx.Bucket(bFSE), func(r *FSERecord) bool { return r.State == cms.FSEPending })
}

func (t boltTx) Tickets() ([]Ticket, error) {
	return listJSON(t.tx.Bucket(bTickets), func(*Ticket) bool { return true })
}

// listJSON decodes every value of bucket b, in key order, and returns
// those keep keeps (nil when none).
func listJSON[T any](b *bolt.Bucket, keep func(*T) bool) ([]T, error) {
	var out []T
	err := b.ForEach(func(_, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if keep(&r) {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// refundKey names a reader request: op ids are unique per totem.
func refundKey(totem, ref string) []byte { return append(append([]byte(totem), 0), ref...) }

func (t boltTx) Refund(totem, ref string) (*RefundRecord, error) {
	return getRecord[RefundRecord](t.tx.Bucket(bRefunds), refundKey(totem, ref), "refund")
}

func (t boltTx) Op(totem, id string) (opRecord, bool, error) { return getOp(t.tx, totem, id) }

func (t boltTx) Audit(fn func(AuditRecord) error) error {
	return t.tx.Bucket(bAudit).ForEach(func(k, v []byte) error {
		var r AuditRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		r.N = binary.BigEndian.Uint64(k)
		return fn(r)
	})
}

func (t boltTx) LastSeq(totem string) (uint64, error) {
	if b := t.tx.Bucket(bLedger).Get([]byte(totem)); len(b) == 8 {
		return binary.BigEndian.Uint64(b), nil
	}
	return 0, nil
}

func (t boltTx) Meta(name string) ([]byte, error) {
	return bytes.Clone(t.tx.Bucket(bMeta).Get([]byte(name))), nil
}

func (t boltTx) PutCard(c cms.Card) error { return putJSON(t.tx.Bucket(bCards), []byte(c.Serial), c) }

func (t boltTx) PushConsent(serial string, rec ConsentRecord) error {
	if b := t.tx.Bucket(bConsents).Get([]byte(serial)); b != nil {
		// Kept one level deep, for a cancellation of this consent, as
		// it is: decoding it would cost more than the whole consent.
		if err := t.tx.Bucket(bConsentsPrev).Put([]byte(serial), bytes.Clone(b)); err != nil {
			return err
		}
	}
	return putJSON(t.tx.Bucket(bConsents), []byte(serial), rec)
}

func (t boltTx) PutConsent(serial string, rec ConsentRecord) error {
	return putJSON(t.tx.Bucket(bConsents), []byte(serial), rec)
}

func (t boltTx) RestoreConsent(serial string, prev *ConsentRecord) error {
	var err error
	if bc := t.tx.Bucket(bConsents); prev == nil {
		err = bc.Delete([]byte(serial))
	} else {
		err = putJSON(bc, []byte(serial), prev)
	}
	if err != nil {
		return err
	}
	return t.tx.Bucket(bConsentsPrev).Delete([]byte(serial))
}

func (t boltTx) AppendHistory(serial string, e cms.HistoryEvent) error {
	b := t.tx.Bucket(bHistory)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	return putJSON(b, historyKey(serial, n), e)
}

func (t boltTx) AppendNotification(n Notification) error {
	b := t.tx.Bucket(bNotify)
	k, err := b.NextSequence()
	if err != nil {
		return err
	}
	return putJSON(b, be(k), n)
}

func (t boltTx) PutPayment(ref string, rec PaymentRecord) error {
	return putJSON(t.tx.Bucket(bPayments), []byte(ref), rec)
}

func (t boltTx) DeletePayment(ref string) error { return t.tx.Bucket(bPayments).Delete([]byte(ref)) }

func (t boltTx) PutReissue(r ReissueRecord) error {
	return putJSON(t.tx.Bucket(bReissue), []byte(r.Serial), r)
}

func (t boltTx) SetCIPFailures(serial string, n int) error {
	if n <= 0 {
		return t.tx.Bucket(bCIPFail).Delete([]byte(serial))
	}
	return t.tx.Bucket(bCIPFail).Put([]byte(serial), be(uint64(n)))
}

func (t boltTx) PutFSE(r FSERecord) error { return putJSON(t.tx.Bucket(bFSE), []byte(r.CF), r) }

func (t boltTx) NextTicket() (uint64, error) { return t.tx.Bucket(bTickets).NextSequence() }

func (t boltTx) PutTicket(n uint64, tk Ticket) error {
	return putJSON(t.tx.Bucket(bTickets), be(n), tk)
}

func (t boltTx) PutRefund(totem, ref string, rec RefundRecord) error {
	return putJSON(t.tx.Bucket(bRefunds), refundKey(totem, ref), rec)
}

func (t boltTx) PutMeta(name string, v []byte) error { return t.tx.Bucket(bMeta).Put([]byte(name), v) }
