package vcard_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aslcns/totem/drivers/cns/vcard"
)

func frame(t *testing.T, c net.Conn, payload []byte) []byte {
	t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(payload)))
	if _, err := c.Write(append(b, payload...)); err != nil {
		t.Fatal(err)
	}
	if len(payload) == 1 && payload[0] != 0x04 {
		return nil
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVPCD plays vpcd's side of the protocol against an inserted card.
func TestVPCD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, _ := vcard.Lookup("cns")
	card := vcard.New(p)
	card.SetAddr(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for round := 0; round < 2; round++ {
		if err := card.Insert(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		frame(t, c, []byte{0x01})
		if got := frame(t, c, []byte{0x04}); !bytes.Equal(got, card.ATR()) {
			t.Fatalf("ATR % X", got)
		}
		got := frame(t, c, []byte{0x00, 0xA4, 0x08, 0x0C, 0x04, 0x10, 0x00, 0x10, 0x03})
		if !bytes.Equal(got, []byte{0x90, 0x00}) {
			t.Fatalf("select % X", got)
		}
		frame(t, c, []byte{0x04}) // polls between APDUs
		got = frame(t, c, []byte{0x00, 0xB0, 0x00, 0x00, 0x10})
		if string(got[:16]) != vcard.DemoSerial {
			t.Fatalf("read % X", got)
		}
		done := card.Inserted()
		card.Remove()
		<-done
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection still open after Remove")
		}
		c.Close()
	}
}
