// Package stamp stamps moments with what a board without a real-time clock
// can vouch for: the boot id, the monotonic time since boot, the wall
// clock and whether the wall clock is synchronised. Nothing is ordered by
// these stamps (sequence numbers order operations); they are data that
// lets a technician place an operation in time after a clock jump.
package stamp

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/sync/protocol"
)

// Options configures a Source. Zero fields take the system's values.
type Options struct {
	// Boot is the boot id; default: /proc/sys/kernel/random/boot_id, or a
	// random id when it cannot be read.
	Boot string
	// Uptime is the time since boot when the Source is made; default from
	// /proc/uptime (0 when it cannot be read).
	Uptime time.Duration
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Elapsed is the monotonic time since the Source was made; default
	// the monotonic reading of time.Since.
	Elapsed func() time.Duration
	// Synced reports whether the wall clock is synchronised; default: the
	// kernel's NTP status (adjtimex), false where it cannot be asked.
	Synced func() bool
	// SyncedEvery is how long an answer of Synced is reused; default 10s.
	SyncedEvery time.Duration
}

// Source stamps moments. It is safe for concurrent use.
type Source struct {
	boot    string
	uptime  time.Duration
	now     func() time.Time
	elapsed func() time.Duration
	synced  func() bool
	every   time.Duration

	mu        sync.Mutex
	checked   time.Duration // elapsed when synced was last asked
	hasAnswer bool
	answer    bool
}

// New returns a Source.
func New(o Options) *Source {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Elapsed == nil {
		start := time.Now()
		o.Elapsed = func() time.Duration { return time.Since(start) }
	}
	if o.Boot == "" {
		o.Boot = BootID(bootIDPath)
	}
	if o.Uptime == 0 {
		o.Uptime = uptime(uptimePath)
	}
	if o.Synced == nil {
		o.Synced = kernelSynced
	}
	if o.SyncedEvery == 0 {
		o.SyncedEvery = 10 * time.Second
	}
	return &Source{boot: o.Boot, uptime: o.Uptime, now: o.Now, elapsed: o.Elapsed, synced: o.Synced, every: o.SyncedEvery}
}

// Boot returns the boot id.
func (s *Source) Boot() string { return s.boot }

// Stamp returns the stamp of now.
func (s *Source) Stamp() protocol.Stamp {
	el := s.elapsed() // monotonic: immune to wall-clock jumps
	return protocol.Stamp{Boot: s.boot, Mono: (s.uptime + el).Milliseconds(), Wall: s.now().Round(0).UTC(),
		Synced: s.isSynced(el)}
}

func (s *Source) isSynced(el time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasAnswer || el-s.checked >= s.every {
		s.answer, s.hasAnswer, s.checked = s.synced(), true, el
	}
	return s.answer
}

const (
	bootIDPath = "/proc/sys/kernel/random/boot_id"
	uptimePath = "/proc/uptime"
)

// BootID reads the kernel's boot id from path; when it cannot, it returns
// a random id, fresh for this process (which starts once per boot on a
// totem).
func BootID(path string) string {
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" && len(id) <= 64 {
			return id
		}
	}
	var raw [16]byte
	rand.Read(raw[:])
	return "r-" + hex.EncodeToString(raw[:])
}

// uptime reads the seconds since boot from path (/proc/uptime), or 0.
func uptime(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	sec, err := strconv.ParseFloat(f, 64)
	if err != nil || sec < 0 || sec > 1e9 {
		return 0
	}
	return time.Duration(sec * float64(time.Second))
}
