package screens

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// Legends say what a key does in words (issue 17): no "*=Ind.", "*=Canc"
// or cut words, tries left said as a sentence, page numbers on the menu,
// and every screen that answers to * says what it does there.
func TestLegendsInWords(t *testing.T) {
	cryptic := regexp.MustCompile(`\*=(Ind|Canc|Del)\b|\*=Ind\.|Passap\.|attivaz\.|Tentativi rimasti|Tries left|Opp\. `)
	for name, s := range screens {
		for lang, rows := range s.rows {
			joined := strings.Join(rows, "|")
			if cryptic.MatchString(joined) {
				t.Errorf("%s/%d: cryptic legend in %q", name, lang, joined)
			}
			if Bound(name, '*') && !strings.Contains(joined, "*=") && !silentBack[name] {
				t.Errorf("%s/%d: answers to * without saying so: %q", name, lang, joined)
			}
		}
	}
	for i, name := range []string{"menu", "menu_2", "menu_3", "menu_4"} {
		for _, l := range []Lang{IT, EN} {
			if want := string(rune('1'+i)) + "/4 "; !strings.HasPrefix(l.Screen(name)[0], want) {
				t.Errorf("%s/%d: no page number %q: %q", name, l, want, l.Screen(name)[0])
			}
		}
	}
}

// silentBack are the screens where * needs no legend: an outcome or a
// notice that any key (or # as told) leaves, the multi-row input prompts
// whose * is told on the screen before.
var silentBack = map[string]bool{
	// outcomes: # and * both lead to the menu, D ends ("#=Altra operazione")
	"done": true, "printed_query": true, "provisional": true, "no_receipt": true, "late_done": true, "late_rejected": true, "late_no_receipt": true,
	// notices left with # (or *), as the row says ("#=Riprova")
	"too_short": true, "too_short_exact": true, "pin_wrong": true, "pin_last": true, "puk_wrong": true, "puk_wrong_unknown": true,
	"pin_mismatch": true, "revoke_team_bad": true, "cf_invalid": true, "cf_holder": true, "date_invalid": true,
	"doc_expired": true, "email_invalid": true, "team_invalid": true, "offline_refused": true, "parental_adult": true,
	"act_already_active": true,
	"late":               true, "retry_page": true, "form_printed": true, "form_not_printed": true, "history_none": true,
	// summaries: * goes back to correct, D cancels, as the summary says
	"summary": true, "reader_confirm": true, "revoke_confirm": true, "op_summary_last": true,
	// the operator's screens: op_insert has no room, and the reprint's reason belongs to the counter procedures' work
	"op_remove": true, "op_insert": true, "act_privacy": true, "reprint_reason": true,
	"reader_offer": true, "contact_channel": true, "op_menu": true,
	// * on the welcome screen and the menu's first page is D; on a page, the previous page
	"idle": true, "menu": true, "page_last": true,
	// the technician's maintenance pages: * is the previous page or leaves
	// a notice, as on the citizen's pages
	"maint_menu": true, "maint_enroll_failed": true, "maint_cred_ko": true, "maint_resent": true,
	"maint_cred_ok": true, "maint_enroll_offline": true, "maint_enrolled": true, "maint_expired": true,
	"maint_print_failed": true, "maint_printed": true, "maint_queue": true, "maint_refused": true,
	"maint_reused": true, "maint_version": true,
	// the counter procedures' notices, left with # (or *) as the row says,
	// and their lists whose * is the previous step as on the menus
	"cms_unreachable": true, "info_not_printed": true, "reissue_curator": true, "typed_card_expired": true,
	"reissue_reason": true, "op_menu_nocard": true,
}

// The "other requests" page sends a citizen who wants to block a card to
// the totem's own Revoca, not only to the counter (issue 17).
func TestSuspensionPointsToRevoca(t *testing.T) {
	if !strings.Contains(IT.Text("refuse_suspension"), "tasto 7") || !strings.Contains(EN.Text("refuse_suspension"), "key 7") {
		t.Errorf("refuse_suspension: %q / %q", IT.Text("refuse_suspension"), EN.Text("refuse_suspension"))
	}
}

// The texts the flows put on a row of their own fit it once filled: the
// Storico's lines, the summary's labels.
func TestRowTextsFit(t *testing.T) {
	for _, l := range []Lang{IT, EN} {
		rows := []string{fmt.Sprintf(l.Text("h_expiry"), "31/12/2030"), l.Text("h_events"), l.Text("h_no_events"),
			l.Text("sum_sms"), l.Text("sum_email"), l.Text("sum_delegate"), l.Text("sum_cf") + " RSSMRA80A01H501U",
			l.Text("sum_expiry") + " 31/12/2030", l.Text("sum_reader") + " " + l.Text("yes")}
		for _, st := range []string{"issued", "active", "revoked"} {
			rows = append(rows, fmt.Sprintf(l.Text("h_card"), l.Text("state_"+st)))
		}
		for _, r := range rows {
			if n := utf8.RuneCountInString(r); n > 20 || strings.Contains(r, "%!") {
				t.Errorf("%d: %q is %d columns", l, r, n)
			}
		}
	}
}
