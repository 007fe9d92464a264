package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/uplink"
)

// The steady state: N totems connected with nothing queued, each sending
// its telemetry every idleTele (shorter than the 30 s of a deployment, so
// that a run lasts seconds: the hub's CPU is then scaled to 30 s, being
// proportional to the messages). One of them, the silent totem, sends
// telemetry only when it connects and then nothing (its connection stays
// up, pings only): the hub's registry must show it offline by its timer,
// 3 telemetry intervals after it last heard from it.

// silentTotem is the totem of the steady-state run that goes silent.
const silentTotem = "ft-0000"

type idleResult struct {
	totems        int
	rssKBPerTotem float64 // hub RSS connected minus before any connects, per totem
	cpuMsPerMin   float64 // hub CPU per totem per minute, at idleTele
	detect        time.Duration
}

// deployedTelemetry is the telemetry interval of a deployment (config
// default), to which the CPU figure is scaled.
const deployedTelemetry = 30 * time.Second

func (r idleResult) report(w io.Writer, c config) {
	scaled := r.cpuMsPerMin * c.idleTele.Seconds() / deployedTelemetry.Seconds()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "steady state: %d totems connected, telemetry every %s (scaled to %s for CPU); offline after 3 intervals of silence\n",
		r.totems, c.idleTele, deployedTelemetry)
	figures(w, "",
		figure{"idle_telemetry_s", "%.0f", c.idleTele.Seconds()},
		figure{"idle_rss_kb_per_totem", "%.1f", r.rssKBPerTotem},
		figure{"idle_cpu_ms_per_totem_min_measured", "%.3f", r.cpuMsPerMin},
		figure{"idle_cpu_ms_per_totem_min", "%.3f", scaled},
		figure{"offline_detect_s", "%.2f", r.detect.Seconds()},
		figure{"offline_detect_intervals", "%.2f", r.detect.Seconds() / c.idleTele.Seconds()})
}

// idleRun starts a totemhub for n totems, measures its RSS before and
// with them connected, its CPU over idleWindow, and the time until its
// log says the silent totem went offline.
func idleRun(ctx context.Context, c config, dir string, n int) (idleResult, error) {
	r := idleResult{totems: n}
	names := names(n)
	hp, addr, err := hubOnFreePort(ctx, c.hub, dir, names, c.idleTele)
	if err != nil {
		return r, err
	}
	defer hp.stop()
	boxes, ids, err := fleetFiles(dir, names, 0)
	if err != nil {
		return r, err
	}
	defer closeAll(boxes)
	pid := hp.cmd.Process.Pid
	_, rss0 := procStat(pid)
	uctx, cancel := context.WithCancel(ctx)
	var ups sync.WaitGroup
	defer ups.Wait()
	defer cancel()
	for i := range names {
		every := c.idleTele
		if names[i] == silentTotem {
			every = time.Hour
		}
		up := uplink.New(uplink.Options{Totem: names[i], URL: "mqtt://" + addr, Username: ids[i].Username,
			Password: ids[i].Password, Outbox: boxes[i], TelemetryInterval: every})
		ups.Go(func() { up.Run(uctx) })
	}
	// Settle: every totem connected and through a telemetry interval.
	settle := 5*time.Second + c.idleTele
	if err := sleep(ctx, settle); err != nil {
		return r, err
	}
	cpu1, _ := procStat(pid)
	if err := sleep(ctx, c.idleWindow); err != nil {
		return r, err
	}
	cpu2, rss2 := procStat(pid)
	r.rssKBPerTotem = float64(rss2-rss0) / float64(n)
	r.cpuMsPerMin = float64((cpu2 - cpu1).Milliseconds()) / c.idleWindow.Minutes() / float64(n)
	// The silent totem: offline 3 intervals after it was last heard,
	// plus the once-a-second sweep; wait up to twice that.
	deadline := time.Now().Add(6*c.idleTele + 10*time.Second)
	for {
		d, ok, err := silentDetected(hp.path, silentTotem)
		if err != nil {
			return r, err
		}
		if ok {
			r.detect = d
			return r, nil
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the hub did not report %s silent (log %s)", silentTotem, hp.path)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return r, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// silentDetected finds the hub's "totem silent: offline" line for totem
// and returns the time from when the hub last heard from it to the line.
func silentDetected(path, totem string) (time.Duration, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m struct {
			Msg      string    `json:"msg"`
			Totem    string    `json:"totem"`
			Time     time.Time `json:"time"`
			LastSeen time.Time `json:"last_seen"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Msg != "totem silent: offline" || m.Totem != totem {
			continue
		}
		if m.LastSeen.IsZero() || m.Time.Before(m.LastSeen) {
			return 0, false, errors.New("the hub's silent line has no usable last_seen")
		}
		return m.Time.Sub(m.LastSeen), true, nil
	}
	return 0, false, sc.Err()
}
