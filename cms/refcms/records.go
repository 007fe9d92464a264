package refcms

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
)

// event appends an accepted operation to the history of the card serial.
func event(c *opCtx, serial, kind, channel, detail string) error {
	b := c.tx.Bucket(bHistory)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	return putJSON(b, historyKey(serial, n), cms.HistoryEvent{At: c.now(), Kind: kind,
		Protocol: c.protocol, Channel: channel, Detail: detail})
}

func historyKey(serial string, n uint64) []byte {
	return append(append([]byte(serial), 0), be(n)...)
}

func history(tx *bolt.Tx, serial string) ([]cms.HistoryEvent, error) {
	var out []cms.HistoryEvent
	prefix := append([]byte(serial), 0)
	cur := tx.Bucket(bHistory).Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		var e cms.HistoryEvent
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("history %s: %w", serial, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// History returns the accepted operations on the card serial, oldest first.
func (s *Store) History(serial string) ([]cms.HistoryEvent, error) {
	var out []cms.HistoryEvent
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		out, err = history(tx, serial)
		return err
	})
	return out, err
}

// Notification is a message the CMS would send to a holder's contact: the
// reference CMS records it in its sink instead of sending it.
type Notification struct {
	At            time.Time `json:"at"`
	Serial        string    `json:"serial"`
	Kind          string    `json:"kind"` // cms.KindActivation or cms.KindReprint
	Channel       string    `json:"channel"`
	To            string    `json:"to"`
	PINSecondHalf string    `json:"pin_second_half"`
	PUKSecondHalf string    `json:"puk_second_half"`
	Text          string    `json:"text"`
	OpID          string    `json:"op_id"`
	Protocol      string    `json:"protocol"`
}

func notify(c *opCtx, card *cms.Card, kind string, k codes) error {
	b := c.tx.Bucket(bNotify)
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	pin, puk := k.pin[cms.PINDigits/2:], k.puk[cms.PUKDigits/2:]
	return putJSON(b, be(n), Notification{At: c.now(), Serial: card.Serial, Kind: kind,
		Channel: card.Contact.Channel, To: card.Contact.Address, PINSecondHalf: pin, PUKSecondHalf: puk,
		Text: "Tessera Sanitaria: seconda parte del PIN " + pin + ", del PUK " + puk +
			". Completano la prima parte stampata sul modulo ricevuto.",
		OpID: c.op.ID, Protocol: c.protocol})
}

// Notifications returns the notifications recorded for the card serial, or
// all of them when serial is "", oldest first.
func (s *Store) Notifications(serial string) ([]Notification, error) {
	var out []Notification
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bNotify).ForEach(func(_, v []byte) error {
			var n Notification
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			if serial == "" || n.Serial == serial {
				out = append(out, n)
			}
			return nil
		})
	})
	return out, err
}

// ReissueRecord is a request for a new card, made with a revocation or on
// its own at an enabled counter.
type ReissueRecord struct {
	ID     string    `json:"id"` // the protocol number of the operation
	Serial string    `json:"serial"`
	Source string    `json:"source"` // cms.KindRevocation or cms.KindReissue
	Reason string    `json:"reason"`
	OpID   string    `json:"op_id"`
	At     time.Time `json:"at"`
}

// reissue records a reissue request for card; an open one is kept.
func reissue(c *opCtx, card *cms.Card, source, reason string) (ReissueRecord, error) {
	b := c.tx.Bucket(bReissue)
	if v := b.Get([]byte(card.Serial)); v != nil {
		var r ReissueRecord
		err := json.Unmarshal(v, &r)
		return r, err
	}
	r := ReissueRecord{ID: c.protocol, Serial: card.Serial, Source: source, Reason: reason, OpID: c.op.ID, At: c.now()}
	return r, putJSON(b, []byte(card.Serial), r)
}

// Reissue returns the reissue request of the card serial.
func (s *Store) Reissue(serial string) (ReissueRecord, error) {
	var r ReissueRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bReissue).Get([]byte(serial))
		if v == nil {
			return cms.ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// CIPFailures returns how many wrong CIPs in a row the card serial took.
func (s *Store) CIPFailures(serial string) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bCIPFail).Get([]byte(serial)); len(v) == 8 {
			n = int(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}
