package web

import (
	"reflect"
	"testing"
)

// Temporary (issue 15): the file holds exactly what the Go literal held.
func TestLoadedEqualsLiterals(t *testing.T) {
	got, err := loadCatalogue(i18nFile, i18nTOML)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, catalogue) || len(got) < 150 {
		t.Errorf("catalogue differs (%d texts)", len(got))
	}
}
