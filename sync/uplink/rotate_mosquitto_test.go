package uplink

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/dynsec"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// TestRotationSurvivesACrashAtEveryStepOnMosquitto is
// TestRotationSurvivesACrashAtEveryStep with a hub on Debian's mosquitto
// driving its dynamic-security plugin (sync/dynsec), which keeps one
// secret per user: a rotation killed at each step, in particular after
// the hub's reply and before the totem saved the new secret ("replied"),
// never leaves the totem unable to log in; a rotation that runs through
// gives the totem the new secret under its other username, and the old
// one is refused by mosquitto once the totem was seen with the new one.
func TestRotationSurvivesACrashAtEveryStepOnMosquitto(t *testing.T) {
	mq := synctest.StartMosquitto(t)
	dir := t.TempDir()
	logs := new(synctest.Log)
	log := slog.New(slog.NewTextHandler(logs, nil))
	reg, err := broker.OpenRegistry(filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	dc, err := dynsec.New(dynsec.Options{URL: mq.URL(), Username: mq.AdminUser, Password: mq.AdminPassword, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	mir := dynsec.NewMirror(reg, dc, log)
	if mir.Given, err = dynsec.OpenGiven(filepath.Join(dir, "dynsec.db")); err != nil {
		t.Fatal(err)
	}
	defer mir.Given.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := dynsec.Sync(ctx, dc, reg, "", mir.Given); err != nil {
		t.Fatal(err)
	}
	store := &creds.Store{Path: filepath.Join(dir, "creds", totem+".json")}
	first, err := mir.Provision(totem, creds.RoleTotem, store.Path)
	if err != nil {
		t.Fatal(err)
	}
	me, err := mir.Provision("hub-rot", creds.RoleHub, filepath.Join(dir, "creds", "hub-rot.json"))
	if err != nil {
		t.Fatal(err)
	}
	store0, err := refcms.Open(filepath.Join(dir, "cms.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store0.Close()
	h := hub.New(hub.Options{URL: mq.URL(), ClientID: "hub-rot-1", Username: me.Username, Password: me.Password,
		Accounts: mir, Logger: log, Backend: store0})
	hctx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan struct{})
	go func() { h.Run(hctx); close(hubDone) }()
	defer func() { stopHub(); <-hubDone; mir.Wait() }()
	if err := h.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the subscriptions follow the connection
	box := openBox(t, dir)
	rot := rotator{t: t, ctx: ctx, url: mq.URL(), box: box, log: log, store: store}
	rot.crashAtEveryStep(func(u *Uplink, step string, died <-chan struct{}) {
		select {
		case <-died:
		case <-time.After(20 * time.Second):
			f, _ := store.Load()
			t.Fatalf("the rotation never reached %s (connected: %v; the file's secret, of %s, refused?)", step, u.Connected(), f.Username)
		}
	}, func(u *Uplink, what string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !u.Connected(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				f, _ := store.Load()
				t.Fatalf("%s: the totem cannot log in to mosquitto as %s", what, f.Username)
			}
		}
	})
	// Died after saving: the file names the other username, which
	// `totemd credentials test` uses with the totem's client id.
	f, _ := store.Load()
	if f.Username != totem+protocol.AltUsernameSuffix {
		t.Fatalf("after a death once saved, the file names %s", f.Username)
	}
	if r := TestCredentials(ctx, TestOptions{URL: mq.URL(), Creds: f}); !r.OK || r.Totem != totem {
		t.Errorf("credentials test of the other username: %s", r.Verdict)
	}

	before, _ := store.Load()
	u, _, stop := rot.start(true, "")
	var after creds.File
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		after, err = store.Load()
		if err == nil && after.Password != before.Password && u.Connected() && time.Until(after.Expires) > 89*24*time.Hour {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation:\n%s", tail(logs.String()))
		}
	}
	if after.Username != protocol.OtherUsername(before.Username) {
		t.Fatalf("rotated from username %s to %s, want the other one", before.Username, after.Username)
	}
	// Seen online as the new user: the registry confirms and mosquitto
	// refuses the old one.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		user, _, _ := reg.Get(totem)
		if match, _ := creds.Verify(user.Hash, after.Password); user.Next == "" && match {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotation was never confirmed:\n%s", tail(logs.String()))
		}
	}
	stop()
	mir.Wait()
	if code := connack(t, mq.Addr, totem, before.Username, before.Password); code == 0 {
		t.Error("mosquitto still accepts the old credentials after the confirmation")
	}
	if code := connack(t, mq.Addr, totem, after.Username, after.Password); code != 0 {
		t.Errorf("mosquitto refuses the new credentials: 0x%02X", code)
	}
	l := logs.String()
	for _, p := range []string{first.Password, before.Password, after.Password} {
		if strings.Contains(l, p) {
			t.Error("a secret is in the logs")
		}
	}
}

// connack is the CONNACK reason code mosquitto at addr answers a login.
func connack(t *testing.T, addr, clientID, username, password string) byte {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(nc)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: username, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		nc.Close()
		if ca == nil {
			t.Fatalf("connect: %v", err)
		}
		return ca.ReasonCode
	}
	_ = cl.Disconnect(&paho.Disconnect{})
	<-cl.Done()
	return 0
}

// tail is the end of a log, for a failure's message.
func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
