package refcms

import (
	"context"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	json "github.com/segmentio/encoding/json"
	bolt "go.etcd.io/bbolt"
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

// FSERecord is the state of the creation of one citizen's FSE.
type FSERecord struct {
	CF        string    `json:"cf"`
	Serial    string    `json:"serial"`
	State     string    `json:"state"` // cms.FSECreated, cms.FSEPending, cms.FSETicket
	Attempts  int       `json:"attempts"`
	Ticket    string    `json:"ticket,omitempty"`
	Level     int       `json:"level,omitempty"` // the ticket's
	OpID      string    `json:"op_id"`
	Protocol  string    `json:"protocol"`
	Requested time.Time `json:"requested"`
	Updated   time.Time `json:"updated"`
}

// Ticket reasons.
const (
	TicketCF        = "codice_fiscale" // level 1: the citizen is to be contacted
	TicketTechnical = "tecnico"        // level 2: attempts exhausted
)

// Ticket is a helpdesk ticket opened by the FSE creation rule.
type Ticket struct {
	ID       string    `json:"id"` // HD1-000001, HD2-000002
	Level    int       `json:"level"`
	Reason   string    `json:"reason"`
	CF       string    `json:"cf"`
	Serial   string    `json:"serial"`
	OpID     string    `json:"op_id"`
	Protocol string    `json:"protocol"`
	Attempts int       `json:"attempts"`
	Opened   time.Time `json:"opened"`
	Note     string    `json:"note"` // what the helpdesk is to do, in Italian
}

// requestFSE asks for the FSE of card's holder after an accepted consent
// and makes the first attempt. An FSE already created, being retried or
// with a ticket open is left as it is.
func (s *Store) requestFSE(c *opCtx, card *cms.Card) (string, error) {
	b := c.tx.Bucket(bFSE)
	if v := b.Get([]byte(card.CF)); v != nil {
		var r struct { // the state is all it needs: cheaper than FSERecord
			State string `json:"state"`
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return "", fmt.Errorf("fse record: %w", err)
		}
		return r.State, nil
	}
	r := FSERecord{CF: card.CF, Serial: card.Serial, OpID: c.op.ID, Protocol: c.protocol, Requested: c.now()}
	return s.attemptFSE(c.tx, &r, c.now())
}

// attemptFSE makes one attempt, applies the seeds' rule and stores r: a CF
// error opens a level-1 ticket at once; technical errors are retried by
// the CMS itself until FSERetries attempts, then a level-2 ticket opens.
func (s *Store) attemptFSE(tx *bolt.Tx, r *FSERecord, now time.Time) (string, error) {
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
	return r.State, putJSON(tx.Bucket(bFSE), []byte(r.CF), r)
}

func openTicket(tx *bolt.Tx, r *FSERecord, level int, now time.Time) (Ticket, error) {
	b := tx.Bucket(bTickets)
	n, err := b.NextSequence()
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
	return t, putJSON(b, be(n), t)
}

// RetryFSE makes one more attempt for every FSE being retried and returns
// how many it tried.
func (s *Store) RetryFSE(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var pending []FSERecord
		err := tx.Bucket(bFSE).ForEach(func(_, v []byte) error {
			var r FSERecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.State == cms.FSEPending {
				pending = append(pending, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		now := time.Now()
		for i := range pending {
			if _, err := s.attemptFSE(tx, &pending[i], now); err != nil {
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
		every = s.fseEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.RetryFSE(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// consentResult is the answer to an accepted consent: the FSE state, the
// helpdesk ticket when one is open, and how the CMS retries by itself.
func (s *Store) consentResult(tx *bolt.Tx, cf, state string) (cms.ConsentResult, error) {
	res := cms.ConsentResult{FSE: state, Retries: s.fseRetries, RetryEvery: int(s.fseEvery / time.Second)}
	if state != cms.FSETicket {
		return res, nil
	}
	var r FSERecord
	if err := json.Unmarshal(tx.Bucket(bFSE).Get([]byte(cf)), &r); err != nil {
		return res, fmt.Errorf("fse record: %w", err)
	}
	res.Ticket, res.TicketLevel, res.Attempts = r.Ticket, r.Level, r.Attempts
	return res, nil
}

// FSE returns the FSE creation state of the holder with cf.
func (s *Store) FSE(cf string) (FSERecord, error) {
	var r FSERecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bFSE).Get([]byte(cf))
		if v == nil {
			return cms.ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// Tickets returns the helpdesk tickets, oldest first.
func (s *Store) Tickets() ([]Ticket, error) {
	var out []Ticket
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bTickets).ForEach(func(_, v []byte) error {
			var t Ticket
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}
