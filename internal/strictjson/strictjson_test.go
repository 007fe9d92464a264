package strictjson

import (
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
