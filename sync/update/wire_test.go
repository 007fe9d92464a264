package update

import (
	"testing"

	"github.com/aslcns/totem/sync/protocol"
)

func FuzzDecodeReq(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"get","job":"j1","chunk":3}`))
	f.Add([]byte(`{"v":1,"kind":"status","status":{"job":"j1","version":"2","state":"failed","reason":"x"}}`))
	f.Add([]byte(`{"v":1,"kind":"hello"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReq(b)
		if err != nil {
			return
		}
		if r.Kind == ReqGet && !protocol.ValidTotemID(r.Job) || r.Chunk < 0 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzDecodeMsg(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"chunk","job":"j1","chunk":3,"data":"AAAA"}`))
	f.Add([]byte(`{"v":1,"kind":"offer","job":"j1","manifest":{"v":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMsg(b)
		if err != nil {
			return
		}
		if len(m.Data) > MaxChunk || !protocol.ValidTotemID(m.Job) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func TestDecodeWire(t *testing.T) {
	for _, b := range []string{
		`{"v":1,"kind":"get","job":"../x","chunk":1}`,
		`{"v":1,"kind":"get","job":"j","chunk":-1}`,
		`{"v":2,"kind":"hello"}`,
		`{"v":1,"kind":"status"}`,
		`{"v":1,"kind":"nope"}`,
		`{"v":1,"kind":"hello","x":1}`,
	} {
		if _, err := DecodeReq([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
	if _, err := DecodeReq([]byte(`{"v":1,"kind":"get","job":"j","chunk":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{
		`{"v":1,"kind":"chunk","job":"j","chunk":1}`,
		`{"v":1,"kind":"offer","job":"j"}`,
		`{"v":1,"kind":"cancel","job":""}`,
	} {
		if _, err := DecodeMsg([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}
