package strictjson

import (
	"errors"
	"strings"
	"testing"
)

type rec struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func TestDecode(t *testing.T) {
	const secret = "Mario Rossi"
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"good", `{"name":"x","n":1}`, true},
		{"white space after", "{\"n\":1} \n\t", true},
		{"unknown member", `{"n":1,"` + secret + `":2}`, false},
		{"case-folded member", `{"NAME":"x"}`, true}, // encoding/json's rule, kept
		{"wrong type", `{"n":"` + secret + `"}`, false},
		{"second value", `{"n":1} {}`, false},
		{"closing brace after", `{"n":1}}`, false},
		{"closing bracket after", `{"n":1}]`, false},
		{"garbage after", `{"n":1}x`, false},
		{"empty", ``, false},
		{"too large", `{"name":"` + strings.Repeat("a", 100) + `"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode[rec]([]byte(tt.in), 64)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "Mario") || v != nil) {
				t.Fatalf("error %q quotes the input, or a value came with it", err)
			}
		})
	}
}

// DecodeChecked wraps Decode's errors in the caller's sentinel, returns
// check's as they are, and a value only when both pass.
func TestDecodeChecked(t *testing.T) {
	errBad := errors.New("bad rec")
	errCheck := errors.New("n must be positive")
	check := func(r *rec) error {
		if r.N <= 0 {
			return errCheck
		}
		return nil
	}
	for _, tt := range []struct {
		name, in string
		want     error
	}{
		{"good", `{"n":1}`, nil},
		{"malformed", `{"n":`, errBad},
		{"too large", `{"name":"` + strings.Repeat("a", 100) + `"}`, errBad},
		{"check fails", `{"n":0}`, errCheck},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodeChecked([]byte(tt.in), 64, errBad, check)
			if !errors.Is(err, tt.want) || (err == nil) != (v != nil) {
				t.Fatalf("%v, %v: want %v", v, err, tt.want)
			}
			if tt.want == errBad && !strings.HasPrefix(err.Error(), "bad rec: ") {
				t.Fatalf("error %q not wrapped in the sentinel", err)
			}
			if tt.want == errCheck && err != errCheck {
				t.Fatalf("check's error %q wrapped", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"name":"x","n":1}`))
	f.Add([]byte(`{"n":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode[rec](b, 256)
		if err == nil && (v == nil || len(b) > 256) {
			t.Fatal("accepted without a value or over the bound")
		}
	})
}
