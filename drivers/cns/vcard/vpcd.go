package vcard

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// DefaultAddr is where vpcd waits for the card of its first slot.
const DefaultAddr = "127.0.0.1:35963"

type vpcdState struct {
	addr string
	conn net.Conn
	done chan struct{}
}

// SetAddr sets the vpcd address Insert connects to (DefaultAddr if unset).
func (c *Card) SetAddr(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vpcd.addr = addr
}

// Insert puts the card into the vpcd reader: it connects to vpcd and serves
// it from a goroutine until Remove, or until vpcd closes the connection.
// Inserting an inserted card does nothing.
func (c *Card) Insert(ctx context.Context) error {
	c.mu.Lock()
	if c.vpcd.conn != nil {
		c.mu.Unlock()
		return nil
	}
	addr := c.vpcd.addr
	if addr == "" {
		addr = DefaultAddr
	}
	c.mu.Unlock()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("vcard: insert: %w", err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.reset()
	c.vpcd.conn, c.vpcd.done = conn, done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = c.serve(conn)
		conn.Close()
		c.mu.Lock()
		if c.vpcd.conn == conn {
			c.vpcd.conn, c.vpcd.done = nil, nil
		}
		c.mu.Unlock()
	}()
	return nil
}

// Remove pulls the card out of the reader and waits for its goroutine.
func (c *Card) Remove() {
	c.mu.Lock()
	conn, done := c.vpcd.conn, c.vpcd.done
	c.vpcd.conn, c.vpcd.done = nil, nil
	c.mu.Unlock()
	if conn == nil {
		return
	}
	conn.Close()
	<-done
}

// Inserted returns a channel closed when the card leaves the reader (Remove,
// vpcd gone, or pulled by the OnAPDU hook), or nil when it is not inserted.
func (c *Card) Inserted() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.vpcd.done
}

// serve speaks the vpcd protocol: 2-byte big-endian length + payload both
// ways; 1-byte payloads are control (00 off, 01 on, 02 reset, 04 ATR),
// longer ones are C-APDUs answered with one R-APDU.
func (c *Card) serve(rw io.ReadWriter) error {
	var hdr [2]byte
	buf := make([]byte, 0xFFFF)
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		msg := buf[:n]
		if _, err := io.ReadFull(rw, msg); err != nil {
			return err
		}
		var out []byte
		switch {
		case n == 0:
			continue
		case n == 1:
			switch msg[0] {
			case 0x00, 0x02:
				c.Reset()
				continue
			case 0x01:
				continue
			case 0x04:
				out = c.ATR()
			default:
				continue
			}
		default:
			c.mu.Lock()
			hook := c.hook
			c.mu.Unlock()
			pull := hook != nil && hook(msg)
			out = c.answer(msg)
			if pull {
				// Pulled out right after answering: vpcd sees the card
				// gone on its next exchange.
				writeFrame(rw, out)
				return ErrPulled
			}
		}
		if err := writeFrame(rw, out); err != nil {
			return err
		}
	}
}

func writeFrame(w io.Writer, out []byte) error {
	frame := make([]byte, 2+len(out))
	binary.BigEndian.PutUint16(frame, uint16(len(out)))
	copy(frame[2:], out)
	_, err := w.Write(frame)
	return err
}
