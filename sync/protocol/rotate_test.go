package protocol

import (
	"errors"
	"testing"
)

// A totem's two broker usernames, and the username fields of the
// rotation messages and of the presence: only one of the totem's own.
func TestTotemUsernames(t *testing.T) {
	if n := TotemUsernames("demo-01"); n != [2]string{"demo-01", "demo-01.b"} {
		t.Fatalf("TotemUsernames: %v", n)
	}
	for u, want := range map[string]string{"demo-01": "demo-01", "demo-01.b": "demo-01"} {
		if id, ok := UsernameTotem(u); !ok || id != want {
			t.Errorf("UsernameTotem(%q) = %q %v", u, id, ok)
		}
	}
	for _, u := range []string{"", ".b", "demo-01.b.b", "demo.01", "a/b", "demo-01.c", "hub-a:1"} {
		if _, ok := UsernameTotem(u); ok {
			t.Errorf("UsernameTotem(%q) accepted", u)
		}
	}
	if OtherUsername("demo-01") != "demo-01.b" || OtherUsername("demo-01.b") != "demo-01" {
		t.Error("OtherUsername")
	}

	pw := `"password":"0123456789abcdef0123456789abcdef"`
	for body, ok := range map[string]bool{
		`{"v":1,"id":"r1",` + pw + `}`:                          true,
		`{"v":1,"id":"r1",` + pw + `,"username":"demo-01"}`:     true,
		`{"v":1,"id":"r1",` + pw + `,"username":"demo-01.b"}`:   true,
		`{"v":1,"id":"r1",` + pw + `,"username":"demo/01.b"}`:   false,
		`{"v":1,"id":"r1",` + pw + `,"username":"demo-01.b.b"}`: false,
	} {
		if _, err := DecodeRotateRequest([]byte(body)); (err == nil) != ok {
			t.Errorf("DecodeRotateRequest(%s): %v", body, err)
		}
	}
	if r, err := DecodeRotateReply([]byte(`{"v":1,"id":"r1","ok":true,"username":"demo-01.b"}`)); err != nil || r.Username != "demo-01.b" {
		t.Errorf("DecodeRotateReply: %+v %v", r, err)
	}
	if _, err := DecodeRotateReply([]byte(`{"v":1,"id":"r1","ok":true,"username":"x y"}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("DecodeRotateReply with a bad username: %v", err)
	}
	for body, ok := range map[string]bool{
		`{"v":1,"totem":"demo-01","status":"online"}`:                    true,
		`{"v":1,"totem":"demo-01","status":"online","user":"demo-01.b"}`: true,
		`{"v":1,"totem":"demo-01","status":"online","user":"demo-02.b"}`: false,
		`{"v":1,"totem":"demo-01","status":"online","user":"demo-01.c"}`: false,
	} {
		if _, err := DecodeState([]byte(body)); (err == nil) != ok {
			t.Errorf("DecodeState(%s): %v", body, err)
		}
	}
}
