package dynsec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
	"github.com/aslcns/totem/sync/hub"
)

// The reason codes a test client sees.
const (
	accepted      = 0x00
	noSubscribers = 0x10
	notAuthorized = 0x87 // mosquitto's answer to a disabled client and to an ACL refusal
	granted1      = 0x01
)

var (
	_ hub.Accounts          = (*Mirror)(nil)
	_ hub.Enroller          = (*Mirror)(nil)
	_ hub.RotationCommitter = (*Mirror)(nil)
	_ hub.Locker            = (*Mirror)(nil)
)

func rig(t *testing.T) (*mosq, *Mirror, string) {
	t.Helper()
	m := startMosquitto(t)
	dir := t.TempDir()
	reg, err := broker.OpenRegistry(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	mir := NewMirror(reg, m.admin(t), nil)
	if mir.Given, err = OpenGiven(filepath.Join(dir, "dynsec.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mir.Given.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Sync(ctx, mir.C, reg, dir, mir.Given); err != nil {
		t.Fatal(err)
	}
	return m, mir, dir
}

func ok(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

// twoTotems is the rig with totems T1 and T2 provisioned (their files
// in dir); f is T1's.
func twoTotems(t *testing.T) (m *mosq, mir *Mirror, dir string, f creds.File) {
	t.Helper()
	m, mir, dir = rig(t)
	f, err := mir.Provision("T1", creds.RoleTotem, filepath.Join(dir, "T1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mir.Provision("T2", creds.RoleTotem, filepath.Join(dir, "T2.json")); err != nil {
		t.Fatal(err)
	}
	return m, mir, dir, f
}

// TestTotemLifecycleOnMosquitto: a totem the hub provisions logs in to
// mosquitto with its file's credentials, only within its own topics; it
// is refused while locked and let in after the unlock; after a rotation
// the new secret works and, once the broker has it, the old one is
// refused.
func TestTotemLifecycleOnMosquitto(t *testing.T) {
	m, mir, _, f := twoTotems(t)
	code, c := m.login(t, "T1", "T1", f.Password)
	ok(t, code == accepted, "provisioned totem refused: 0x%02X", code)
	ok(t, c.publish("totem/v1/T1/op") == noSubscribers, "own op refused")
	ok(t, c.publish("totem/v1/T2/op") == notAuthorized, "another totem's op allowed")
	ok(t, c.publish("totem/v1/T2/state") == notAuthorized, "another totem's state allowed")
	ok(t, c.subscribe("totem/v1/T1/result") == granted1, "own result refused")
	ok(t, c.subscribe("totem/v1/T2/result") == notAuthorized, "another totem's result allowed")
	ok(t, c.subscribe("totem/v1/+/result") == notAuthorized, "wildcard allowed to a totem")
	code, _ = m.login(t, "other-id", "T1", f.Password)
	ok(t, code != accepted, "a totem logged in under another client id")
	code, _ = m.login(t, "T1", "T1", "not-the-secret")
	ok(t, code != accepted, "a wrong secret accepted")

	// Lock: the connection ends and the secret is refused; unlock.
	if err := mir.LockUser("T1", "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	ok(t, !c.alive(), "a locked totem kept its connection")
	code, _ = m.login(t, "T1", "T1", f.Password)
	ok(t, code == notAuthorized, "locked totem: 0x%02X, want 0x87", code)
	if _, was, err := mir.Unlock("T1"); err != nil || !was {
		t.Fatalf("unlock: %v %v", was, err)
	}
	code, _ = m.login(t, "T1", "T1", f.Password)
	ok(t, code == accepted, "unlocked totem refused: 0x%02X", code)

	// Rotation: recorded (the broker keeps the old secret while the
	// reply goes out), then committed.
	next := "a-new-secret-of-more-than-32-characters-0123456789"
	if _, _, err := mir.Rotate("T1", next, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, c = m.login(t, "T1", "T1", f.Password)
	ok(t, code == accepted, "old secret refused before the reply went out: 0x%02X", code)
	if err := mir.CommitRotation("T1", time.Now()); err != nil {
		t.Fatal(err)
	}
	ok(t, !c.alive(), "the connection with the old secret survived the commit")
	code, _ = m.login(t, "T1", "T1", next)
	ok(t, code == accepted, "rotated secret refused: 0x%02X", code)
	code, _ = m.login(t, "T1", "T1", f.Password)
	ok(t, code != accepted, "old secret still accepted after the rotation's confirmation")
	u, _, _ := mir.Reg.Get("T1")
	ok(t, u.Next == "", "the registry still has the rotation pending")
	if match, _ := creds.Verify(u.Hash, next); !match {
		t.Fatal("the registry's secret is not the rotated one")
	}
	if err := mir.CommitRotation("T1", time.Now()); err == nil {
		t.Fatal("a second commit of one rotation succeeded")
	}
}

// TestSyncIdempotent: Sync creates what the plugin misses, with the secret
// of credentials files that hold the current one, disables locked users,
// and a second Sync changes nothing.
func TestSyncIdempotent(t *testing.T) {
	m, mir, dir := rig(t)
	reg := mir.Reg
	// Registered while the plugin was not told.
	f, err := reg.Provision("T3", creds.RoleTotem, filepath.Join(dir, "T3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Provision("T4", creds.RoleTotem, filepath.Join(dir, "T4.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Provision("T5", creds.RoleTotem, filepath.Join(t.TempDir(), "T5.json")); err != nil {
		t.Fatal(err)
	}
	if err := reg.LockUser("T4", "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := Sync(ctx, mir.C, reg, dir, mir.Given)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, len(rep.Created) == 3 && len(rep.NoSecret) == 1 && rep.NoSecret[0] == "T5", "report %+v", rep)
	ok(t, len(rep.Disabled) == 1 && rep.Disabled[0] == "T4", "report %+v", rep)
	code, _ := m.login(t, "T3", "T3", f.Password)
	ok(t, code == accepted, "synced totem refused: 0x%02X", code)
	f4, _ := creds.Load(filepath.Join(dir, "T4.json"))
	code, _ = m.login(t, "T4", "T4", f4.Password)
	ok(t, code == notAuthorized, "a totem locked in the registry logged in: 0x%02X", code)

	rep, err = Sync(ctx, mir.C, reg, dir, mir.Given)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, len(rep.Created) == 0 && len(rep.Secrets) == 0 && rep.Updated == 3, "second sync: %+v", rep)
	code, _ = m.login(t, "T3", "T3", f.Password)
	ok(t, code == accepted, "second sync broke a secret: 0x%02X", code)
	if _, _, err := reg.Unlock("T4"); err != nil {
		t.Fatal(err)
	}
	if _, err := Sync(ctx, mir.C, reg, dir, mir.Given); err != nil {
		t.Fatal(err)
	}
	code, _ = m.login(t, "T4", "T4", f4.Password)
	ok(t, code == accepted, "unlocked in the registry, still disabled: 0x%02X", code)

	// Provisioned again while the plugin was not told (the hub stopped,
	// the file lost): the next Sync gives the new secret, once.
	os.Remove(filepath.Join(dir, "T3.json"))
	f3, err := reg.Provision("T3", creds.RoleTotem, filepath.Join(dir, "T3.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, c3 := m.login(t, "T3", "T3", f.Password)
	ok(t, c3 != nil, "old secret refused before the sync")
	rep, err = Sync(ctx, mir.C, reg, dir, mir.Given)
	ok(t, err == nil && len(rep.Secrets) == 1 && rep.Secrets[0] == "T3", "sync after a new secret: %+v %v", rep, err)
	code, _ = m.login(t, "T3", "T3", f3.Password)
	ok(t, code == accepted, "new secret refused after the sync: 0x%02X", code)
	code, _ = m.login(t, "T3", "T3", f.Password)
	ok(t, code != accepted, "old secret accepted after the sync")
	_, c3 = m.login(t, "T3", "T3", f3.Password)
	rep, err = Sync(ctx, mir.C, reg, dir, mir.Given)
	ok(t, err == nil && len(rep.Secrets) == 0, "sync again: %+v %v", rep, err)
	ok(t, c3.alive(), "a sync with nothing changed ended a connection")
}

// TestRolesOnMosquitto: the hub's, a console's and the enroll user's ACL
// as the plugin applies them.
func TestRolesOnMosquitto(t *testing.T) {
	m, mir, dir := rig(t)
	h, err := mir.Provision("hub-b", creds.RoleHub, filepath.Join(dir, "hub-b.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, hc := m.login(t, "totemhub-x1", "hub-b", h.Password)
	ok(t, code == accepted, "hub refused: 0x%02X", code)
	// totem/v1/T1/op: a partitioned hub's per-totem subscription.
	for _, f := range []string{"$share/totemhub/totem/v1/+/op", "totem/v1/+/state", "$share/totemhub/totemhub/v1/cmd", enroll.RequestFilter,
		"totem/v1/T1/op"} {
		ok(t, hc.subscribe(f) == granted1, "hub: %s refused", f)
	}
	ok(t, hc.subscribe("totem/v1/#") == notAuthorized, "hub: # allowed")
	ok(t, hc.publish("totem/v1/T1/result") == noSubscribers, "hub: result refused")
	ok(t, hc.publish("totem/v1/T1/op") == notAuthorized, "hub: publishing a totem's op allowed")

	con, err := mir.Provision("C1", creds.RoleConsole, filepath.Join(dir, "C1.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, cc := m.login(t, "c1-x", "C1", con.Password)
	ok(t, cc.subscribe("totem/v1/+/reply/C1") == granted1, "console: own replies refused")
	ok(t, cc.subscribe("totem/v1/+/reply/C2") == notAuthorized, "console: another console's replies allowed")
	ok(t, cc.subscribe("totem/v1/+/op") == notAuthorized, "console: operations allowed")
	ok(t, cc.publish("totem/v1/T1/cmd") == noSubscribers, "console: cmd refused")
	ok(t, cc.publish("totem/v1/T1/result") == notAuthorized, "console: result allowed")

	_, ec := m.login(t, enroll.ClientID("abcdefghijklmnop"), enroll.Username, enroll.Password)
	ok(t, ec.subscribe(enroll.ReplyTopic("abcdefghijklmnop")) == granted1, "enroll: its reply refused")
	ok(t, ec.subscribe(enroll.ReplyTopic("+")) == notAuthorized, "enroll: every reply (credentials) allowed")
	ok(t, ec.publish("totem/v1/T1/op") == notAuthorized, "enroll: op allowed")

	// Enrollment through the mirror gives the broker the credentials.
	code2, _, err := mir.Enroll("T9", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := enroll.ParseCode(code2)
	f, err := mir.Redeem("T9", norm, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	code, _ = m.login(t, "T9", "T9", f.Password)
	ok(t, code == accepted, "enrolled totem refused: 0x%02X", code)
}

// TestClientErrors: the plugin's reason comes back as an *Error, a wrong
// admin secret and a broker that never answers are errors in bounded time.
func TestClientErrors(t *testing.T) {
	m := startMosquitto(t)
	c := m.admin(t)
	ctx := context.Background()
	_, err := c.Do(ctx, Command{"command": "createRole", "rolename": "r1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(ctx, Command{"command": "createRole", "rolename": "r1"})
	ok(t, Is(err, ReasonRoleExists), "createRole twice: %v", err)
	_, err = c.Do(ctx, Command{"command": "noSuchCommand"})
	ok(t, err != nil, "an unknown command was accepted")

	bad, _ := New(Options{URL: m.url(), Username: adminUser, Password: "wrong", Timeout: 2 * time.Second})
	defer bad.Close()
	_, err = bad.Do(ctx, Command{"command": "listClients"})
	ok(t, errors.Is(err, ErrAdminRefused), "a wrong admin secret: %v", err)

	// A totem may not use $CONTROL: the plugin never answers it.
	reg, _ := broker.OpenRegistry(filepath.Join(t.TempDir(), "fleet.db"))
	defer reg.Close()
	mir := NewMirror(reg, c, nil)
	f, err := mir.Provision("T1", creds.RoleTotem, filepath.Join(t.TempDir(), "T1.json"))
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := New(Options{URL: m.url(), Username: "T1", Password: f.Password, ClientID: "T1", Timeout: time.Second})
	defer tc.Close()
	start := time.Now()
	_, err = tc.Do(ctx, Command{"command": "listClients"})
	ok(t, err != nil, "a totem drove the plugin")
	ok(t, time.Since(start) < 10*time.Second, "not bounded")
}

// TestRotationOverlapOnMosquitto: a rotation gives the new secret to the
// totem's other username and leaves the old user as it is, so a totem
// that died before it saved the new secret (or never read the reply)
// still logs in with the old one and rotates again; lock and unlock reach
// both usernames while they overlap; the old user goes once the totem is
// seen online as the new one, or once the old secret expired; the next
// rotation alternates back; Sync keeps a pending rotation's user across
// a restart and deletes a stale one; an enrollment ends the other
// username.
func TestRotationOverlapOnMosquitto(t *testing.T) {
	m, mir, dir, f := twoTotems(t)
	login := func(user, pw string) byte {
		t.Helper()
		code, c := m.login(t, "T1", user, pw)
		if c != nil {
			c.close()
		}
		return code
	}
	_, c := m.login(t, "T1", "T1", f.Password)
	next1 := "first-rotated-secret-0123456789-0123456789"
	_, _, user, err := mir.RotateUser("T1", "T1", next1, time.Now())
	ok(t, err == nil && user == "T1.b", "rotate: %q %v", user, err)
	ok(t, c.alive(), "the rotation ended the connection of the old secret")
	c.close()
	// The totem died before saving: the old secret still logs in.
	ok(t, login("T1", f.Password) == accepted, "old secret refused after the rotation's reply (one-step)")
	ok(t, login("T1.b", next1) == accepted, "new secret refused under the new username")
	code, _ := m.login(t, "other-id", "T1.b", next1)
	ok(t, code != accepted, "the new username logged in under another client id")
	_, nc := m.login(t, "T1", "T1.b", next1)
	ok(t, nc.publish("totem/v1/T1/op") == noSubscribers, "new username: own op refused")
	ok(t, nc.publish("totem/v1/T2/op") == notAuthorized, "new username: another totem's op allowed")
	ok(t, nc.subscribe("totem/v1/T1/rotated") == granted1, "new username: own rotated refused")
	nc.close()

	// It rotates again from the old secret: the pending one is replaced.
	next2 := "second-rotated-secret-0123456789-0123456789"
	_, _, user, err = mir.RotateUser("T1", "T1", next2, time.Now())
	ok(t, err == nil && user == "T1.b", "rotate again: %q %v", user, err)
	ok(t, login("T1.b", next1) != accepted, "a replaced pending secret still accepted")
	ok(t, login("T1", f.Password) == accepted, "old secret refused after a second rotation")

	// A hub restart meanwhile: Sync keeps both.
	rep, err := Sync(context.Background(), mir.C, mir.Reg, dir, mir.Given)
	ok(t, err == nil && len(rep.Deleted) == 0 && len(rep.Secrets) == 0, "sync during the overlap: %+v %v", rep, err)
	ok(t, login("T1", f.Password) == accepted && login("T1.b", next2) == accepted, "sync during the overlap ended a username")

	// Locked, both usernames are refused and their connections end.
	_, c = m.login(t, "T1", "T1", f.Password)
	if err := mir.LockUser("T1", "ops", time.Now()); err != nil {
		t.Fatal(err)
	}
	ok(t, !c.alive(), "a locked totem kept its connection")
	ok(t, login("T1", f.Password) == notAuthorized, "locked: the old username logged in")
	ok(t, login("T1.b", next2) == notAuthorized, "locked: the new username logged in")
	if _, was, err := mir.Unlock("T1"); err != nil || !was {
		t.Fatalf("unlock: %v %v", was, err)
	}
	ok(t, login("T1", f.Password) == accepted && login("T1.b", next2) == accepted, "unlocked: a username still refused")

	// Seen online as its old user: nothing ends; as the new one: the old
	// user goes and the registry confirms.
	mir.SeenAs("T1", "T1")
	mir.Wait()
	ok(t, login("T1", f.Password) == accepted, "seen as the old user: the old secret ended")
	_, nc = m.login(t, "T1", "T1.b", next2)
	mir.SeenAs("T1", "T1.b")
	mir.Wait()
	ok(t, login("T1", f.Password) == notAuthorized, "the old username still logs in after the totem was seen as the new one")
	ok(t, nc.alive(), "the confirmation ended the new username's connection")
	nc.close()
	ok(t, login("T1.b", next2) == accepted, "the new username refused after the confirmation")
	u, _, _ := mir.Reg.Get("T1")
	match, _ := creds.Verify(u.Hash, next2)
	ok(t, u.Next == "" && match, "the registry did not confirm the rotation")

	// The next rotation alternates back to the id; its overlap ends
	// when the old secret expires without the totem seen as the new user.
	next3 := "third-rotated-secret-0123456789-0123456789"
	_, _, user, err = mir.RotateUser("T1", "T1.b", next3, time.Now())
	ok(t, err == nil && user == "T1", "rotate back: %q %v", user, err)
	ok(t, login("T1", next3) == accepted && login("T1.b", next2) == accepted, "rotation back: a username refused")
	u, _, _ = mir.Reg.Get("T1")
	done, err := mir.ExpireOverlaps(u.Expires.Add(-time.Minute))
	ok(t, err == nil && len(done) == 0, "overlap ended before the old secret's expiry: %v %v", done, err)
	ok(t, login("T1.b", next2) == accepted, "overlap ended before the old secret's expiry")
	done, err = mir.ExpireOverlaps(u.Expires.Add(time.Second))
	ok(t, err == nil && len(done) == 1 && done[0] == "T1", "overlap expiry: %v %v", done, err)
	ok(t, login("T1.b", next2) == notAuthorized, "the old username logs in after its secret expired")
	ok(t, login("T1", next3) == accepted, "the new secret refused after the overlap")
	u, _, _ = mir.Reg.Get("T1")
	match, _ = creds.Verify(u.Hash, next3)
	ok(t, u.Next == "" && match, "the registry did not confirm the rotation at the overlap's end")

	// A rotation left pending, then the plugin misses the confirmation
	// (the hub stopped): Sync deletes the username whose secret the
	// registry no longer knows.
	next4 := "fourth-rotated-secret-0123456789-0123456789"
	if _, _, user, err = mir.RotateUser("T1", "T1", next4, time.Now()); err != nil || user != "T1.b" {
		t.Fatalf("rotate: %q %v", user, err)
	}
	if _, err := mir.Reg.ConfirmRotation("T1", time.Now()); err != nil { // as a confirmation lost halfway
		t.Fatal(err)
	}
	rep, err = Sync(context.Background(), mir.C, mir.Reg, dir, mir.Given)
	ok(t, err == nil && len(rep.Deleted) == 1 && rep.Deleted[0] == "T1", "sync after a confirmation: %+v %v", rep, err)
	ok(t, login("T1", next3) == notAuthorized && login("T1.b", next4) == accepted, "sync after a confirmation")

	// A firmware gone back to a version that names no username rotates
	// in one step: the secret goes to the username it logs in with.
	legacy := "legacy-rotated-secret-0123456789-0123456789"
	if _, _, err := mir.Rotate("T1", legacy, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := mir.CommitRotation("T1", time.Now()); err != nil {
		t.Fatal(err)
	}
	ok(t, login("T1.b", legacy) == accepted && login("T1.b", next4) != accepted, "one-step rotation of the .b username")
	_, found, err := mir.C.GetClient(context.Background(), "T1")
	ok(t, err == nil && !found, "a one-step rotation of the .b username created the id's: %v", err)

	// Enrolled again: the credentials name the id, the other username goes.
	code2, _, err := mir.Enroll("T1", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := enroll.ParseCode(code2)
	ef, err := mir.Redeem("T1", norm, time.Now())
	ok(t, err == nil && ef.Username == "T1", "redeem: %+v %v", ef.Username, err)
	ok(t, login("T1", ef.Password) == accepted, "enrolled secret refused")
	ok(t, login("T1.b", legacy) == notAuthorized, "the other username survived an enrollment")
	_, found, err = mir.C.GetClient(context.Background(), "T1.b")
	ok(t, err == nil && !found, "the other username is still in the plugin: %v", err)

	// A rotation asked from the username of a pending one (its birth
	// not seen yet) confirms that one first, then alternates back.
	next5, next6 := "fifth-rotated-secret-0123456789-0123456789", "sixth-rotated-secret-0123456789-0123456789"
	if _, _, user, err = mir.RotateUser("T1", "T1", next5, time.Now()); err != nil || user != "T1.b" {
		t.Fatalf("rotate: %q %v", user, err)
	}
	if _, _, user, err = mir.RotateUser("T1", "T1.b", next6, time.Now()); err != nil || user != "T1" {
		t.Fatalf("rotate from the pending username: %q %v", user, err)
	}
	ok(t, login("T1", ef.Password) == notAuthorized, "the enrolled secret survived two rotations")
	ok(t, login("T1.b", next5) == accepted && login("T1", next6) == accepted, "after a rotation from the pending username")
	u, _, _ = mir.Reg.Get("T1")
	match, _ = creds.Verify(u.Hash, next5)
	match6, _ := creds.Verify(u.Next, next6)
	ok(t, match && match6, "the registry after a rotation from the pending username")
}
