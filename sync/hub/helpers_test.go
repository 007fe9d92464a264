package hub_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/refcms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/outbox"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The rig of these tests is a synctest.Central: the embedded broker on a
// free loopback port with the users named, the reference CMS seeded with
// the demo cards, and the hubs StartHub starts; everything stops when the
// test ends (the hubs first). What a hub uses that the test opens (a
// fleet registry, a store of its own) closes in a t.Cleanup registered
// before StartHub, so that it outlives the hub. ctx, the test's, ends
// after timeout or after everything stopped.
func startCentral(t testing.TB, timeout time.Duration, users ...synctest.User) (context.Context, *synctest.Central) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx, synctest.Start(t, synctest.Options{Users: users})
}

func totemUser(name string) synctest.User { return synctest.User{Name: name, Role: creds.RoleTotem} }

func consoleUser(name string) synctest.User {
	return synctest.User{Name: name, Role: creds.RoleConsole}
}

// totemUsers are n totems named prefix-0…
func totemUsers(prefix string, n int) []synctest.User {
	var us []synctest.User
	for i := range n {
		us = append(us, totemUser(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return us
}

// credsOf are the credentials of the Central's users named.
func credsOf(c *synctest.Central, us []synctest.User) []creds.File {
	var fs []creds.File
	for _, u := range us {
		fs = append(fs, c.Creds(u.Name))
	}
	return fs
}

// opBytes is o as the totem sends it: a consent (V, Kind and Payload
// filled in), its ID the %032x of its Seq and Created now where empty.
func opBytes(o protocol.Op) []byte {
	o.V, o.Kind, o.Payload = 1, cms.KindConsent, synctest.ConsentPayload()
	if o.ID == "" {
		o.ID = fmt.Sprintf("%032x", o.Seq)
	}
	if o.Created.IsZero() {
		o.Created = time.Now().UTC()
	}
	b, _ := protocol.Marshal(o)
	return b
}

// dial connects a plain MQTT 5 client as f with client id id (a totem's
// own name for a totem) to the broker at brokerURL and subscribes it to
// topics (QoS 1). recv, if not nil, gets every message in arrival order
// on paho's goroutine (it must not publish). The client disconnects when
// the test ends.
func dial(ctx context.Context, t testing.TB, brokerURL string, f creds.File, id string, recv func(*paho.Publish), topics ...string) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse(brokerURL)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30,
		ConnectUsername: f.Username, ConnectPassword: []byte(f.Password),
		ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if recv != nil {
					recv(pr.Packet)
				}
				return true, nil
			}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cm.Disconnect(context.Background()) })
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	if len(topics) > 0 {
		var subs []paho.SubscribeOptions
		for _, topic := range topics {
			subs = append(subs, paho.SubscribeOptions{Topic: topic, QoS: 1})
		}
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
			t.Fatal(err)
		}
	}
	return cm
}

// client is dial handing every message to got.
func client(ctx context.Context, t testing.TB, brokerURL string, f creds.File, id string, got chan<- *paho.Publish, topics ...string) *autopaho.ConnectionManager {
	t.Helper()
	return dial(ctx, t, brokerURL, f, id, func(p *paho.Publish) { got <- p }, topics...)
}

// publish publishes payload on topic at QoS 1, failing t if it cannot.
func publish(ctx context.Context, t testing.TB, cm *autopaho.ConnectionManager, topic string, payload []byte) {
	t.Helper()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
		t.Fatal(err)
	}
}

// sendOp publishes o (opBytes) on its totem's operations topic.
func sendOp(ctx context.Context, t testing.TB, cm *autopaho.ConnectionManager, o protocol.Op) {
	t.Helper()
	publish(ctx, t, cm, protocol.Topic(o.Totem, protocol.LeafOp), opBytes(o))
}

func next(t testing.TB, ch <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived")
		return nil
	}
}

// nextResult is the next message of ch (next), an operation's result.
func nextResult(t testing.TB, ch <-chan *paho.Publish) *protocol.Result {
	t.Helper()
	r, err := protocol.DecodeResult(next(t, ch).Payload)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// consoleConn is a console's MQTT client, subscribed to its replies.
type consoleConn struct {
	ctx     context.Context
	cm      *autopaho.ConnectionManager
	replies chan *paho.Publish
	topic   string // its reply topic
}

// dialConsole connects the console f with client id id and subscribes
// it to its reply topic.
func dialConsole(ctx context.Context, t testing.TB, brokerURL string, f creds.File, id string) *consoleConn {
	t.Helper()
	c := &consoleConn{ctx: ctx, replies: make(chan *paho.Publish, 4), topic: protocol.HubReplyTopic(f.Username)}
	c.cm = client(ctx, t, brokerURL, f, id, c.replies, c.topic)
	return c
}

// send publishes a command's payload to the hub with the response topic
// resp ("" is the console's own) and correlation data corr.
func (c *consoleConn) send(t testing.TB, payload []byte, resp, corr string) {
	t.Helper()
	if resp == "" {
		resp = c.topic
	}
	if _, err := c.cm.Publish(c.ctx, &paho.Publish{Topic: protocol.HubCmdTopic, QoS: 1, Payload: payload,
		Properties: &paho.PublishProperties{ResponseTopic: resp, CorrelationData: []byte(corr)}}); err != nil {
		t.Fatal(err)
	}
}

// reply is the next reply, decoded, with its correlation data; nil if
// none comes within wait.
func (c *consoleConn) reply(t testing.TB, wait time.Duration) (*protocol.Reply, string) {
	t.Helper()
	select {
	case p := <-c.replies:
		r, err := protocol.DecodeReply(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var corr string
		if p.Properties != nil {
			corr = string(p.Properties.CorrelationData)
		}
		return r, corr
	case <-time.After(wait):
		return nil, ""
	}
}

// ask sends a command (send, to the console's reply topic) and returns
// its reply, failing t if none comes within 10 s.
func (c *consoleConn) ask(t testing.TB, payload []byte, corr string) *protocol.Reply {
	t.Helper()
	c.send(t, payload, "", corr)
	r, _ := c.reply(t, 10*time.Second)
	if r == nil {
		t.Fatalf("%s: no reply", corr)
	}
	return r
}

// until waits until cond holds or ctx ends, looking every 10 ms, and
// reports whether it held: the caller says what never happened.
func until(ctx context.Context, cond func() bool) bool {
	for !cond() {
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// drained waits until box's backlog is sent and answered; it fails t,
// with the backlog left and why (say), if ctx ends first.
func drained(ctx context.Context, t testing.TB, box *outbox.Outbox, say string) {
	t.Helper()
	var q protocol.Queue
	if !until(ctx, func() bool {
		var err error
		if q, err = box.Stats(); err != nil {
			t.Fatal(err)
		}
		return q.Depth == 0
	}) {
		t.Fatalf("backlog stuck at %+v%s", q, say)
	}
}

// appliedInOrder fails t unless the CMS's audit holds n operations, each
// totem's applied once each and in order from seq 1.
func appliedInOrder(t testing.TB, store *refcms.Store, n int) {
	t.Helper()
	audit, err := store.Audit()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]uint64{}
	for _, a := range audit {
		if a.Seq != last[a.Totem]+1 {
			t.Fatalf("%s: seq %d applied after %d", a.Totem, a.Seq, last[a.Totem])
		}
		last[a.Totem] = a.Seq
	}
	if len(audit) != n {
		t.Fatalf("applied %d, want %d", len(audit), n)
	}
}
