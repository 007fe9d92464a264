package sdnotify

import (
	"reflect"
	"testing"
	"time"

	"github.com/aslcns/totem/config"
)

// Changed names the settings by their TOML keys, a duration as a whole,
// and leaves out what a reload applied.
func TestChanged(t *testing.T) {
	a, b := config.DefaultTotemd(), config.DefaultTotemd()
	if got := Changed(a, b); len(got) != 0 {
		t.Fatalf("identical configurations: %v", got)
	}
	b.Log.Level = "debug"
	b.Broker.URL = "mqtt://hub:1883"
	b.Session.IdleTimeout.Duration = time.Hour
	b.ConsoleKeys = append(b.ConsoleKeys, config.ConsoleKey{ID: "k"})
	got := Changed(a, b, "log.level")
	want := []string{"console_keys", "broker.url", "session.idle_timeout"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Changed = %v, want %v", got, want)
	}
}

// Stale names the probes older than the limit only.
func TestStale(t *testing.T) {
	now := time.Now()
	probes := []Probe{
		{Name: "fresh", Progress: func() time.Time { return now.Add(-time.Second) }},
		{Name: "old", Progress: func() time.Time { return now.Add(-time.Minute) }},
		{Name: "never", Progress: func() time.Time { return time.Time{} }},
	}
	if got := Stale(now, 15*time.Second, probes); !reflect.DeepEqual(got, []string{"old", "never"}) {
		t.Fatalf("Stale = %v", got)
	}
}
