package benchkit

import (
	"fmt"
	"os"
	"testing"
)

func TestCounts(t *testing.T) {
	for _, tt := range []struct {
		list string
		max  int
		want string
	}{
		{"1000, 10000,100000", 0, "[1000 10000 100000] <nil>"},
		{"100,0", 0, `[] bad size "0"`},
		{"100,x", 0, `[] bad size "x"`},
		{"100,10000", 9999, `[] bad size "10000"`},
	} {
		got, err := Counts(tt.list, "size", tt.max)
		if s := fmt.Sprint(got, " ", err); s != tt.want {
			t.Errorf("Counts(%q, %d) = %s, want %s", tt.list, tt.max, s, tt.want)
		}
	}
}

func TestWorkDir(t *testing.T) {
	d, cleanup, err := WorkDir("", "benchkit-test-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d); err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup: %v", d, err)
	}
	keep := t.TempDir()
	if d, cleanup, err := WorkDir(keep, "x"); err != nil || d != keep {
		t.Fatalf("WorkDir(%s) = %s, %v", keep, d, err)
	} else {
		cleanup()
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a given dir was removed: %v", err)
	}
}
