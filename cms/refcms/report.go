package refcms

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"context"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
)

// The report types live in cms, where the hub finds them; these names
// keep refcms's API.
const (
	ReportAccepted = cms.ReportAccepted
	ReportRejected = cms.ReportRejected
)

type (
	ReportFilter = cms.ReportFilter
	ReportRow    = cms.ReportRow
)

var _ cms.Reporter = (*Store)(nil)

// Report aggregates the audit trail: rows sorted by day, totem, operator
// and kind. Duplicates are not in the audit, so nothing is counted twice.
func (s *Store) Report(f ReportFilter) ([]ReportRow, error) {
	switch f.Outcome {
	case "", ReportAccepted, ReportRejected:
	default:
		return nil, fmt.Errorf("refcms: report: unknown outcome %q", f.Outcome)
	}
	rows := map[[4]string]*ReportRow{}
	err := s.st.View(context.Background(), func(rd cmsstore.Reader) error {
		return rd.Audit(func(a AuditRecord) error {
			switch {
			// Audit entries (people's actions, on their way to the hub's
			// audit) are not operations on cards: only asked for by kind.
			case f.Kind == "" && a.Kind == cms.KindAudit,
				f.Totem != "" && a.Totem != f.Totem,
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
