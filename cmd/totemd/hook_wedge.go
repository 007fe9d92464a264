//go:build totemd_wedge

package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/aslcns/totem/firmware"
	"github.com/aslcns/totem/hal"
)

// testHook, in the watchdog test's build only (-tags totemd_wedge): on
// SIGUSR1 the next screen the session loop shows blocks it for good, as
// a hung display driver would, and a key press makes it show one.
func testHook(dev firmware.Devices) firmware.Devices {
	w := &wedgeDisplay{Display: dev.Display}
	dev.Display = w
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		<-usr1
		w.wedged.Store(true)
		if p, ok := dev.Keypad.(interface{ Press(...hal.Key) }); ok {
			p.Press(hal.KeyOK)
		}
	}()
	return dev
}

type wedgeDisplay struct {
	hal.Display
	wedged atomic.Bool
}

func (w *wedgeDisplay) Show(lines []string) error {
	if w.wedged.Load() {
		fmt.Fprintln(os.Stderr, "test hook: session loop wedged in Show")
		select {}
	}
	return w.Display.Show(lines)
}
