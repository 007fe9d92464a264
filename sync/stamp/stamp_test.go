package stamp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeNow is a wall clock a test moves, jumps included, and the
// monotonic clock beside it.
type fakeNow struct {
	t  time.Time
	el time.Duration
}

func (f *fakeNow) now() time.Time         { return f.t }
func (f *fakeNow) elapsed() time.Duration { return f.el }

func TestStampSurvivesWallClockJumps(t *testing.T) {
	f := &fakeNow{t: time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC)} // no RTC: the epoch at boot
	synced := false
	asked := 0
	s := New(Options{Boot: "boot-1", Uptime: 30 * time.Second, Now: f.now, Elapsed: f.elapsed,
		Synced: func() bool { asked++; return synced }, SyncedEvery: time.Minute})
	a := s.Stamp()
	if a.Boot != "boot-1" || a.Mono != 30_000 || a.Synced || !a.Wall.Equal(f.t) {
		t.Fatalf("first stamp %+v", a)
	}
	// NTP steps the clock by 56 years: the wall time follows, but the
	// monotonic offset only counts elapsed time.
	f.t = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.el = 5 * time.Second
	synced = true
	b := s.Stamp()
	if b.Mono != 35_000 {
		t.Fatalf("monotonic offset %d after 5 s and a wall-clock jump", b.Mono)
	}
	if b.Synced {
		t.Fatal("synced asked again before SyncedEvery")
	}
	if !b.Wall.Equal(f.t) {
		t.Fatalf("wall %v", b.Wall)
	}
	f.t = f.t.Add(-time.Hour) // and back an hour
	f.el += 2 * time.Minute
	if c := s.Stamp(); !c.Synced || asked != 2 || c.Mono != 155_000 {
		t.Fatalf("%+v after %d questions", c, asked)
	}
	if s.Boot() != "boot-1" {
		t.Fatal(s.Boot())
	}
}

func TestBootIDAndUptime(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "boot_id")
	os.WriteFile(p, []byte("6d1c6a9e-7a7b-4d0e-9b43-0d4b2f0f2b11\n"), 0o600)
	if got := BootID(p); got != "6d1c6a9e-7a7b-4d0e-9b43-0d4b2f0f2b11" {
		t.Fatal(got)
	}
	r1, r2 := BootID(filepath.Join(dir, "missing")), BootID(filepath.Join(dir, "missing"))
	if !strings.HasPrefix(r1, "r-") || r1 == r2 {
		t.Fatalf("random boot ids %q %q", r1, r2)
	}
	up := filepath.Join(dir, "uptime")
	os.WriteFile(up, []byte("1234.56 4321.00\n"), 0o600)
	if got := uptime(up); got != 1234560*time.Millisecond {
		t.Fatal(got)
	}
	for _, bad := range []string{"", "x 1", "-5 1"} {
		os.WriteFile(up, []byte(bad), 0o600)
		if got := uptime(up); got != 0 {
			t.Errorf("uptime(%q) = %v", bad, got)
		}
	}
}

func TestSystemSource(t *testing.T) {
	s := New(Options{})
	st := s.Stamp()
	if !st.Valid() || st.Wall.IsZero() {
		t.Fatalf("%+v", st)
	}
}

func BenchmarkStamp(b *testing.B) {
	s := New(Options{})
	for b.Loop() {
		s.Stamp()
	}
}
