package firmware

import (
	"context"
	"errors"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/firmware/flows"
	"github.com/aslcns/totem/firmware/screens"
	"github.com/aslcns/totem/hal"
)

// Assisted mode: an ASL operator opens an operator session with the
// operator card (serial level 8 or 9) and its PIN, verified on the chip.
// The operator card then leaves the slot, and the citizens' cards go into
// it one after the other, each with the assisted menu; every operation
// records the operator's serial. The session ends when the operator logs
// out (D while the slot is empty), after OperatorTimeout with the slot
// empty and no key, or when a citizen's screen times out (nobody is there).
//
// Screen flow (every input screen has * = Back and D = Cancel):
//
//	operator card → its PIN ("PIN carta operatore") → "Rimuovere la carta operatore"
//	→ "Inserire la TS del cittadino" (1 = Revoca by TEAM code, 2 = the
//	  card not in the slot: CF, TEAM code and expiry typed, then 3-6,
//	  D = logout)
//	→ citizen card → assisted menu (two pages, # turns): 1 Attivazione,
//	  2 Revoca, 3 Consensi FSE, 4 Ristampa PIN/PUK, 5 Storico,
//	  6 Richiesta lettore, and 7 Riemissione where totem.reissue_counter
//	  is set; 3-6 are the self-service flows with the operator's
//	  identity check in place of the card's PIN
//	→ the flow → its receipts → "Rimuovere la tessera" → next citizen.

// errLogout ends an operator session with the slot empty.
var errLogout = errors.New("firmware: operator logged out")

// operatorSession runs assisted mode from an operator card in the slot.
func operatorSession(ctx context.Context, a *App, card hal.Card, info hal.CardInfo) error {
	if !cms.OperatorSerial(info.Serial) {
		a.log.Warn("operator card refused", "reason", "serial_level")
		a.Show("op_invalid")
		return errCancel
	}
	if err := a.desk.PIN(ctx, card, "op_pin"); err != nil {
		if errors.Is(err, errBack) {
			a.Show("cancelled")
			return errCancel
		}
		return err
	}
	card.Close() // the operator card is done with: the slot is for citizens now
	s := &operatorDesk{a: a, op: info.Serial}
	a.log.Info("operator session opened", "operator", maskSerial(s.op))
	s.audit("operator_login", "")
	a.operator.Store(true) // the keyboard types from now on
	defer a.operator.Store(false)
	if why, err := s.awaitOut(ctx); err != nil {
		return s.end(why, err)
	}
	return s.serve(ctx)
}

// operatorDesk is an open operator session: the App it runs on and the
// serial of the operator card, which every record names.
type operatorDesk struct {
	a  *App
	op string
}

// audit records an action of the operator in the hub's audit.
func (s *operatorDesk) audit(action, detail string) {
	s.a.audits.audit(operatorActor(s.op), action, detail)
}

// end closes the session for why and returns err.
func (s *operatorDesk) end(why string, err error) error {
	s.a.log.Info("operator session closed", "operator", maskSerial(s.op), "reason", why)
	s.audit("operator_logout", "reason="+why)
	return err
}

// awaitOut waits for the operator card to leave the slot, after the
// operator's PIN; otherwise it returns why the session ends and how.
func (s *operatorDesk) awaitOut(ctx context.Context) (string, error) {
	_, err := s.a.desk.Ask(ctx, "op_remove", maskSerial(s.op))
	switch {
	case errors.Is(err, hal.ErrCardRemoved):
		return "", nil
	case err != nil:
		return reason(err), err
	default: // * or D with the card still in
		s.a.Show("op_closed")
		return "logout", errCancel
	}
}

// serve waits on the slot's screen for the next citizen, or a key, until
// the session ends.
func (s *operatorDesk) serve(ctx context.Context) error {
	a := s.a
	probe := false // a card may have come in while a flow ran with the slot empty
	for {
		draw := func() { a.Show("op_insert", maskSerial(s.op)) }
		draw()
		k, err := s.awaitInsert(ctx, "op_insert", draw, probe)
		probe = false
		switch {
		case errors.Is(err, errIdle):
			a.Show("op_closed")
			return s.end("idle_timeout", errLogout)
		case err != nil:
			return s.end("error", err)
		case k == hal.KeyCancel || k == hal.KeyBack:
			a.Show("op_closed")
			return s.end("logout", errLogout)
		case k == '1' || k == '2':
			if err := s.withoutCard(ctx, k); err != nil {
				return err
			}
			probe = true
			continue
		}
		if err := s.nextCitizen(ctx); err != nil {
			return err
		}
	}
}

// withoutCard runs what key k of the slot's screen starts for a card that
// is not in the slot. 1: Revoca of a card that is not here (stolen, lost):
// its TEAM code typed from the citizen's documents. 2: the card's CF, TEAM
// code and expiry typed (seed 001), for the operations that need no chip.
// A non-nil error ends the session.
func (s *operatorDesk) withoutCard(ctx context.Context, k hal.Key) error {
	var err error
	if k == '1' {
		err = flows.RevocationByTEAM(ctx, s.a.desk, s.op)
		if !errors.Is(err, errBack) {
			s.audit("assisted_op", "kind="+cms.KindRevocation+" by=team_code result="+auditResult(err))
		}
	} else {
		err = s.byData(ctx)
		if !errors.Is(err, errBack) {
			s.audit("assisted_op", "by=card_data result="+auditResult(err))
		}
	}
	if errors.Is(err, errIdle) {
		s.a.Show("op_closed")
		return s.end("idle_timeout", errLogout)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !errors.Is(err, errBack) {
		s.pause(ctx)
	}
	return nil
}

// nextCitizen serves the citizen whose card came in, then waits for the
// card to leave. A non-nil error ends the session.
func (s *operatorDesk) nextCitizen(ctx context.Context) error {
	a := s.a
	err := s.citizen(ctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, hal.ErrCardRemoved):
		a.log.Info("assisted citizen done", "operator", maskSerial(s.op), "reason", "card_removed")
		return nil
	case errors.Is(err, errIdle):
		// Nobody at the totem: the operator session ends with it.
		a.Show("remove_card")
		return s.end("idle_timeout", errIdle)
	}
	a.log.Info("assisted citizen done", "operator", maskSerial(s.op), "reason", reason(err))
	if a.awaitRemoval(ctx) {
		return ctx.Err()
	}
	return nil
}

// awaitInsert waits, the slot empty, for a card (k == 0) or a key screen
// name binds. With probe, a card already in the slot counts as inserted.
// OperatorTimeout without either ends it with errIdle.
func (s *operatorDesk) awaitInsert(ctx context.Context, name string, redraw func(), probe bool) (hal.Key, error) {
	a := s.a
	if probe {
		if c, err := a.dev.Reader.Connect(ctx); err == nil {
			c.Close()
			return 0, nil
		}
	}
	// "Serve altro tempo?" before the end, as in a citizen's session
	// (issue 17): a key gives the time back.
	w := a.idleWatch(a.o.OperatorTimeout, max(a.o.OperatorTimeout-a.o.IdleWarning, a.o.OperatorTimeout/2))
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case ev := <-a.cards:
			switch ev.Kind {
			case hal.CardInserted:
				return 0, nil
			case 0:
				redraw() // the reader's state changed
			}
		case k := <-a.keys:
			if w.dismiss(redraw) {
				continue
			}
			if screens.Bound(name, k) {
				return k, nil
			}
			w.restart()
		case <-w.C:
			if err := w.fired(); err != nil {
				return 0, err
			}
		case <-a.tick:
			a.heart.alive()
		}
	}
}

// pause leaves an outcome screen up until a key, or the idle timeout.
func (s *operatorDesk) pause(ctx context.Context) {
	s.a.hold(ctx, s.a.timeouts.idle(), nil)
}

// citizen serves the citizen whose card was just inserted.
func (s *operatorDesk) citizen(ctx context.Context) error {
	a := s.a
	a.Show("reading")
	card, err := a.dev.Reader.Connect(ctx)
	if err != nil {
		return a.desk.CardError(err)
	}
	info, err := card.Info(ctx)
	card.Close() // assisted operations need no PIN: only the chip's data
	if err != nil {
		return a.desk.CardError(err)
	}
	if info.Class == hal.ClassOperator {
		a.log.Info("assisted card refused", "reason", "operator_card")
		a.Show("op_not_citizen")
		return errCancel
	}
	if !info.Expiry.IsZero() && a.clock.Now().After(info.Expiry.AddDate(0, 0, 1)) {
		return a.desk.CardError(hal.ErrCardExpired)
	}
	page2 := "op_menu_2"
	if a.o.ReissueCounter {
		page2 = "op_menu_2r" // with 7 Riemissione
	}
	return s.menu(ctx, info, "op_menu", page2)
}

// byData serves a citizen whose card is not in the slot: identified by
// the CF, TEAM code and expiry the operator types and the CMS's record,
// with the operations that need no chip (consents, reprint, history,
// reader request).
func (s *operatorDesk) byData(ctx context.Context) error {
	info, err := flows.CardByData(ctx, s.a.desk, s.op)
	if err != nil {
		return err
	}
	s.a.log.Info("assisted citizen without the card", "operator", maskSerial(s.op))
	return s.menu(ctx, info, "op_menu_nocard", "op_menu_nocard")
}

// menu is the citizen's menu in an operator session, on page (#
// turns to page2 and back), until D or * on the first page.
func (s *operatorDesk) menu(ctx context.Context, info hal.CardInfo, page1, page2 string) error {
	a, op := s.a, s.op
	page := page1
	for {
		k, err := a.desk.Ask(ctx, page, MaskCF(info.CF))
		if err != nil {
			return err
		}
		kind, isOp := opMenu[k]
		switch {
		case isOp:
			err = kindSpecs[kind].assisted(a, ctx, op, info)
			if !errors.Is(err, errBack) {
				s.audit("assisted_op", "kind="+kind+" card="+info.Serial+" citizen="+MaskCF(info.CF)+" result="+auditResult(err))
			}
		case k == hal.KeyOK: // the other page
			page = map[string]string{page1: page2, page2: page1}[page]
			continue
		case k == hal.KeyBack:
			if page != page1 {
				page = page1
				continue
			}
			fallthrough
		default: // D, or * on the first page: this citizen is done
			if page1 == "op_menu_nocard" { // no card to take out: back to the slot's screen
				return errBack
			}
			a.Show("remove_card")
			return errCancel
		}
		if err == nil && a.finished != nil {
			// The outcome offers another operation for this citizen.
			var more bool
			if more, err = a.finished.await(ctx, a); more {
				page = "op_menu"
				continue
			}
		}
		if !errors.Is(err, errBack) {
			return err
		}
	}
}
