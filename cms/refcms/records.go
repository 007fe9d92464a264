package refcms

import (
	"context"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
)

// event appends an accepted operation to the history of the card serial.
func event(c *opCtx, serial, kind, channel, detail string) error {
	return c.tx.AppendHistory(serial, cms.HistoryEvent{At: c.now(), Kind: kind,
		Protocol: c.protocol, Channel: channel, Detail: detail})
}

// History returns the accepted operations on the card serial, oldest first.
func (s *Store) History(serial string) ([]cms.HistoryEvent, error) {
	var out []cms.HistoryEvent
	err := s.st.View(context.Background(), func(r cmsstore.Reader) (err error) {
		out, err = r.History(serial)
		return err
	})
	return out, err
}

func notify(c *opCtx, card *cms.Card, kind string, k codes) error {
	pin, puk := k.pin[cms.PINDigits/2:], k.puk[cms.PUKDigits/2:]
	return c.tx.AppendNotification(Notification{At: c.now(), Serial: card.Serial, Kind: kind,
		Channel: card.Contact.Channel, To: card.Contact.Address, PINSecondHalf: pin, PUKSecondHalf: puk,
		Text: "Tessera Sanitaria: seconda parte del PIN " + pin + ", del PUK " + puk +
			". Completano la prima parte stampata sul modulo ricevuto.",
		OpID: c.op.ID, Protocol: c.protocol})
}

// Notifications returns the notifications recorded for the card serial, or
// all of them when serial is "", oldest first.
func (s *Store) Notifications(serial string) ([]Notification, error) {
	var out []Notification
	err := s.st.View(context.Background(), func(r cmsstore.Reader) (err error) {
		out, err = r.Notifications(serial)
		return err
	})
	return out, err
}

// reissue records a reissue request for card; an open one is kept.
func reissue(c *opCtx, card *cms.Card, source, reason string) (ReissueRecord, error) {
	if r, err := c.tx.Reissue(card.Serial); err != nil || r != nil {
		if err != nil {
			return ReissueRecord{}, err
		}
		return *r, nil
	}
	r := ReissueRecord{ID: c.protocol, Serial: card.Serial, Source: source, Reason: reason, OpID: c.op.ID, At: c.now()}
	return r, c.tx.PutReissue(r)
}

// Reissue returns the reissue request of the card serial.
func (s *Store) Reissue(serial string) (ReissueRecord, error) {
	var r *ReissueRecord
	err := s.st.View(context.Background(), func(rd cmsstore.Reader) (err error) {
		r, err = rd.Reissue(serial)
		return err
	})
	if err == nil && r == nil {
		err = cms.ErrNotFound
	}
	if err != nil {
		return ReissueRecord{}, err
	}
	return *r, nil
}

// CIPFailures returns how many wrong CIPs in a row the card serial took.
func (s *Store) CIPFailures(serial string) (int, error) {
	var n int
	err := s.st.View(context.Background(), func(r cmsstore.Reader) (err error) {
		n, err = r.CIPFailures(serial)
		return err
	})
	return n, err
}
