package main

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/eclipse/paho.golang/paho"
)

// connackOf connects user to the rig's broker once and returns the CONNACK
// reason code (0 when accepted). A totem's client id is its name: an
// accepted probe takes the session over, and the uplink takes it back.
func connackOf(t *testing.T, ctx context.Context, brokerURL, user, pass string) byte {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: 5 * time.Second})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: user, KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
		return 0
	}
	conn.Close()
	if ca == nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	return ca.ReasonCode
}

// 8 wrong passwords lock a totem's credentials, the right one is then
// refused 0x8A; totemctl locks shows the lock and where it came from, a
// technician may not unlock, ops may: the totem logs in again.
func TestUnlockRestoresLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})
	for i := 1; i <= broker.MaxFailures; i++ {
		if code := connackOf(t, ctx, r.url, rigTotem, "guess"); code != 0x86 && !(i == broker.MaxFailures && code == 0x8A) {
			t.Fatalf("attempt %d: 0x%02X", i, code)
		}
	}
	if code := connackOf(t, ctx, r.url, rigTotem, r.totemPass); code != 0x8A {
		t.Fatalf("the right password while locked: 0x%02X, want 0x8A", code)
	}
	out, err := r.totemctl(ctx, r.tech, "locks")
	if err != nil || !strings.Contains(out, rigTotem) || !strings.Contains(out, "LOCKED") || !strings.Contains(out, "127.0.0.1:") {
		t.Fatalf("totemctl locks: %v\n%s", err, out)
	}
	out, err = r.totemctl(ctx, r.tech, "credentials")
	if err != nil || !regexp.MustCompile(rigTotem+` +totem +\S+ \S+ +(239|240)d +- +LOCKED`).MatchString(out) ||
		!regexp.MustCompile(`console +console +never`).MatchString(out) {
		t.Fatalf("totemctl credentials: %v\n%s", err, out)
	}
	if _, err := r.totemctl(ctx, r.tech, "unlock", rigTotem); refused(err) != cmdsig.CodeOutOfRole {
		t.Fatalf("technician unlock: %v, want out_of_role", err)
	}
	if code := connackOf(t, ctx, r.url, rigTotem, r.totemPass); code != 0x8A {
		t.Fatalf("after a refused unlock: 0x%02X, want 0x8A", code)
	}
	out, err = r.totemctl(ctx, r.ops, "unlock", rigTotem)
	if err != nil || !strings.Contains(out, rigTotem+" unlocked") || !strings.Contains(out, "from 127.0.0.1:") ||
		!strings.Contains(out, "at once when totemd is restarted") {
		t.Fatalf("totemctl unlock: %v\n%s", err, out)
	}
	if code := connackOf(t, ctx, r.url, rigTotem, r.totemPass); code != 0 {
		t.Fatalf("after unlock: 0x%02X", code)
	}
	out, err = r.totemctl(ctx, r.ops, "unlock", rigTotem)
	if err != nil || !strings.Contains(out, "was not locked") {
		t.Fatalf("second unlock: %v\n%s", err, out)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "user locked") || !strings.Contains(logs, "credentials unlocked") || !strings.Contains(logs, "key=ops-1") {
		t.Errorf("lock and unlock not audited:\n%s", logs)
	}
}

// totemctl enroll (ops) registers a new totem and prints its code, grouped,
// with the expiry; a technician may not.
func TestEnrollPrintsCode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})
	if _, err := r.totemctl(ctx, r.tech, "enroll", "t-new"); refused(err) != cmdsig.CodeOutOfRole {
		t.Fatalf("technician enroll: %v, want out_of_role", err)
	}
	out, err := r.totemctl(ctx, r.ops, "enroll", "t-new")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`totem t-new: enrollment code ([2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}), valid until (\d{4}-\d\d-\d\d)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("totemctl enroll said %q", out)
	}
	if want := time.Now().Add(7 * 24 * time.Hour).Format("2006-01-02"); m[2] != want {
		t.Errorf("valid until %s, want %s", m[2], want)
	}
	if role, ok := r.reg.Lookup("t-new"); !ok || role != "totem" {
		t.Errorf("t-new not registered: %q %v", role, ok)
	}
	if strings.Contains(r.logs.String(), m[1]) {
		t.Error("the code is in the logs")
	}
	if _, err := r.totemctl(ctx, r.ops, "enroll", "console"); err == nil {
		t.Error("a console's name enrolled as a totem")
	}
}

// totemctl cmd TOTEM test-credentials: the totem checks, on its live
// connection, the ACL of its own topics (granted) and of another totem's
// commands (refused), and answers a verdict, which totemctl prints as
// totemd credentials test does (--json: the report).
func TestRemoteCredentialsTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := startRig(t, ctx, func(*outbox.Outbox) {})
	// As a person reads it: each topic, then the verdict.
	out, err := r.totemctl(ctx, r.tech, "cmd", rigTotem, "test-credentials")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  totem/v1/`+rigTotem+`/cmd +granted$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  totem/v1/acl-probe/cmd +refused \(must be refused\)$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^OK: credentials of `+rigTotem+` accepted`).MatchString(out) {
		t.Fatalf("test-credentials printed:\n%s", out)
	}
	if out, err = r.totemctl(ctx, r.tech, "cmd", rigTotem, "test-credentials", "--json"); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK      bool   `json:"ok"`
		Verdict string `json:"verdict"`
		Own     []struct {
			Granted bool `json:"granted"`
		} `json:"own"`
		Foreign struct {
			Granted bool `json:"granted"`
			Code    int  `json:"code"`
		} `json:"foreign"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !rep.OK || !strings.HasPrefix(rep.Verdict, "OK: credentials of "+rigTotem) || len(rep.Own) != 5 || rep.Foreign.Granted || rep.Foreign.Code != 0x87 {
		t.Fatalf("report %s", out)
	}
	for _, o := range rep.Own {
		if !o.Granted {
			t.Fatalf("own topic refused: %s", out)
		}
	}
	// The totem is still online and answering after the test.
	if _, err := r.totemctl(ctx, r.tech, "cmd", rigTotem, "ping"); err != nil {
		t.Fatalf("ping after the test: %v", err)
	}
}
