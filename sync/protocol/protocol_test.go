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

func TestStampOnOp(t *testing.T) {
	st := &Stamp{Boot: "0f3c", Mono: 1500, Wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Synced: true}
	b, _ := Marshal(Op{V: Version, ID: opID, Totem: "demo-01", Seq: 1, Kind: "consent",
		Payload: json.RawMessage(`{}`), Stamp: st})
	op, err := DecodeOp(b)
	if err != nil || op.Stamp == nil || *op.Stamp != *st {
		t.Fatalf("stamp lost: %+v %v", op, err)
	}
	for name, bad := range map[string]*Stamp{
		"no boot":       {Mono: 1},
		"negative mono": {Boot: "b", Mono: -1},
		"long boot":     {Boot: strings.Repeat("b", 65)},
	} {
		b, _ := Marshal(Op{V: Version, ID: opID, Totem: "demo-01", Seq: 1, Kind: "consent",
			Payload: json.RawMessage(`{}`), Stamp: bad})
		if _, err := DecodeOp(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeLedger(t *testing.T) {
	res := Result{V: 1, OpID: opID, Seq: 2, Transport: Transport{Status: TransportReceived, Protocol: "p"},
		Processing: Processing{Status: ProcessingAccepted}}
	good := Ledger{V: 1, ID: "r1", Totem: "demo-01", LastSeq: 2, Results: []Result{res}}
	b, _ := Marshal(good)
	if l, err := DecodeLedger(b); err != nil || len(l.Results) != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	pending := res
	pending.Processing.Status = ProcessingPending
	beyond := res
	beyond.Seq = 3
	for name, l := range map[string]Ledger{
		"no id":          {V: 1, Totem: "demo-01"},
		"bad totem":      {V: 1, ID: "r", Totem: "a/b"},
		"not final":      {V: 1, ID: "r", Totem: "demo-01", LastSeq: 2, Results: []Result{pending}},
		"beyond last":    {V: 1, ID: "r", Totem: "demo-01", LastSeq: 2, Results: []Result{beyond}},
		"too many":       {V: 1, ID: "r", Totem: "demo-01", LastSeq: 2, Results: make([]Result, MaxLedger+1)},
		"wrong version":  {V: 2, ID: "r", Totem: "demo-01"},
		"zero seq entry": {V: 1, ID: "r", Totem: "demo-01", LastSeq: 2, Results: []Result{{V: 1, OpID: opID}}},
	} {
		b, _ := Marshal(l)
		if _, err := DecodeLedger(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeLedgerRequest([]byte(`{"v":1,"id":"r","from":1,"max":10}`)); err != nil {
		t.Fatal(err)
	}
	// A card's state: a serial instead of a page.
	if r, err := DecodeLedgerRequest([]byte(`{"v":1,"id":"c","from":0,"max":0,"card":"6090012345678000"}`)); err != nil || r.Card != "6090012345678000" {
		t.Fatal(r, err)
	}
	b, _ = Marshal(Ledger{V: 1, ID: "c", Totem: "demo-01", Results: []Result{}, CardState: "active"})
	if l, err := DecodeLedger(b); err != nil || l.CardState != "active" {
		t.Fatal(l, err)
	}
	b, _ = Marshal(Ledger{V: 1, ID: "c", Totem: "demo-01", CardState: "ACTIVE; drop"})
	if _, err := DecodeLedger(b); err == nil {
		t.Error("a card state with stray characters was accepted")
	}
	for _, b := range []string{
		`{"v":1,"id":"c","from":0,"max":0,"card":"60900123456780"}`,
		`{"v":1,"id":"c","from":0,"max":0,"card":"RSSMRA80A01H501U"}`,
		`{"v":1,"id":"c","from":1,"max":10,"card":"6090012345678000"}`,
		`{"v":1,"id":"","from":1,"max":10}`,
		`{"v":1,"id":"r","from":0,"max":10}`,
		`{"v":1,"id":"r","from":1,"max":0}`,
		`{"v":1,"id":"r","from":1,"max":257}`,
		`{"v":1,"id":"r","from":1,"max":10,"x":1}`,
	} {
		if _, err := DecodeLedgerRequest([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
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
// sameAsStd checks that what the fast decoder accepted, the standard
// library's strict decoder accepts too and reads the same.
func sameAsStd[T any](t *testing.T, b []byte, got *T) {
	t.Helper()
	var std T
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&std); err != nil {
		t.Fatalf("accepted %q, which the standard library refuses: %v", b, err)
	}
	if d.More() {
		t.Fatalf("accepted %q, trailing data for the standard library", b)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(&std)
	if !bytes.Equal(g, w) {
		t.Fatalf("read %q as\n%s\nthe standard library as\n%s", b, g, w)
	}
}

// stdDuplicate is duplicateKey by the standard library's tokenizer.
func stdDuplicate(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		keys   map[string]bool
		object bool
		key    bool // the next string is a key
	}
	var stack []*level
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &level{keys: map[string]bool{}, object: v == '{', key: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			continue
		case string:
			if top != nil && top.object && top.key {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

func fuzzDecoders(t *testing.T, b []byte) {
	if json.Valid(b) && duplicateKey(b) != stdDuplicate(b) {
		t.Fatalf("duplicateKey(%q) = %v, the standard tokenizer says %v", b, duplicateKey(b), stdDuplicate(b))
	}
	if op, err := DecodeOp(b); err == nil {
		sameAsStd(t, b, op)
		again, err := Marshal(op)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeOp(again); err != nil {
			t.Fatalf("accepted op does not round-trip: %v", err)
		}
	}
	if r, err := DecodeResult(b); err == nil {
		sameAsStd(t, b, r)
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
	if r, err := DecodeLedgerRequest(b); err == nil {
		again, _ := Marshal(r)
		if _, err := DecodeLedgerRequest(again); err != nil {
			t.Fatalf("accepted ledger request does not round-trip: %v", err)
		}
	}
	if l, err := DecodeLedger(b); err == nil {
		again, _ := Marshal(l)
		if _, err := DecodeLedger(again); err != nil {
			t.Fatalf("accepted ledger does not round-trip: %v", err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(validOp())
	f.Add([]byte(`{"v":1,"op_id":"` + opID + `","seq":3,"transport":{"status":"received","protocol":"2611230001","at":"2026-11-23T10:00:00Z"},"processing":{"status":"rejected","errors":[{"code":"CARD_REVOKED","message":"x"}]},"duplicate":true}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","status":"offline"}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","uptime_s":1,"queue":{"depth":2,"last_seq":9}}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","uptime_s":1,"queue":{"depth":850,"last_seq":900},"storage":{"pending":850,"quarantined":2,"bytes":1048576,"max_pending":1000,"fraction":0.85,"alarm":true}}`))
	f.Add([]byte(`{"v":1,"id":"abc","name":"status","args":{"a":"b"}}`))
	f.Add([]byte(`{"v":1,"id":"9f2c4e1a7b3d5f60","name":"cancel","args":{"id":"6f1c","reason":"x"},"to":"demo-01","role":"technician","key":"tech-1","issued":"2026-11-23T10:00:00Z","expires":"2026-11-23T10:01:00Z","sig":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="}`))
	f.Add([]byte(`{"v":1,"id":"x","ok":false,"error":"refused: replayed","code":"replayed"}`))
	f.Add([]byte(`{"v":1,"id":"fse-2020","consents":[{"code":"consultazione","label":"C"}]}`))
	f.Add([]byte(`{"v":1,"id":"x","ok":true,"data":{"a":[1,2]}}`))
	f.Add([]byte(`{"v":1,"id":"` + opID + `","totem":"demo-01","seq":2,"kind":"consent","payload":{},"created":"2026-11-23T10:00:00Z","stamp":{"boot":"b1","mono_ms":1200,"wall":"2026-11-23T10:00:00Z","synced":true}}`))
	f.Add([]byte(`{"v":1,"id":"r1","from":1,"max":64}`))
	f.Add([]byte(`{"v":1,"id":"r1","totem":"demo-01","last_seq":3,"results":[{"v":1,"op_id":"` + opID + `","seq":3,"transport":{"status":"received","protocol":"261123000000001","at":"2026-11-23T10:00:00Z"},"processing":{"status":"accepted"}}]}`))
	f.Add([]byte(`{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","queue":{"depth":0},"conn_refused":{"code":133,"reason":"identificativo del totem non valido o già in uso","count":1,"first":"2026-11-23T09:00:00Z","last":"2026-11-23T09:00:00Z"}}`))
	f.Add([]byte(`{"v":1e400}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add([]byte(`{"v":1,"a":{"b":1,"b":2},"c":[{"d":1},{"d":1}],"s\u0065q":1,"seq":2}`))
	f.Add([]byte(`{"k\"":1,"k\\":2,"k":"\"}:"}`))
	f.Fuzz(fuzzDecoders)
}

// A telemetry message carries the last refusal of the totem's connection
// by the broker; a code that is no refusal is refused.
func TestTelemetryRefused(t *testing.T) {
	ok := `{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","queue":{"depth":0},"conn_refused":{"code":135,"reason":"non autorizzato","count":4,"first":"2026-11-23T09:00:00Z","last":"2026-11-23T09:30:00Z"}}`
	tm, err := DecodeTelemetry([]byte(ok))
	if err != nil || tm.ConnRefused == nil || tm.ConnRefused.Code != 0x87 || tm.ConnRefused.Count != 4 {
		t.Fatalf("%+v, %v", tm, err)
	}
	for from, to := range map[string]string{`"code":135`: `"code":0`, `"count":4`: `"count":0`} {
		b := strings.Replace(ok, from, to, 1)
		if _, err := DecodeTelemetry([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}

// A telemetry message carries the outbox's usage; impossible values are
// refused.
func TestTelemetryStorage(t *testing.T) {
	ok := `{"v":1,"totem":"demo-01","at":"2026-11-23T10:00:00Z","queue":{"depth":1,"last_seq":1},"storage":{"pending":1,"bytes":4096,"max_pending":10,"fraction":0.1,"alarm":true}}`
	tm, err := DecodeTelemetry([]byte(ok))
	if err != nil || tm.Storage == nil || !tm.Storage.Alarm || tm.Storage.MaxPending != 10 {
		t.Fatalf("%+v, %v", tm, err)
	}
	for from, to := range map[string]string{`"pending":1`: `"pending":-1`, `"bytes":4096`: `"bytes":-5`,
		`"fraction":0.1`: `"fraction":-0.5`} {
		b := strings.Replace(ok, from, to, 1)
		if _, err := DecodeTelemetry([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}

// BenchmarkDecodeOp: the hub decodes every operation (a consent's size).
func BenchmarkDecodeOp(b *testing.B) {
	op, _ := Marshal(Op{V: Version, ID: opID, Totem: "demo-01", Seq: 1, Kind: "consent",
		Payload: json.RawMessage(`{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"policy":"fse-2020","consents":[{"code":"consultazione","given":true},{"code":"opposizione_pregresso","given":false}],"channel":"self"}`),
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Stamp: &Stamp{Boot: "b1", Mono: 1200, Wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Synced: true}})
	b.SetBytes(int64(len(op)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeOp(op); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeResult: the totem decodes every result.
func BenchmarkDecodeResult(b *testing.B) {
	r := []byte(`{"v":1,"op_id":"` + opID + `","seq":3,"transport":{"status":"received","protocol":"2611230001","at":"2026-11-23T10:00:00Z"},"processing":{"status":"rejected","errors":[{"code":"CARD_REVOKED","message":"x"}]},"duplicate":true}`)
	b.SetBytes(int64(len(r)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResult(r); err != nil {
			b.Fatal(err)
		}
	}
}

// The strict decoder matches keys exactly and refuses a key twice, at any
// depth: a reader that folds case or keeps the first of two keys would
// read another operation than the hub applied.
func TestDecodeRefusesFoldedAndDuplicateKeys(t *testing.T) {
	op := string(validOp())
	for name, b := range map[string]string{
		"folded":           strings.Replace(op, `"seq":`, `"SEQ":`, 1),
		"folded version":   strings.Replace(op, `"v":`, `"V":`, 1),
		"duplicate":        strings.Replace(op, `"seq":1`, `"seq":1,"seq":2`, 1),
		"escaped twin":     strings.Replace(op, `"seq":1`, `"seq":1,"s\u0065q":2`, 1),
		"in the payload":   strings.Replace(op, `{"a":1}`, `{"a":1,"b":{"c":1,"c":2}}`, 1),
		"in a long object": strings.Replace(op, `{"a":1}`, `{"a":1,"k0":0,"k1":0,"k2":0,"k3":0,"k4":0,"k5":0,"k6":0,"k7":0,"k8":0,"k9":0,"ka":0,"kb":0,"kc":0,"kd":0,"ke":0,"kf":0,"kg":0,"k3":1}`, 1),
	} {
		if _, err := DecodeOp([]byte(b)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %s: %v", name, b, err)
		}
	}
	// The same key in sibling objects, or in an object and its parent, is
	// no duplicate.
	ok := strings.Replace(op, `{"a":1}`, `{"a":1,"l":[{"a":1},{"a":2}],"o":{"a":{"a":3}}}`, 1)
	if _, err := DecodeOp([]byte(ok)); err != nil {
		t.Errorf("%s: %v", ok, err)
	}
	cmd := `{"v":1,"id":"x","name":"status","args":{"a":"1","a":"2"}}`
	if _, err := DecodeCommand([]byte(cmd)); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate argument accepted: %v", err)
	}
}

// Decode errors end up in logs: they say why, never quote the input.
func TestDecodeErrorsQuoteNoInput(t *testing.T) {
	const pii = "ROSSI MARIO RSSMRA80A01H501U"
	inputs := []string{
		`{"v":1,"totem":"` + pii,
		`{"v":1,"` + pii + `":1}`,
		`{"v":"` + pii + `"}`,
		`{"v":1,"seq":"` + pii + `"}`,
		`{"v":1,"created":"` + pii + `"}`,
		`{"v":1, ` + pii + `}`,
		pii,
		`{"v":1,"payload":{"a":` + pii + `}}`,
		`{"v":1,"id":"x","name":"b","args":{"` + pii + `":5}}`,
		`{"v":1} "` + pii + `"`,
		`{"v":1,"stamp":{"boot":"` + pii + `","boot":"x"}}`,
	}
	decoders := map[string]func([]byte) error{
		"op":      func(b []byte) error { _, err := DecodeOp(b); return err },
		"result":  func(b []byte) error { _, err := DecodeResult(b); return err },
		"state":   func(b []byte) error { _, err := DecodeState(b); return err },
		"command": func(b []byte) error { _, err := DecodeCommand(b); return err },
		"ledger":  func(b []byte) error { _, err := DecodeLedgerRequest(b); return err },
		"policy":  func(b []byte) error { _, err := DecodePolicy(b); return err },
		"event":   func(b []byte) error { _, err := DecodeEvent(b); return err },
		"tele":    func(b []byte) error { _, err := DecodeTelemetry(b); return err },
		"reply":   func(b []byte) error { _, err := DecodeReply(b); return err },
		"l":       func(b []byte) error { _, err := DecodeLedger(b); return err },
	}
	for _, in := range inputs {
		for name, dec := range decoders {
			err := dec([]byte(in))
			if err == nil {
				t.Fatalf("%s accepted %s", name, in)
			}
			for _, w := range strings.Fields(pii) {
				if strings.Contains(err.Error(), w) {
					t.Errorf("%s(%s): error quotes the input: %v", name, in, err)
				}
			}
		}
	}
}

// BenchmarkDuplicateKey: what the duplicate key check adds to DecodeOp.
func BenchmarkDuplicateKey(b *testing.B) {
	op, _ := Marshal(Op{V: Version, ID: opID, Totem: "demo-01", Seq: 1, Kind: "consent",
		Payload: json.RawMessage(`{"card":{"serial":"6090012345678000","cf":"RSSMRA80A01H501U","expiry":"2030-12-31"},"policy":"fse-2020","consents":[{"code":"consultazione","given":true},{"code":"opposizione_pregresso","given":false}],"channel":"self"}`),
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Stamp: &Stamp{Boot: "b1", Mono: 1200, Wall: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Synced: true}})
	b.SetBytes(int64(len(op)))
	b.ReportAllocs()
	for b.Loop() {
		if duplicateKey(op) {
			b.Fatal("duplicate")
		}
	}
}
