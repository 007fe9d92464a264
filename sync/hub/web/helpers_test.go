package web

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/pquerna/otp/totp"
)

// The helpers here serve the package's tests and the external web_test's
// alike (a _test.go file of the package is in both).

// TestValidity is the credentials' validity the tests' registries use.
var TestValidity = broker.Validity{First: 240 * 24 * time.Hour, Next: 90 * 24 * time.Hour, RotateBefore: 14 * 24 * time.Hour}

// OpenTestRegistry opens a broker user registry (fleet.db) in dir, closed
// when the test ends.
func OpenTestRegistry(t testing.TB, dir string) *broker.Registry {
	t.Helper()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// EnrollTotem enrolls the totem name at reg and redeems its code at now,
// as the totem's first start does, and returns its credentials.
func EnrollTotem(t testing.TB, reg *broker.Registry, name string, now time.Time) creds.File {
	t.Helper()
	code, _, err := reg.Enroll(name, 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := enroll.ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	f, err := reg.Redeem(name, norm, now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Login posts the login form of the console at base as user, with
// password and the TOTP code of secret now, on c.
func Login(t testing.TB, c *http.Client, base, user, password, secret string) *http.Response {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"user": {user},
		"password": {password}, "code": {code}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := Do(t, c, req)
	return resp
}

// Do sends req on c and returns the answer with its body read (closed).
func Do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
