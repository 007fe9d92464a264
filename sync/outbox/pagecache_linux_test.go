package outbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeBytes is write_bytes of /proc/self/io: what this process made the
// kernel write back, at page-cache granularity.
func writeBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Skip("no write_bytes")
	return 0
}

// TestMetaPageWritesOnePage: what the kernel writes back per commit is the
// pages bbolt writes, no more. Without dropCache, on a kernel with large
// page-cache folios (ext4, Linux 6.18 here), the 16 KiB folio bbolt's
// creation leaves over the meta pages made every commit write back four
// pages for its one meta page.
func TestMetaPageWritesOnePage(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	p := []byte(`{"n":1}`)
	o.Enqueue("consent", p, time.Now(), time.Time{}) // warm up
	s0, w0 := o.db.Stats(), writeBytes(t)
	const n = 200
	for range n {
		if _, err := o.Enqueue("consent", p, time.Now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	w := writeBytes(t) - w0
	s1 := o.db.Stats()
	pages := s1.TxStats.GetWrite() - s0.TxStats.GetWrite() // data pages and meta, 4 KiB each
	if w == 0 {
		t.Skip("write_bytes not counted here (tmpfs?)")
	}
	if limit := pages * int64(o.pageSize) * 5 / 4; w > limit {
		t.Fatalf("%d commits wrote back %d bytes for %d pages of %d bytes (%.1f pages per commit written, %.1f back)",
			n, w, pages, o.pageSize, float64(pages)/n, float64(w)/float64(o.pageSize)/n)
	}
}
