package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestReport(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{errors.New("boom"), 1, "boom\n"},
		{Usagef("usage: x\n", "x: unknown command %q", "y"), 2, "x: unknown command \"y\"\nusage: x\n"},
		{fmt.Errorf("wrapped: %w", Usagef("usage: x\n", "bad")), 2, "wrapped: bad\nusage: x\n"},
	} {
		var b bytes.Buffer
		if code := Report(tt.err, &b); code != tt.code || b.String() != tt.out {
			t.Errorf("%v: %d %q", tt.err, code, b.String())
		}
	}
}

func TestUndoRunsInReverse(t *testing.T) {
	var u Undo
	var got []int
	for i := range 3 {
		u.Push(func() { got = append(got, i) })
	}
	u.Run()
	u.Run() // forgotten: nothing twice
	if fmt.Sprint(got) != "[2 1 0]" {
		t.Errorf("ran %v, want [2 1 0]", got)
	}
}
