package synctest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/synctest"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The kit's Central answers a totem's operation end to end: a client
// dialled as the totem publishes a consent, the hub applies it to the
// CMS and the result comes back; the broker restarts on the same
// address; the log holds no personal data.
func TestCentralEndToEnd(t *testing.T) {
	for _, reg := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "registry"}[reg], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			lb, log := synctest.NewLog()
			c := synctest.Start(t, synctest.Options{Logger: log, Registry: reg, Users: []synctest.User{{Name: "t-kit", Role: creds.RoleTotem}}})
			c.StartHub(hub.Options{})
			results := make(chan *protocol.Result, 4)
			totem := synctest.Dial(t, ctx, c.URL(), c.Creds("t-kit"), "t-kit", func(_ *autopaho.ConnectionManager, p *paho.Publish) {
				if r, err := protocol.DecodeResult(p.Payload); err == nil {
					results <- r
				}
			})
			if _, err := totem.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: protocol.Topic("t-kit", protocol.LeafResult), QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			op := protocol.Op{V: 1, ID: strings.Repeat("a", 32), Totem: "t-kit", Seq: 1, Kind: cms.KindConsent,
				Created: time.Now().UTC(), Expires: time.Now().Add(time.Hour).UTC(),
				Payload: consent(t)}
			b, err := protocol.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := totem.Publish(ctx, &paho.Publish{Topic: protocol.Topic("t-kit", protocol.LeafOp), QoS: 1, Payload: b}); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-results:
				if r.OpID != op.ID || !r.Final() || r.Processing.Status != protocol.ProcessingAccepted {
					t.Fatalf("result %+v", r)
				}
			case <-ctx.Done():
				t.Fatal("no result")
			}
			if rec, err := c.CMS.Consents("6090012345678000"); err != nil || rec.OpID != op.ID {
				t.Fatalf("CMS consents %+v, %v", rec, err)
			}
			addr := c.Addr()
			c.StopBroker()
			c.StartBroker()
			if c.Addr() != addr {
				t.Fatalf("broker restarted on %s, was %s", c.Addr(), addr)
			}
			lb.AssertNoPII(t)
		})
	}
}

func consent(t *testing.T) []byte {
	b, err := json.Marshal(cms.ConsentRequest{
		Card:       cms.CardRef{Serial: "6090012345678000", CF: "RSSMRA80A01H501U", Expiry: "2030-12-31"},
		Policy:     "fse-2020",
		Consents:   []cms.Consent{{Code: "consultazione", Given: true}, {Code: "opposizione_pregresso"}},
		Attendance: cms.Attendance{Channel: cms.SelfService},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AssertNoPII finds a codice fiscale, a name, a PIN and an extra secret,
// and masks them in what it reports.
func TestPII(t *testing.T) {
	logs := strings.Join([]string{
		`level=INFO msg="card read" cf=VRDNNA70M50F205B`,
		`level=INFO msg=ok op=0123456789abcdef`,
		`level=INFO msg="holder" surname=ROSSI`,
		`level=INFO msg="pin" pin=97315824`,
		`level=INFO msg="other cf" cf=BNCGNN60A01F205Z`,
		`level=INFO msg="serial" serial=6090012345678000`,
	}, "\n")
	bad := synctest.PII(logs, "6090012345678000")
	if len(bad) != 5 {
		t.Fatalf("PII found %d lines, want 5: %q", len(bad), bad)
	}
	for _, l := range bad {
		for _, s := range []string{"VRDNNA", "ROSSI", "97315824", "BNCGNN60A01F205Z", "6090012345678000"} {
			if strings.Contains(l, s) {
				t.Errorf("reported line not masked: %s", l)
			}
		}
	}
}
