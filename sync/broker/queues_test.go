package broker

import (
	"bytes"
	"reflect"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// connectBytes is a whole CONNECT as paho writes it.
func connectBytes(t testing.TB, user string) []byte {
	var b bytes.Buffer
	c := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "c", KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: user != "", Password: []byte("secret"), PasswordFlag: true}
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// queueCap is the capacity of the write queue mochi gave client id, read
// by reflection: mochi keeps it unexported.
func queueCap(t *testing.T, f *fleet, id string) int {
	t.Helper()
	cl, ok := f.srv.mq.Clients.Get(id)
	if !ok {
		t.Fatalf("client %s not connected", id)
	}
	return reflect.ValueOf(cl).Elem().FieldByName("State").FieldByName("outbound").Cap()
}

// Each client's write queue has its role's size: a hub's holds the
// fleet's operations in flight, a totem's or console's costs 2 KiB, not
// mochi's 64 KiB. Clients connecting at once on both listeners' paths
// each get their own role's size (the sizing lock, under -race), and a
// stranger naming the hub with a wrong password is refused.
func TestWriteQueueSizes(t *testing.T) {
	f := startFleet(t, 0)
	var wg sync.WaitGroup
	for range 5 {
		for _, u := range []struct{ id, user string }{{"A", "A"}, {"hub-q", "hub-1"}, {"console-q", "C1"}} {
			wg.Go(func() {
				c := f.login(t, u.id, u.user)
				want := clientWritesPending
				if u.user == "hub-1" {
					want = hubWritesPending
				}
				if got := queueCap(t, f, u.id); got != want {
					t.Errorf("%s: write queue %d, want %d", u.user, got, want)
				}
				_ = c.Disconnect(&paho.Disconnect{})
			})
		}
		wg.Wait()
	}
	_, ca, err := connectRaw(t, f.srv.Addr(), &paho.Connect{ClientID: "hub-x", KeepAlive: 30, Username: "hub-1", UsernameFlag: true,
		Password: []byte("wrong"), PasswordFlag: true})
	if err == nil || ca == nil || ca.ReasonCode != codeBadCredentials {
		t.Errorf("hub name with a wrong password: %v %+v", err, ca)
	}
}

func TestConnectUsername(t *testing.T) {
	whole := connectBytes(t, "hub-1")
	for _, tc := range []struct {
		name string
		p    []byte
		user string
		ok   bool
	}{
		{"connect", whole, "hub-1", true},
		{"no username", connectBytes(t, ""), "", false},
		{"one byte short", whole[:len(whole)-1], "", false},
		{"empty", nil, "", false},
		{"truncated", []byte{0x10, 0x05, 0x00}, "", false},
		{"long length", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, "", false},
		{"not connect body", []byte{0x10, 0x02, 0x00, 0x00}, "", false},
	} {
		if u, ok := connectUsername(tc.p); u != tc.user || ok != tc.ok {
			t.Errorf("%s: %q %v", tc.name, u, ok)
		}
	}
}

func FuzzConnectUsername(f *testing.F) {
	f.Add(connectBytes(f, "hub-1"))
	f.Fuzz(func(t *testing.T, p []byte) {
		connectUsername(p) // must not panic nor loop
	})
}
