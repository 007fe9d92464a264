// Package speechtest reads back, for tests, what the speech driver wrote:
// sox's figures of a WAV file.
package speechtest

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// Stat is what `sox FILE -n stat` says of the WAV file at path: its length
// in seconds and its RMS amplitude. It fails t when sox cannot say.
func Stat(t testing.TB, path string) (seconds, rms float64) {
	t.Helper()
	out, err := exec.Command("sox", path, "-n", "stat").CombinedOutput()
	if err != nil {
		t.Fatalf("sox %s: %v\n%s", path, err, out)
	}
	field := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:\s+([-0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("sox stat has no %q:\n%s", name, out)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return field("Length (seconds)"), field("RMS     amplitude")
}
