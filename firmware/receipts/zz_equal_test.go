package receipts

import (
	"maps"
	"reflect"
	"testing"

	"github.com/aslcns/totem/firmware/screens"
)

// Temporary (issue 15): the file holds exactly what the Go literals held.
func TestLoadedEqualsLiterals(t *testing.T) {
	lines := maps.Clone(loaded.lines)
	maps.Copy(lines, loaded.reasons)
	reasonsIT := map[string]string{}
	for k, v := range loaded.reasons {
		reasonsIT[k] = v[screens.IT]
	}
	docsIT := map[string]string{}
	for k, v := range loaded.documents {
		docsIT[k] = v[screens.IT]
	}
	for name, c := range map[string][2]any{
		"frameTexts":   {frameTexts, loaded.frame},
		"lineTexts":    {lineTexts, lines},
		"reasons":      {reasons, reasonsIT},
		"stateText":    {stateText, loaded.cardStates},
		"delegTexts":   {delegTexts, loaded.delegations},
		"docLineTexts": {docLineTexts, loaded.documents},
		"docTexts":     {docTexts, docsIT},
	} {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s differs", name)
		}
	}
	if len(lines) != len(lineTexts) || len(lines) < 50 {
		t.Errorf("%d lines", len(lines))
	}
}
