package hub_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/paho"
)

// heldLedger is the reference CMS whose Ledger waits for release: the
// ledger requests being answered stay in their slots.
type heldLedger struct {
	*refcms.Store
	release chan struct{}
	entered chan struct{}
}

func (s *heldLedger) Ledger(totem string, from uint64, max int) (uint64, []cms.LedgerEntry, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.Store.Ledger(totem, from, max)
}

// A totem flooding its sync topic while the hub's answers are slow takes
// no slot from the consoles: every console command is answered, the
// floods' excess is counted and not logged. With one pool for both, the
// resync requests held all four slots and the commands were dropped.
func TestSyncFloodLeavesConsoleCommands(t *testing.T) {
	ctx, c := startCentral(t, 60*time.Second, consoleUser("ops"), totemUser("t-flood"))
	backend := &heldLedger{Store: c.CMS, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	var logs synctest.Log
	ck := newConsoleKeys(t)
	released := false
	release := func() {
		if !released {
			released = true
			close(backend.release)
		}
	}
	defer release() // before the hub stops (its cleanup): Run waits for the held answers
	h := c.StartHub(hub.Options{Backend: backend, Verifier: ck.verifier, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	ledgers := make(chan *paho.Publish, 64)
	tcm := client(ctx, t, c.URL(), c.Creds("t-flood"), "t-flood", ledgers, protocol.Topic("t-flood", protocol.LeafLedger))
	const flood = 40
	for i := range flood {
		b, _ := protocol.Marshal(protocol.LedgerRequest{V: 1, ID: "sync-" + string(rune('a'+i%26)), From: 1, Max: 16})
		publish(ctx, t, tcm, protocol.Topic("t-flood", protocol.LeafSync), b)
	}
	select {
	case <-backend.entered:
	case <-ctx.Done():
		t.Fatal("no ledger request reached the backend")
	}

	con := dialConsole(ctx, t, c.URL(), c.Creds("ops"), "ops-f")
	const commands = 5
	answered := 0
	for range commands {
		con.send(t, ck.command(t, ck.tech, "sendlog", map[string]string{"max": "5"}), "", "c")
		if r, _ := con.reply(t, 3*time.Second); r != nil && r.OK {
			answered++
		}
	}
	if answered != commands {
		t.Fatalf("%d of %d console commands answered during the sync flood", answered, commands)
	}
	if d := h.Stats().SyncDropped.Load(); d < flood-syncAllowed {
		t.Fatalf("%d sync requests counted as dropped, want at least %d", d, flood-syncAllowed)
	}
	release()
	// The two requests answered get their ledgers (before the hub stops:
	// a reply in flight at Run's end waits for its timeout).
	for range 2 {
		select {
		case <-ledgers:
		case <-ctx.Done():
			t.Fatal("the requests being answered got no ledger")
		}
	}
	if s := logs.String(); strings.Contains(s, "dropped") {
		t.Fatalf("drops logged:\n%s", s)
	}
}

// syncAllowed is at most how many of a burst of sync requests the hub
// takes while none is answered: its pool's slots and a totem's burst.
const syncAllowed = 2 + 8
