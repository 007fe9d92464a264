package hub

import (
	"errors"
	"log/slog"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// resync is the resynchronisation side of the hub: it answers a totem's
// sync requests with its ledger or a card's state.
type resync struct {
	h    *Hub
	pool pool     // ledger requests being answered
	gate syncGate // a totem's sync requests, rate limited
}

// ledger answers a totem's resynchronisation request with the hub's
// record of its operations, on the totem's own ledger topic.
func (rs *resync) ledger(p *paho.Publish) {
	h := rs.h
	totem, _, _ := protocol.ParseTopic(p.Topic)
	req, err := protocol.DecodeLedgerRequest(p.Payload)
	if err != nil {
		h.stats.Malformed.Add(1)
		h.limited(slog.LevelWarn, "sync/"+totem, "ledger request dropped", "totem", totem, "err", err)
		return
	}
	l := protocol.Ledger{V: protocol.Version, ID: req.ID, Totem: totem, Results: []protocol.Result{}}
	if req.Card != "" {
		l.CardState, l.Error = rs.cardState(req.Card)
		rs.publishLedger(totem, l)
		return
	}
	if sl, err := sendLogger(h.o.Backend); err != nil {
		l.Error = err.Error()
	} else if last, entries, err := sl.Ledger(totem, req.From, req.Max); err != nil {
		h.log.Error("ledger", "totem", totem, "err", err)
		l.Error = "ledger unavailable"
	} else {
		l.LastSeq = last
		for _, e := range entries {
			res := protocol.Result{V: protocol.Version, OpID: e.OpID, Seq: e.Seq}
			fill(&res, e.Outcome)
			// What an online operation brought back (PIN halves…) served
			// its session: a resynchronisation needs the outcomes only.
			res.Duplicate, res.Data = false, nil
			l.Results = append(l.Results, res)
		}
	}
	h.limited(slog.LevelInfo, "ledger/"+totem, "ledger sent", "totem", totem, "from", req.From, "results", len(l.Results))
	rs.publishLedger(totem, l)
}

// cardStore is the optional capability of a backend that answers a card's
// state (refcms.Store has it).
type cardStore interface {
	Card(serial string) (cms.Card, error)
}

// cardState is the CMS's state of the card with serial, for a flow that
// checks it before asking for everything (protocol.LedgerRequest.Card).
func (rs *resync) cardState(serial string) (state, errText string) {
	h := rs.h
	cs, ok := h.o.Backend.(cardStore)
	if !ok {
		return "", "this CMS backend does not answer card states"
	}
	c, err := cs.Card(serial)
	switch {
	case errors.Is(err, cms.ErrNotFound):
		return protocol.CardUnknown, ""
	case err != nil:
		h.log.Error("card state", "err", err)
		return "", "card state unavailable"
	}
	return string(c.State), ""
}

// publishLedger sends l on the totem's ledger topic.
func (rs *resync) publishLedger(totem string, l protocol.Ledger) {
	h := rs.h
	b, _ := protocol.Marshal(l)
	if err := h.publish(&paho.Publish{Topic: protocol.Topic(totem, protocol.LeafLedger), QoS: 1, Payload: b}); err != nil {
		h.log.Warn("ledger not sent", "totem", totem, "err", err)
	}
}

// sendLogger is b's send log, for the sendlog commands and the ledger.
func sendLogger(b cms.Backend) (cms.SendLogger, error) {
	sl, ok := b.(cms.SendLogger)
	if !ok {
		return nil, errors.New("this CMS backend has no send log")
	}
	return sl, nil
}
