package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var opID = strings.Repeat("ab", 16)

func validOp() []byte {
	b, _ := Marshal(Op{V: Version, ID: opID, Totem: "demo-01", Seq: 1, Kind: "consent",
		Payload: json.RawMessage(`{"a":1}`), Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	return b
}

func TestTopics(t *testing.T) {
	if got := Topic("demo-01", LeafOp); got != "totem/v1/demo-01/op" {
		t.Fatal(got)
	}
	tests := []struct {
		topic, totem, leaf string
		ok                 bool
	}{
		{"totem/v1/demo-01/op", "demo-01", "op", true},
		{"totem/v1/demo-01/reply/console", "demo-01", "reply/console", true},
		{"totem/v1/+/op", "", "", false},
		{"totem/v1/../op", "", "", false},
		{"totem/v1/demo-01", "", "", false},
		{"totem/v1/demo-01/", "", "", false},
		{"totem/v2/demo-01/op", "", "", false},
		{"totem/v1/" + strings.Repeat("x", 33) + "/op", "", "", false},
	}
	for _, tt := range tests {
		totem, leaf, ok := ParseTopic(tt.topic)
		if totem != tt.totem || leaf != tt.leaf || ok != tt.ok {
			t.Errorf("ParseTopic(%q) = %q, %q, %v", tt.topic, totem, leaf, ok)
		}
	}
	if SharedOpFilter != "$share/totemhub/totem/v1/+/op" {
		t.Fatal(SharedOpFilter)
	}
}

func TestDecodeOp(t *testing.T) {
	op, err := DecodeOp(validOp())
	if err != nil || op.Seq != 1 || op.Totem != "demo-01" {
		t.Fatalf("DecodeOp(valid) = %+v, %v", op, err)
	}
	mod := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(validOp(), &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	bad := map[string][]byte{
		"version":      mod(func(m map[string]any) { m["v"] = 2 }),
		"unknown":      mod(func(m map[string]any) { m["extra"] = 1 }),
		"id":           mod(func(m map[string]any) { m["id"] = "ABC" }),
		"seq zero":     mod(func(m map[string]any) { m["seq"] = 0 }),
		"seq negative": mod(func(m map[string]any) { m["seq"] = -1 }),
		"kind":         mod(func(m map[string]any) { m["kind"] = "Consent!" }),
		"totem":        mod(func(m map[string]any) { m["totem"] = "a/b" }),
		"payload":      mod(func(m map[string]any) { m["payload"] = []int{1} }),
		"trailing":     append(validOp(), []byte(` {}`)...),
		"empty":        nil,
		"too large":    bytes.Repeat([]byte(" "), MaxPayload+1),
	}
	for name, b := range bad {
		if _, err := DecodeOp(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeOp(bytes.Repeat([]byte(" "), MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	if _, err := DecodeOp(mod(func(m map[string]any) { m["v"] = 2 })); !errors.Is(err, ErrVersion) {
		t.Errorf("version: %v", err)
	}
}

func TestResultFinal(t *testing.T) {
	r := Result{V: 1, OpID: opID, Seq: 1, Transport: Transport{Status: TransportReceived, Protocol: "1"},
		Processing: Processing{Status: ProcessingRejected, Errors: []Error{{"X", "y"}}}}
	b, _ := Marshal(r)
	got, err := DecodeResult(b)
	if err != nil || !got.Final() {
		t.Fatalf("%+v %v", got, err)
	}
	got.Processing.Status = ProcessingPending
	if got.Final() {
		t.Fatal("pending is final")
	}
	got.Processing.Status, got.Transport.Status = ProcessingAccepted, TransportRefused
	if got.Final() {
		t.Fatal("refused is final")
	}
}

func TestDecodePolicy(t *testing.T) {
	good := `{"v":1,"id":"fse-2020","consents":[{"code":"consultazione","label":"Consultazione"}]}`
	if _, err := DecodePolicy([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{
		`{"v":1,"id":"x","consents":[]}`,
		`{"v":1,"id":"x","consents":[{"code":"a","label":"A"},{"code":"a","label":"B"}]}`,
		`{"v":1,"id":"x","consents":[{"code":"A B","label":"A"}]}`,
		`{"v":1,"id":"","consents":[{"code":"a","label":"A"}]}`,
	} {
		if _, err := DecodePolicy([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}

// fuzzDecoders runs every decoder on b: none may panic, and whatever one
// accepts must survive a round trip.
func fuzzDecoders(t *testing.T, b []byte) {
	if op, err := DecodeOp(b); err == nil {
		again, err := Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeOp(again); err != nil {
			t.Fatalf("accepted op does not round-trip: %v", err)
		}
	}
	if r, err := DecodeResult(b); err == nil {
		again, _ := Marshal(r)
		if _, err := DecodeResult(again); err != nil {
			t.Fatalf("accepted result does not round-trip: %v", err)
		}
	}
	DecodeState(b)
	DecodeTelemetry(b)
	DecodeEvent(b)
	DecodeCommand(b)
	DecodeReply(b)
	DecodePolicy(b)
}

func FuzzDecode(f *testing.F) {
	f.Add(validOp())
	f.Add([]byte(`{"v":1,"op_id":"` + opID + `","seq":3,"transport":{"status":"received","protocol":"2611230001","at":"2026-11-23T10:00:00Z"},"processing":{"status":"rejected","errors":[{"code":"CARD_REVOKED","message":"x"}]},"duplicate":true}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","status":"offline"}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","uptime_s":1,"queue":{"depth":2,"last_seq":9}}`))
	f.Add([]byte(`{"v":1,"id":"abc","name":"status","args":{"a":"b"}}`))
	f.Add([]byte(`{"v":1,"id":"fse-2020","consents":[{"code":"consultazione","label":"C"}]}`))
	f.Add([]byte(`{"v":1,"id":"x","ok":true,"data":{"a":[1,2]}}`))
	f.Add([]byte(`{"v":1e400}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(fuzzDecoders)
}
