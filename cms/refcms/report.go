package refcms

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Outcomes a report can select.
const (
	ReportAccepted = "accepted"
	ReportRejected = "rejected"
)

// ReportFilter selects audit records for Report. Empty fields select all.
type ReportFilter struct {
	Totem    string
	Operator string // operator card serial
	Kind     string
	Outcome  string    // "", ReportAccepted or ReportRejected
	From     time.Time // on the hub's clock, inclusive; zero: from the start
	To       time.Time // exclusive; zero: up to now
	ByDay    bool      // one row per day (UTC) too
}

// ReportRow counts the operations of one totem, operator and kind (and day,
// with ByDay).
type ReportRow struct {
	Day      string         `json:"day,omitempty"` // YYYY-MM-DD
	Totem    string         `json:"totem"`
	Operator string         `json:"operator,omitempty"`
	Kind     string         `json:"kind"`
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Codes    map[string]int `json:"codes,omitempty"` // reject codes of the rejected ones
}

// Report aggregates the audit trail: rows sorted by day, totem, operator
// and kind. Duplicates are not in the audit, so nothing is counted twice.
func (s *Store) Report(f ReportFilter) ([]ReportRow, error) {
	switch f.Outcome {
	case "", ReportAccepted, ReportRejected:
	default:
		return nil, fmt.Errorf("refcms: report: unknown outcome %q", f.Outcome)
	}
	rows := map[[4]string]*ReportRow{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bAudit).ForEach(func(_, v []byte) error {
			var a AuditRecord
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			switch {
			case f.Totem != "" && a.Totem != f.Totem,
				f.Operator != "" && a.Operator != f.Operator,
				f.Kind != "" && a.Kind != f.Kind,
				f.Outcome == ReportAccepted && !a.Accepted,
				f.Outcome == ReportRejected && a.Accepted,
				!f.From.IsZero() && a.At.Before(f.From),
				!f.To.IsZero() && !a.At.Before(f.To):
				return nil
			}
			var day string
			if f.ByDay {
				day = a.At.UTC().Format(time.DateOnly)
			}
			k := [4]string{day, a.Totem, a.Operator, a.Kind}
			r := rows[k]
			if r == nil {
				r = &ReportRow{Day: day, Totem: a.Totem, Operator: a.Operator, Kind: a.Kind}
				rows[k] = r
			}
			if a.Accepted {
				r.Accepted++
				return nil
			}
			r.Rejected++
			for _, c := range a.Codes {
				if r.Codes == nil {
					r.Codes = map[string]int{}
				}
				r.Codes[c]++
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("refcms: report: %w", err)
	}
	out := make([]ReportRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ReportRow) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Totem, b.Totem),
			cmp.Compare(a.Operator, b.Operator), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}
