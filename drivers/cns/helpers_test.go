package cns_test

import (
	"context"
	"testing"

	"github.com/aslcns/totem/drivers/cns"
	"github.com/aslcns/totem/drivers/cns/cnstest"
	"github.com/aslcns/totem/hal"
)

// readInfo reads Info, on today's date, from a card of ATR atr played
// back by script, every exchange of which must be used.
func readInfo(t *testing.T, atr []byte, script ...cnstest.Exchange) (hal.CardInfo, error) {
	t.Helper()
	pb := &cnstest.Playback{T: t, Script: script}
	c := cns.New(pb, atr)
	c.Clock = today
	info, err := c.Info(context.Background())
	pb.Done()
	return info, err
}
