package board

import (
	"errors"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/aslcns/totem/hal"
	"github.com/aslcns/totem/hal/haltest"
)

var wiring = Wiring{
	RowPins: []string{"GPIO5", "GPIO6", "GPIO13", "GPIO19"},
	ColPins: []string{"GPIO12", "GPIO16", "GPIO20", "GPIO21"},
	I2CBus:  "1",
	Display: LCD,
}

// noHardware skips when this machine has the pins or the bus.
func noHardware(t *testing.T) {
	t.Helper()
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	if gpioreg.ByName(wiring.RowPins[0]) != nil || len(i2creg.All()) > 0 {
		t.Skip("this machine has GPIO or I2C")
	}
}

func TestOpenKeypadMissingPin(t *testing.T) {
	noHardware(t)
	_, err := OpenKeypad(wiring)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenKeypad = %v; want ErrNotFound", err)
	}
	for _, s := range []string{"keypad row 1 pin", `"GPIO5"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %s", err, s)
		}
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Name != "GPIO5" {
		t.Errorf("error %#v is not a ConfigError for GPIO5", err)
	}
}

func TestOpenDisplayMissingBus(t *testing.T) {
	noHardware(t)
	for _, kind := range []DisplayKind{LCD, OLED} {
		w := wiring
		w.Display = kind
		d, c, err := OpenDisplay(w)
		if !errors.Is(err, ErrNotFound) || d != nil || c != nil {
			t.Fatalf("OpenDisplay = %v, %v, %v; want ErrNotFound", d, c, err)
		}
		if !strings.Contains(err.Error(), `I2C bus "1"`) {
			t.Errorf("error %q does not name the bus", err)
		}
	}
}

func TestWiringErrors(t *testing.T) {
	if _, err := OpenKeypad(Wiring{}); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("OpenKeypad without pins = %v", err)
	}
	if _, _, err := OpenDisplay(Wiring{Display: "vfd"}); err == nil || !strings.Contains(err.Error(), "vfd") {
		t.Errorf("OpenDisplay(vfd) = %v", err)
	}
}

func TestOpenOn(t *testing.T) {
	for _, kind := range []DisplayKind{LCD, OLED} {
		d, err := openOn(&i2ctest.Record{}, kind, Wiring{}, instant{})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		var _ hal.Display = d
		s, ok := d.(interface{ Screen() []string })
		if !ok {
			t.Fatalf("%s: no Screen", kind)
		}
		t.Run(string(kind), func(t *testing.T) { haltest.DisplayConformance(t, d, s.Screen) })
	}
}

// instant is a clock whose waits end at once.
type instant struct{}

func (instant) Now() time.Time { return time.Time{} }
func (instant) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}
