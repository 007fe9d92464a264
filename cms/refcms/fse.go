package refcms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
)

// FSEOutcome is the result of one attempt to create a citizen's FSE.
type FSEOutcome int

// Outcomes of an FSE creation attempt.
const (
	FSEOK        FSEOutcome = iota // created
	FSECFError                     // "codice fiscale errato o mancante"
	FSETechError                   // a technical error: try again later
)

// FSESource simulates the regional FSE system: the outcome of attempt
// number attempt (from 1) to create the FSE of cf. It must be
// deterministic: the same arguments give the same outcome.
type FSESource func(cf string, attempt int) FSEOutcome

// DefaultFSE creates the FSE of every well-formed CF and answers
// "codice fiscale errato o mancante" for the others.
func DefaultFSE(cf string, _ int) FSEOutcome {
	if !cms.ValidCF(cf) {
		return FSECFError
	}
	return FSEOK
}

// ScriptedFSE returns a source that gives, for each CF in script, its
// outcomes attempt after attempt (the last one repeating), and FSEOK for
// any other CF.
func ScriptedFSE(script map[string][]FSEOutcome) FSESource {
	return func(cf string, attempt int) FSEOutcome {
		s := script[cf]
		switch {
		case len(s) == 0:
			return FSEOK
		case attempt > len(s):
			return s[len(s)-1]
		}
		return s[attempt-1]
	}
}

// Ticket reasons.
const (
	TicketCF        = "codice_fiscale" // level 1: the citizen is to be contacted
	TicketTechnical = "tecnico"        // level 2: attempts exhausted
)

// requestFSE asks for the FSE of card's holder after an accepted consent
// and makes the first attempt. An FSE already created, being retried or
// with a ticket open is left as it is.
func (s *rules) requestFSE(c *opCtx, card *cms.Card) (string, error) {
	if r, err := c.tx.FSE(card.CF); err != nil || r != nil {
		if err != nil {
			return "", err
		}
		return r.State, nil
	}
	r := FSERecord{CF: card.CF, Serial: card.Serial, OpID: c.op.ID, Protocol: c.protocol, Requested: c.now()}
	return s.attemptFSE(c.tx, &r, c.now())
}

// attemptFSE makes one attempt, applies the seeds' rule and stores r: a CF
// error opens a level-1 ticket at once; technical errors are retried by
// the CMS itself until FSERetries attempts, then a level-2 ticket opens.
func (s *rules) attemptFSE(tx cmsstore.Tx, r *FSERecord, now time.Time) (string, error) {
	r.Attempts++
	r.Updated = now
	var level int
	switch s.fse(r.CF, r.Attempts) {
	case FSEOK:
		r.State = cms.FSECreated
	case FSECFError:
		level = 1
	default:
		r.State = cms.FSEPending
		if r.Attempts >= s.fseRetries {
			level = 2
		}
	}
	if level > 0 {
		t, err := openTicket(tx, r, level, now)
		if err != nil {
			return "", err
		}
		r.State, r.Ticket, r.Level = cms.FSETicket, t.ID, level
	}
	return r.State, tx.PutFSE(*r)
}

func openTicket(tx cmsstore.Tx, r *FSERecord, level int, now time.Time) (Ticket, error) {
	n, err := tx.NextTicket()
	if err != nil {
		return Ticket{}, err
	}
	t := Ticket{ID: fmt.Sprintf("HD%d-%06d", level, n), Level: level, CF: r.CF, Serial: r.Serial,
		OpID: r.OpID, Protocol: r.Protocol, Attempts: r.Attempts, Opened: now}
	if level == 1 {
		t.Reason = TicketCF
		t.Note = "Creazione FSE: codice fiscale errato o mancante. Contattare il cittadino e invitarlo allo sportello Scelta e Revoca."
	} else {
		t.Reason = TicketTechnical
		t.Note = fmt.Sprintf("Creazione FSE non riuscita per errori tecnici dopo %d tentativi.", r.Attempts)
	}
	return t, tx.PutTicket(n, t)
}

// RetryFSE makes one more attempt for every FSE being retried and returns
// how many it tried.
func (s *Store) RetryFSE(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.st.Update(ctx, func(tx cmsstore.Tx) error {
		pending, err := tx.PendingFSE()
		if err != nil {
			return err
		}
		now := time.Now()
		for i := range pending {
			if _, err := s.rules.attemptFSE(tx, &pending[i], now); err != nil {
				return err
			}
		}
		n = len(pending)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("refcms: fse retry: %w", err)
	}
	return n, nil
}

// RunFSERetries calls RetryFSE every interval (0: Options.FSERetryEvery)
// until ctx is done; the caller owns the goroutine it runs on.
func (s *Store) RunFSERetries(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = s.rules.fseEvery
	}
	return onTicks(ctx, every, func() error {
		if _, err := s.RetryFSE(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	})
}

// consentResult is the answer to an accepted consent: the FSE state, the
// helpdesk ticket when one is open, and how the CMS retries by itself.
func (s *rules) consentResult(tx cmsstore.Reader, cf, state string) (cms.ConsentResult, error) {
	res := cms.ConsentResult{FSE: state, Retries: s.fseRetries, RetryEvery: int(s.fseEvery / time.Second)}
	if state != cms.FSETicket {
		return res, nil
	}
	r, err := tx.FSE(cf)
	if err != nil {
		return res, err
	}
	if r == nil {
		return res, errors.New("fse record missing")
	}
	res.Ticket, res.TicketLevel, res.Attempts = r.Ticket, r.Level, r.Attempts
	return res, nil
}

// FSE returns the FSE creation state of the holder with cf.
func (s *Store) FSE(cf string) (FSERecord, error) {
	return lookup(s, func(r cmsstore.Reader) (*FSERecord, error) { return r.FSE(cf) })
}

// Tickets returns the helpdesk tickets, oldest first.
func (s *Store) Tickets() ([]Ticket, error) {
	return read(s, func(r cmsstore.Reader) ([]Ticket, error) { return r.Tickets() })
}
