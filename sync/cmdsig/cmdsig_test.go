package cmdsig

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// memReplay is an in-memory Replay for the stateless checks.
type memReplay map[string]bool

func (m memReplay) Admit(key, id string, _, _ time.Time) error {
	if m[key+"/"+id] {
		return refuse(CodeReplayed, "again")
	}
	m[key+"/"+id] = true
	return nil
}

// fixed keys so fuzz seeds stay valid between runs.
func testKey(id, role string, seed byte) PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return PrivateKey{ID: id, Role: role, Key: ed25519.NewKeyFromSeed(s)}
}

var (
	tech  = testKey("tech-1", Technician, 1)
	ops   = testKey("ops-1", Ops, 2)
	other = testKey("tech-1", Technician, 3) // same id, another key: a forgery
	t0    = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
)

func signed(t testing.TB, k PrivateKey, to, id, name, role string, args map[string]string, issued time.Time, ttl time.Duration) *protocol.Command {
	t.Helper()
	c := &protocol.Command{V: protocol.Version, ID: id, Name: name, Args: args}
	if err := Sign(k, c, to, role, issued, ttl); err != nil {
		t.Fatal(err)
	}
	return c
}

func code(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestVerify(t *testing.T) {
	const totem = "demo-01"
	nonce := "0123456789abcdef"
	clock := func() (time.Time, bool) { return t0, true }
	cases := []struct {
		name string
		cmd  func() *protocol.Command
		want string
	}{
		{"technician status", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "status", "", nil, t0, time.Minute)
		}, ""},
		{"ops correct", func() *protocol.Command {
			return signed(t, ops, totem, nonce, "correct", "", map[string]string{"id": "x", "payment": "R1"}, t0, time.Minute)
		}, ""},
		{"ops key signing as technician", func() *protocol.Command {
			return signed(t, ops, totem, nonce, "jobs", Technician, nil, t0, time.Minute)
		}, ""},
		{"hub command at the hub target is wrong here", func() *protocol.Command {
			return signed(t, ops, HubTarget, nonce, "report", "", nil, t0, time.Minute)
		}, CodeWrongTarget},
		{"unsigned", func() *protocol.Command {
			return &protocol.Command{V: 1, ID: nonce, Name: "ping", Expires: t0.Add(time.Minute)}
		}, CodeUnsigned},
		{"signature without key", func() *protocol.Command {
			c := signed(t, tech, totem, nonce, "ping", "", nil, t0, time.Minute)
			c.Key = ""
			return c
		}, CodeUnsigned},
		{"unknown key", func() *protocol.Command {
			return signed(t, testKey("stranger", Ops, 9), totem, nonce, "ping", "", nil, t0, time.Minute)
		}, CodeUnknownKey},
		{"forged with another key of the same id", func() *protocol.Command {
			return signed(t, other, totem, nonce, "ping", "", nil, t0, time.Minute)
		}, CodeBadSignature},
		{"args changed after signing", func() *protocol.Command {
			c := signed(t, ops, totem, nonce, "cancel", "", map[string]string{"id": "a"}, t0, time.Minute)
			c.Args["id"] = "b"
			return c
		}, CodeBadSignature},
		{"role raised after signing", func() *protocol.Command {
			c := signed(t, tech, totem, nonce, "cancel", "", nil, t0, time.Minute)
			c.Role = Ops
			return c
		}, CodeBadSignature},
		{"expiry extended after signing", func() *protocol.Command {
			c := signed(t, tech, totem, nonce, "ping", "", nil, t0, time.Minute)
			c.Expires = c.Expires.Add(time.Hour)
			return c
		}, CodeBadSignature},
		{"other totem", func() *protocol.Command {
			return signed(t, tech, "demo-02", nonce, "ping", "", nil, t0, time.Minute)
		}, CodeWrongTarget},
		{"short nonce", func() *protocol.Command {
			return signed(t, tech, totem, "c1", "ping", "", nil, t0, time.Minute)
		}, CodeBadNonce},
		{"technician asks for correction", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "correct", "", map[string]string{"id": "x"}, t0, time.Minute)
		}, CodeOutOfRole},
		{"ops void", func() *protocol.Command {
			return signed(t, ops, totem, nonce, "void", "", map[string]string{"id": "x"}, t0, time.Minute)
		}, ""},
		{"technician asks for a void", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "void", "", map[string]string{"id": "x"}, t0, time.Minute)
		}, CodeOutOfRole},
		{"technician asks for cancellation", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "cancel", "", map[string]string{"id": "x"}, t0, time.Minute)
		}, CodeOutOfRole},
		{"unknown command", func() *protocol.Command {
			return signed(t, ops, totem, nonce, "format_disk", "", nil, t0, time.Minute)
		}, CodeUnknown},
		{"validity too long", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "ping", "", nil, t0, MaxTTL+time.Second)
		}, CodeBadValidity},
		{"expired", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "ping", "", nil, t0.Add(-10*time.Minute), time.Minute)
		}, CodeExpired},
		{"expired within the skew is still valid", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "ping", "", nil, t0.Add(-2*time.Minute), time.Minute)
		}, ""},
		{"issued in the future", func() *protocol.Command {
			return signed(t, tech, totem, nonce, "ping", "", nil, t0.Add(Skew+time.Minute), time.Minute)
		}, CodeNotYetValid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := OpenRecord(filepath.Join(t.TempDir(), "commands.db"), RecordOptions{Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			v := NewVerifier(totem, []PublicKey{tech.Public(), ops.Public()}, rec)
			c := tc.cmd()
			// Through the wire format, as a totem gets it.
			b, err := protocol.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := protocol.DecodeCommand(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if g := code(v.Verify(got)); g != tc.want {
				t.Fatalf("Verify = %q, want %q", g, tc.want)
			}
			if tc.want == "" {
				if g := code(v.Verify(got)); g != CodeReplayed {
					t.Fatalf("second Verify = %q, want replayed", g)
				}
			}
		})
	}
}

func TestSignRefusesHigherRole(t *testing.T) {
	c := &protocol.Command{V: 1, ID: "0123456789abcdef", Name: "cancel"}
	if err := Sign(tech, c, "demo-01", Ops, t0, time.Minute); err == nil {
		t.Fatal("a technician key signed as ops")
	}
}

func TestHubTable(t *testing.T) {
	v := NewVerifier(HubTarget, []PublicKey{tech.Public()}, memReplay{})
	if g := code(v.Verify(signed(t, tech, HubTarget, "0123456789abcdef", "sendlog", "", nil, time.Now(), time.Minute))); g != "" {
		t.Fatalf("technician sendlog at the hub: %q", g)
	}
	if g := code(v.Verify(signed(t, tech, HubTarget, "0123456789abcdeg", "report", "", nil, time.Now(), time.Minute))); g != CodeOutOfRole {
		t.Fatalf("technician report at the hub: %q", g)
	}
	if g := code(v.Verify(signed(t, tech, HubTarget, "0123456789abcdeh", "resync", "", nil, time.Now(), time.Minute))); g != CodeUnknown {
		t.Fatalf("a totem's command at the hub: %q", g)
	}
}

// A replay is refused after a restart, and the floor that purges ids keeps
// refusing them whatever the clock does afterwards.
func TestReplayAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.db")
	now, synced := t0, true
	clock := func() (time.Time, bool) { return now, synced }
	open := func() (*Record, *Verifier) {
		rec, err := OpenRecord(path, RecordOptions{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return rec, NewVerifier("demo-01", []PublicKey{tech.Public()}, rec)
	}
	c := signed(t, tech, "demo-01", "aaaaaaaaaaaaaaaa", "ping", "", nil, t0, time.Minute)
	rec, v := open()
	if g := code(v.Verify(c)); g != "" {
		t.Fatalf("first: %q", g)
	}
	rec.Close()

	rec, v = open()
	if g := code(v.Verify(c)); g != CodeReplayed {
		t.Fatalf("after restart: %q, want replayed", g)
	}
	// Time passes: a later command purges the expired id...
	now = t0.Add(time.Hour)
	if g := code(v.Verify(signed(t, tech, "demo-01", "bbbbbbbbbbbbbbbb", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("later command: %q", g)
	}
	rec.Close()
	// ...then the board reboots without RTC, its clock back at t0 and
	// unsynchronised: the old command is still refused (expired against
	// the floor), though its id is gone.
	now, synced = t0, false
	rec, v = open()
	defer rec.Close()
	if g := code(v.Verify(c)); g != CodeExpired {
		t.Fatalf("old command after a clock jump back: %q, want expired", g)
	}
	// A fresh command is obeyed with the clock unsynchronised.
	if g := code(v.Verify(signed(t, tech, "demo-01", "cccccccccccccccc", "ping", "", nil, t0.Add(time.Hour+time.Minute), time.Minute))); g != "" {
		t.Fatalf("fresh command, unsynchronised clock: %q", g)
	}
}

func TestRecordBounded(t *testing.T) {
	rec, err := OpenRecord(filepath.Join(t.TempDir(), "commands.db"), RecordOptions{MaxPerKey: 3,
		Now: func() (time.Time, bool) { return t0, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	for i, want := range []string{"", "", "", CodeRecordFull} {
		if g := code(rec.Admit("k", string(rune('a'+i)), t0, t0.Add(time.Minute))); g != want {
			t.Fatalf("admit %d: %q, want %q", i, g, want)
		}
	}
}

// One key flooding the record with live ids (a technician's laptop
// looping on ping) fills its own share only: an ops key and another
// technician's key are obeyed at once, and the flooding key again once its
// ids expired. The flood is bounded: the key's share and one more.
func TestRecordFloodOneKey(t *testing.T) {
	const share = 64
	tech2 := testKey("tech-2", Technician, 4)
	now := t0
	rec, err := OpenRecord(filepath.Join(t.TempDir(), "commands.db"), RecordOptions{MaxPerKey: share,
		Now: func() (time.Time, bool) { return now, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	v := NewVerifier("demo-01", []PublicKey{tech.Public(), tech2.Public(), ops.Public()}, rec)
	full := 0
	for i := range share + 1 {
		err := v.Verify(signed(t, tech, "demo-01", fmt.Sprintf("flood%012d", i), "ping", "", nil, now, MaxTTL))
		switch code(err) {
		case "":
		case CodeRecordFull:
			full++
		default:
			t.Fatalf("flood %d: %v", i, err)
		}
	}
	if full != 1 {
		t.Fatalf("%d of %d flooding pings refused record_full, want the last one only", full, share+1)
	}
	for _, k := range []PrivateKey{ops, tech2} {
		if g := code(v.Verify(signed(t, k, "demo-01", "0123456789abcdef", "ping", "", nil, now, time.Minute))); g != "" {
			t.Fatalf("%s after another key's flood: %q", k.ID, g)
		}
	}
	now = now.Add(MaxTTL + Skew + time.Second)
	if g := code(v.Verify(signed(t, tech, "demo-01", "after-the-flood!", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("the flooding key once its ids expired: %q", g)
	}
}

// A command dated a day ahead, signed by a trusted technician key, reaches
// a totem whose clock is not synchronised. It may run, but it must not set
// the floor a day ahead: the consoles' honest commands keep being obeyed,
// also after a restart, and once NTP synchronises the clock.
func TestFutureCommandDoesNotPoisonTheFloor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.db")
	now, synced := t0, false
	open := func() (*Record, *Verifier) {
		rec, err := OpenRecord(path, RecordOptions{Now: func() (time.Time, bool) { return now, synced }})
		if err != nil {
			t.Fatal(err)
		}
		return rec, NewVerifier("demo-01", []PublicKey{tech.Public(), ops.Public()}, rec)
	}
	rec, v := open()
	if g := code(v.Verify(signed(t, tech, "demo-01", "poison0000000000", "ping", "", nil, t0.Add(24*time.Hour), time.Minute))); g != "" {
		t.Fatalf("future command on an unsynchronised clock: %q", g)
	}
	if f, err := rec.Floor(); err != nil || f.After(now.Add(Skew)) {
		t.Errorf("floor %v (%v) after a command dated a day ahead, clock at %v", f, err, now)
	}
	now = now.Add(time.Minute)
	if g := code(v.Verify(signed(t, ops, "demo-01", "honest0000000000", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("honest command after the future one: %q", g)
	}
	rec.Close()

	now = now.Add(time.Minute)
	rec, v = open()
	if g := code(v.Verify(signed(t, tech, "demo-01", "honest0000000001", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("honest command after a restart: %q", g)
	}
	// The floor still moves with honest commands (purging their ids), and
	// what it expired stays refused.
	old := signed(t, tech, "demo-01", "stale00000000000", "ping", "", nil, now.Add(-10*time.Minute), time.Minute)
	if g := code(v.Verify(old)); g != CodeExpired {
		t.Fatalf("command expired against the floor: %q", g)
	}
	rec.Close()

	// NTP synchronises: a command dated ahead is refused and the floor
	// follows the clock.
	synced = true
	rec, v = open()
	defer rec.Close()
	if g := code(v.Verify(signed(t, tech, "demo-01", "poison0000000001", "ping", "", nil, now.Add(24*time.Hour), time.Minute))); g != CodeNotYetValid {
		t.Fatalf("future command on a synchronised clock: %q", g)
	}
	if g := code(v.Verify(signed(t, tech, "demo-01", "honest0000000002", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("honest command, clock synchronised: %q", g)
	}
}

// An unsynchronised clock that is wrong and ahead lets a future command set
// the floor ahead (nothing tells it apart from an honest one); once NTP
// synchronises the clock back, the floor comes back to it — never below an
// id it already purged, which stays refused.
func TestFloorAheadComesBackWhenSynchronised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.db")
	ahead := t0.Add(24 * time.Hour)
	now, synced := ahead, false
	rec, err := OpenRecord(path, RecordOptions{Now: func() (time.Time, bool) { return now, synced }})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	v := NewVerifier("demo-01", []PublicKey{tech.Public()}, rec)
	// An honest command executed at t0, then one dated a day ahead purges
	// it: its id is gone, the floor keeps it refused.
	first := signed(t, tech, "demo-01", "first00000000000", "ping", "", nil, t0, time.Minute)
	if g := code(v.Verify(first)); g != "" {
		t.Fatalf("first: %q", g)
	}
	if g := code(v.Verify(signed(t, tech, "demo-01", "ahead00000000000", "ping", "", nil, ahead, time.Minute))); g != "" {
		t.Fatalf("ahead: %q", g)
	}
	now, synced = t0.Add(30*time.Second), true
	if g := code(v.Verify(signed(t, tech, "demo-01", "honest0000000000", "ping", "", nil, now, time.Minute))); g != "" {
		t.Fatalf("honest command once synchronised: %q", g)
	}
	if g := code(v.Verify(first)); g != CodeExpired && g != CodeReplayed {
		t.Fatalf("the purged command replayed: %q", g)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate("rossi", Technician)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rossi.key")
	if err := SavePrivate(path, k); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	got, err := LoadPrivate(path)
	if err != nil || got.ID != "rossi" || got.Role != Technician || !got.Key.Equal(k.Key) {
		t.Fatalf("LoadPrivate = %+v, %v", got, err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadPrivate(path); err == nil {
		t.Fatal("a world-readable private key was loaded")
	}

	trusted := filepath.Join(dir, "console_keys.json")
	if keys, err := LoadTrusted(trusted); err != nil || keys != nil {
		t.Fatalf("missing file: %v, %v", keys, err)
	}
	if err := AddTrusted(trusted, k.Public()); err != nil {
		t.Fatal(err)
	}
	if err := AddTrusted(trusted, ops.Public()); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadTrusted(trusted)
	if err != nil || len(keys) != 2 {
		t.Fatalf("LoadTrusted = %v, %v", keys, err)
	}
	if _, err := Merge(keys, []PublicKey{testKey("rossi", Ops, 7).Public()}); err == nil {
		t.Fatal("one id with two keys merged")
	}
	if m, err := Merge(keys, []PublicKey{k.Public()}); err != nil || len(m) != 2 {
		t.Fatalf("Merge of a repeated key = %v, %v", m, err)
	}
	if _, err := (Entry{ID: "x", Role: Ops, PublicKey: "AAAA"}).Parse(); err == nil {
		t.Fatal("a 3-byte public key parsed")
	}
}

// FuzzVerify feeds arbitrary bytes through the command decoder and the
// verifier: never a panic, and nothing but a correctly signed, live,
// in-role command is accepted.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	for _, c := range []*protocol.Command{
		signed(f, tech, "demo-01", "0123456789abcdef", "status", "", nil, now, time.Minute),
		signed(f, ops, "demo-01", "0123456789abcdef", "correct", "", map[string]string{"id": "6f1c", "consents": "consultazione=1"}, now, time.Minute),
		signed(f, tech, "demo-01", "0123456789abcdef", "cancel", "", map[string]string{"id": "6f1c"}, now, time.Minute),
		signed(f, tech, HubTarget, "0123456789abcdef", "sendlog", "", map[string]string{"max": "5"}, now, time.Minute),
		{V: 1, ID: "c1", Name: "ping"},
	} {
		b, _ := protocol.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"id":"0123456789abcdef","name":"ping","key":"tech-1","sig":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := protocol.DecodeCommand(b)
		if err != nil {
			return
		}
		v := NewVerifier("demo-01", []PublicKey{tech.Public(), ops.Public()}, memReplay{})
		if v.Verify(c) != nil {
			return
		}
		k := tech.Public()
		if c.Key == ops.ID {
			k = ops.Public()
		}
		need, _ := Needs("demo-01", c.Name)
		if !ed25519.Verify(k.Key, Canonical(c), c.Sig) || c.To != "demo-01" || rank(c.Role) < rank(need) || rank(c.Role) > rank(k.Role) {
			t.Fatalf("accepted %s", b)
		}
	})
}

// A flood of unsigned commands — anybody on the network can send them —
// writes O(1) log lines: the first, then one summary with the count. Each
// refusal is counted by code, and a refusal of another code is still
// logged at once.
func TestRefusalFloodLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	v := NewVerifier("demo-01", []PublicKey{tech.Public()}, memReplay{})
	now := t0
	v.now = func() time.Time { return now }
	var pending []func()
	v.after = func(_ time.Duration, f func()) { pending = append(pending, f) }
	const n = 1000
	for i := range n {
		c := &protocol.Command{V: 1, ID: fmt.Sprintf("flood%012d", i), Name: "ping"}
		if r := Authorize(v, c, log); r == nil || r.Code != CodeUnsigned {
			t.Fatalf("unsigned %d: %+v", i, r)
		}
	}
	forged := signed(t, other, "demo-01", "0123456789abcdef", "ping", "", nil, t0, time.Minute)
	if r := Authorize(v, forged, log); r == nil || r.Code != CodeBadSignature {
		t.Fatalf("forged: %+v", r)
	}
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	if l := lines(); len(l) != 2 || !strings.Contains(l[0], "code=unsigned") || !strings.Contains(l[1], "code=bad_signature") {
		t.Fatalf("%d refusals wrote %d lines, want 2:\n%s", n+1, len(l), buf.String())
	}
	if len(pending) != 1 {
		t.Fatalf("%d summaries scheduled, want 1", len(pending))
	}
	now = now.Add(LogEvery)
	pending[0]()
	if l := lines(); len(l) != 3 || !strings.Contains(l[2], "code=unsigned count=999") {
		t.Fatalf("summary:\n%s", buf.String())
	}
	if got := v.Refused(); len(got) != 2 || got[CodeUnsigned] != n || got[CodeBadSignature] != 1 {
		t.Fatalf("Refused() = %v", got)
	}
}

// SetKeys (console_keys changed live) trusts the new set at once: a key
// added is obeyed, a key removed refused.
func TestSetKeys(t *testing.T) {
	v := NewVerifier("t1", []PublicKey{tech.Public()}, memReplay{})
	byOps := signed(t, ops, "t1", "0123456789abcdef01", "config_set", Ops, nil, time.Now(), time.Minute)
	if c := code(v.Verify(byOps)); c != CodeUnknownKey {
		t.Fatalf("before SetKeys: %q, want %s", c, CodeUnknownKey)
	}
	v.SetKeys([]PublicKey{ops.Public()})
	if err := v.Verify(byOps); err != nil || v.Keys() != 1 {
		t.Fatalf("after SetKeys: %v (%d keys)", err, v.Keys())
	}
	byTech := signed(t, tech, "t1", "0123456789abcdef02", "ping", Technician, nil, time.Now(), time.Minute)
	if c := code(v.Verify(byTech)); c != CodeUnknownKey {
		t.Fatalf("a removed key: %q, want %s", c, CodeUnknownKey)
	}
}

// A command refused before its signature was verified is anybody's text:
// its id is free, its key has a totem id's syntax (a codice fiscale fits)
// and its name and role lower-case letters. The log line and the reply name
// those fields only where the receiver knows the value (a command of its
// table, a key it trusts, a role), otherwise their length; a refusal after
// the signature (a trusted key vouched for the fields) names them all.
func TestUnvouchedRefusalQuotesNoInput(t *testing.T) {
	const cf, name = "RSSMRA80A01H501U", "ROSSI MARIO"
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	v := NewVerifier("demo-01", []PublicKey{tech.Public()}, memReplay{})
	forged := signed(t, other, "demo-01", name+" "+cf, "ping", "", nil, t0, time.Minute) // tech-1's id, another key
	foreign := testKey(cf, Ops, 5)
	for i, c := range []*protocol.Command{
		{V: 1, ID: name + " " + cf, Name: "rssmra80a01h501u"},                                          // unsigned
		{V: 1, ID: cf, Name: "ping", Key: cf, Role: "rossi", Sig: make([]byte, ed25519.SignatureSize)}, // unknown key
		signed(t, foreign, "demo-01", cf+"-"+name, "status", "", nil, t0, time.Minute),                 // unknown key, signed
		forged, // bad signature
	} {
		r := Authorize(v, c, log)
		if r == nil || Vouched(r.Code) {
			t.Fatalf("command %d: %+v, want a refusal before the signature", i, r)
		}
		for _, p := range []string{cf, name, "rssmra80a01h501u", "rossi"} {
			if strings.Contains(r.Error, p) {
				t.Errorf("reply %q quotes the command's %q", r.Error, p)
			}
		}
		v.logged = map[string]time.Time{} // every refusal logged
	}
	for _, p := range []string{cf, name, "rssmra80a01h501u", "role=rossi"} {
		if strings.Contains(buf.String(), p) {
			t.Errorf("log quotes the command's %q:\n%s", p, buf.String())
		}
	}
	// Known values stay: the command's name, the trusted key, the role.
	if !strings.Contains(buf.String(), "name=ping") || !strings.Contains(buf.String(), "key=tech-1") {
		t.Errorf("log lost the known values:\n%s", buf.String())
	}
	// Vouched by a trusted key: every field named.
	buf.Reset()
	late := signed(t, tech, "demo-02", "0123456789abcdef", "ping", "", nil, t0, time.Minute)
	if r := Authorize(v, late, log); r == nil || r.Code != CodeWrongTarget || !Vouched(r.Code) {
		t.Fatalf("wrong target: %+v", r)
	}
	if !strings.Contains(buf.String(), "id=0123456789abcdef") {
		t.Errorf("a vouched refusal's id not logged:\n%s", buf.String())
	}
	// Redact, for the audit records of refusals, keeps as much.
	c := &protocol.Command{ID: cf, Name: "ping", Key: cf, Role: Ops}
	if n, id, k, r := Redact(c, CodeUnknownKey); n != "ping" || id != "<16 bytes>" || k != "<16 bytes>" || r != Ops {
		t.Errorf("Redact(unknown_key) = %q %q %q %q", n, id, k, r)
	}
	if n, id, k, r := Redact(c, CodeReplayed); n != c.Name || id != c.ID || k != c.Key || r != c.Role {
		t.Errorf("Redact(replayed) = %q %q %q %q", n, id, k, r)
	}
}
