package refcms

import (
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
	return read(s, func(r cmsstore.Reader) ([]cms.HistoryEvent, error) { return r.History(serial) })
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
	return read(s, func(r cmsstore.Reader) ([]Notification, error) { return r.Notifications(serial) })
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
	return lookup(s, func(r cmsstore.Reader) (*ReissueRecord, error) { return r.Reissue(serial) })
}

// CIPFailures returns how many wrong CIPs in a row the card serial took.
func (s *Store) CIPFailures(serial string) (int, error) {
	return read(s, func(r cmsstore.Reader) (int, error) { return r.CIPFailures(serial) })
}
