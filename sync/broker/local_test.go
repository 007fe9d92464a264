package broker

import (
	"strconv"
	"testing"
	"time"
)

// The in-process subscription gets a totem's operations in its order, on
// the totem's goroutine: while the handler waits, the totem's next
// messages wait too (acknowledged, not yet handed over, nothing stored
// for anyone); and Publish reaches a network subscriber. A network
// client cannot take the in-process client's id.
func TestLocalSubscribeAndPublish(t *testing.T) {
	f := startFleet(t, 0)
	got := make(chan string, 100)
	release := make(chan struct{})
	if err := f.srv.Subscribe("totem/v1/+/op", func(topic string, payload []byte) {
		got <- topic + " " + string(payload)
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	defer f.srv.Unsubscribe("totem/v1/+/op")
	a := f.login(t, "A", "A")
	const n = 5
	for i := range n {
		go a.pub(t, "totem/v1/A/op", strconv.Itoa(i))
		time.Sleep(20 * time.Millisecond) // in this order
	}
	if m := <-got; m != "totem/v1/A/op 0" {
		t.Fatalf("first %q", m)
	}
	select {
	case m := <-got:
		t.Fatalf("%q handed over while the handler waits", m)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	for i := 1; i < n; i++ {
		if m := <-got; m != "totem/v1/A/op "+strconv.Itoa(i) {
			t.Fatalf("message %d: %q", i, m)
		}
	}

	if code, err := a.sub(t, "totem/v1/A/result"); err != nil || code != 1 {
		t.Fatalf("subscribe: %d %v", code, err)
	}
	if err := f.srv.Publish("totem/v1/A/result", []byte("r1"), 1); err != nil {
		t.Fatal(err)
	}
	if m := a.next(t); m.Topic != "totem/v1/A/result" || string(m.Payload) != "r1" || m.QoS != 1 {
		t.Fatalf("got %s %q QoS %d", m.Topic, m.Payload, m.QoS)
	}

	hub := f.users["hub-1"]
	if _, ca, err := dial(t, f.srv.Addr(), "inline", hub.Username, hub.Password, nil); err == nil || ca == nil || ca.ReasonCode != 0x85 {
		t.Fatalf("client id inline: %v %+v", err, ca)
	}
}
