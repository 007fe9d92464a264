package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needPromtool skips the test, saying why, where promtool is missing
// (Debian package prometheus; .ci/run and deps.sh install it).
func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus): the alert rules are not checked")
	}
	return p
}

// The shipped alert rules are valid and pass their promtool test cases.
func TestAlertRules(t *testing.T) {
	promtool := needPromtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The test cases bite: with the offline threshold at 5 minutes instead of
// 10 the same cases fail.
func TestAlertRulesCasesFailOnAChangedRule(t *testing.T) {
	promtool := needPromtool(t)
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(rules), "totem_status_since_timestamp_seconds > 600", "totem_status_since_timestamp_seconds > 300", 1)
	if changed == string(rules) {
		t.Fatal("the offline rule's threshold is not where this test looks for it")
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"alerts.yml": []byte(changed), "alerts_test.yml": cases} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TotemOffline") {
		t.Fatalf("the cases pass a rule paging after 5 minutes offline: %v\n%s", err, out)
	}
}
