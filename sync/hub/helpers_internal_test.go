package hub

import (
	"path/filepath"
	"testing"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
)

// embedded starts the embedded broker with the hub's user and opens the
// reference CMS seeded with the demo cards, both closed when the test
// ends, and returns a hub's Options on them (client id hub-s). The
// package's own tests cannot use synctest, which imports the package.
func embedded(t *testing.T) Options {
	t.Helper()
	hubMe, _ := creds.Generate("totemhub", creds.RoleHub)
	users := broker.NewUsers(nil)
	if err := users.Add(hubMe); err != nil {
		t.Fatal(err)
	}
	srv, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", Auth: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	store, err := refcms.Open(filepath.Join(t.TempDir(), "cms.db"), &refcms.Options{Seed: cms.DemoCards()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return Options{URL: srv.URL(), ClientID: "hub-s", Username: hubMe.Username, Password: hubMe.Password, Backend: store}
}
