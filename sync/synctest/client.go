package synctest

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aslcns/totem/sync/creds"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Dial connects an MQTT 5 client to brokerURL as user f with client id id
// ("" is f's username with "-c": a totem may connect only with its own
// id, a hub or a console with any) and waits up to 5 s for the connection.
// recv, if not nil, gets every message on a goroutine of its own, so it
// may publish with the connection it is given. The client disconnects
// when the test ends.
func Dial(t testing.TB, ctx context.Context, brokerURL string, f creds.File, id string, recv func(*autopaho.ConnectionManager, *paho.Publish)) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		id = f.Username + "-c"
	}
	var (
		cm *autopaho.ConnectionManager
		mu sync.Mutex
	)
	mu.Lock() // the callback reads cm: it waits for the assignment
	cm, err = autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, ConnectUsername: f.Username, ConnectPassword: []byte(f.Password),
		ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if recv == nil {
					return true, nil
				}
				mu.Lock()
				c := cm
				mu.Unlock()
				go recv(c, pr.Packet) // publishing from paho's goroutine could deadlock
				return true, nil
			}}},
	})
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cm.Disconnect(ctx)
	})
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatal(err)
	}
	return cm
}
