package escpos

import (
	"fmt"
	"io"
	"time"

	"github.com/tarm/serial"
)

// ReadTimeout is the serial read timeout: how long the reader goroutine
// can take to notice Close (tarm/serial's Close does not unblock a Read).
const ReadTimeout = 100 * time.Millisecond

// OpenSerial opens a serial port 8N1 at baud with a read timeout. A read
// that times out returns (0, io.EOF), which Printer treats as "nothing
// arrived". This is the only code that imports tarm/serial.
func OpenSerial(path string, baud int) (io.ReadWriteCloser, error) {
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud, ReadTimeout: ReadTimeout})
	if err != nil {
		return nil, fmt.Errorf("escpos: open %s at %d baud: %w", path, baud, err)
	}
	return p, nil
}
