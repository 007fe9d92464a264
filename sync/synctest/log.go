package synctest

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aslcns/totem/cms"
)

// Log collects the log lines of every component of a test, from any
// goroutine: a Logger writes to it, String reads it, AssertNoPII checks
// it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// NewLog returns an empty capture and a text Logger at debug level
// writing to it.
func NewLog() (*Log, *slog.Logger) {
	l := &Log{}
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPINs are the PINs, PUKs and codes the tests type; no log line may
// hold one.
var TestPINs = []string{"97315824", "24681357", "11223344", "24681350", "93172864"}

// cfPattern is a codice fiscale as a word of its own (omocodia letters
// included): upper case, so hex ids and base64 do not match by chance.
var cfPattern = regexp.MustCompile(`\b[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b`)

// Personal is what no log line may hold: the codici fiscali of the demo
// cards (and their first six letters, the holder's name in the code), the
// holders' surnames and names, their contacts, and TestPINs.
func Personal() []string {
	var p []string
	for _, c := range cms.DemoCards() {
		p = append(p, c.CF, c.CF[:6], c.Surname, c.Name)
		if c.Contact != nil {
			p = append(p, c.Contact.Address)
		}
	}
	return append(p, TestPINs...)
}

// AssertNoPII fails t for every log line holding a codice fiscale, one of
// Personal() or one of extra (the secrets of the test: a PUK, a card's
// serial). A capture with no lines fails too: the check would be vacuous.
func (l *Log) AssertNoPII(t testing.TB, extra ...string) {
	t.Helper()
	for _, line := range PII(l.String(), extra...) {
		t.Errorf("personal data in log line: %s", line)
	}
	if l.String() == "" {
		t.Fatal("no log lines: the personal-data check would be vacuous")
	}
}

// PII returns the lines of logs holding a codice fiscale, one of
// Personal() or one of extra, with the data itself masked (the test's
// output is read by people too).
func PII(logs string, extra ...string) []string {
	never := append(Personal(), extra...)
	var bad []string
	for _, line := range strings.Split(logs, "\n") {
		masked := cfPattern.ReplaceAllString(line, "<CF>")
		for _, s := range never {
			if s != "" {
				masked = strings.ReplaceAll(masked, s, "<"+strconv.Itoa(len(s))+" chars>")
			}
		}
		if masked != line {
			bad = append(bad, masked)
		}
	}
	return bad
}
