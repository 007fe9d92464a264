package flows

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/hal"
)

// CardByData identifies the citizen's card with the card not in the slot
// (seed 001: "La carta … non deve essere inserita nel lettore e sarà
// riconosciuta attraverso i dati riportati in chiaro su di essa: CF,
// Codice TEAM, Data scadenza"): the operator types the codice fiscale
// (its check character verified), the TEAM code from the back of the card
// (its check digit verified) and the expiry date; the CMS's record found
// by the TEAM code must carry that CF and expiry, or the citizen goes to
// the sportello Scelta e Revoca. It returns the card as the chip would
// give it, filled from the CMS's record (serial, holder), for the
// assisted flows that follow. It needs the CMS: offline it is refused
// before anything is typed.
func CardByData(ctx context.Context, dk *Desk, op string) (hal.CardInfo, error) {
	var info hal.CardInfo
	if err := dk.Reachable(ctx, cms.KindLookup); err != nil {
		return info, err
	}
	var cf, team string
	var expiry time.Time
	err := steps(func() error {
		typed := cf // a refused CF comes back to be corrected, not retyped
		for {
			s, err := dk.text(ctx, "t_cf", &tapUpper, 16, 16, typed)
			if err != nil {
				return err
			}
			if cms.ValidCF(s) {
				cf = s
				return nil
			}
			typed = s
			dk.log.Info("typed card refused", "reason", "cf_check")
			if err := dk.notice(ctx, "cf_invalid"); err != nil {
				return err
			}
		}
	}, func() error {
		for {
			b, err := dk.enter(ctx, "team", 20, 20, false)
			if err != nil {
				return err
			}
			if cms.ValidTEAM(string(b)) {
				team = string(b)
				return nil
			}
			dk.log.Info("typed card refused", "reason", "team_check")
			if err := dk.notice(ctx, "team_invalid"); err != nil {
				return err
			}
		}
	}, func() error {
		d, err := dk.enterExpiry(ctx, "card_expiry", "typed_card_expired", "typed card refused")
		if err == nil {
			expiry = d
		}
		return err
	})
	if err != nil {
		return info, err
	}
	payload, err := json.Marshal(cms.LookupRequest{Card: cms.CardRef{CF: cf, Expiry: expiry.Format(time.DateOnly)}, TEAM: team,
		Channel: cms.Assisted, Operator: op})
	if err != nil {
		return info, err
	}
	e, err := dk.submit(ctx, cms.KindLookup, payload)
	if err != nil {
		return info, err
	}
	if rejected(e) {
		if err := dk.ShowRejection(ctx, e); err != nil {
			return info, err
		}
		return info, ErrBack
	}
	var rec cms.LookupResult
	if ok, _ := decode(dk, e, &rec, func(r cms.LookupResult) bool { return r.Serial != "" }, "lookup result"); !ok {
		return info, ErrNoAnswer
	}
	info = hal.CardInfo{Class: hal.ClassCNS, Serial: rec.Serial, CF: cf, Surname: rec.Surname, Name: rec.Name, Expiry: expiry}
	info.BirthDate, _ = time.Parse(time.DateOnly, rec.BirthDate)
	return info, nil
}
