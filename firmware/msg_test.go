package firmware

import (
	"strings"
	"testing"
)

func TestMaskCF(t *testing.T) {
	if got := MaskCF("RSSMRA80A01H501U"); got != "RSS**********01U" {
		t.Fatal(got)
	}
	if got := MaskCF("short"); strings.Contains(got, "short") {
		t.Fatal(got)
	}
}
