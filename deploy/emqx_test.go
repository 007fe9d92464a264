package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aslcns/totem/cms/pgstore"
	"github.com/aslcns/totem/cms/pgstore/pgtest"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/dynsec"
)

// emqx/totem_emqx.sql on the hub's schema (EMQX itself is not installable
// here): the authentication view gives, for a secret the hub issued,
// a digest and a salt that EMQX's sha256 with the salt as prefix
// reproduces, leaves out expired users and has the enroll user; the
// authorization view gives a totem exactly its own topics (the same as
// the mosquitto dynsec role), and the enroll user no '+' over replies.
func TestEMQXViews(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := pgtest.Private(t, pgtest.Options{NoFsync: true, Migrate: func(ctx context.Context, url string) error {
		_, err := pgstore.Migrate(ctx, url)
		return err
	}})
	url, err := srv.NewDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	sql, err := os.ReadFile("emqx/totem_emqx.sql")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // applied twice: idempotent
		if _, err := c.Exec(ctx, string(sql)); err != nil {
			t.Fatalf("totem_emqx.sql: %v", err)
		}
	}
	f, _ := creds.Generate("t-01", creds.RoleTotem)
	hash, _ := creds.Hash(f.Password)
	old, _ := creds.Hash("an-expired-secret")
	for _, u := range []struct {
		name, role, hash string
		expires          *time.Time
	}{
		{"t-01", creds.RoleTotem, hash, nil},
		{"t-old", creds.RoleTotem, old, &[]time.Time{time.Now().Add(-time.Hour)}[0]},
		{"c-1", creds.RoleConsole, old, nil},
		{"t-locked", creds.RoleTotem, hash, nil},
	} {
		if _, err := c.Exec(ctx, `INSERT INTO fleet_users (username, role, hash, created, expires) VALUES ($1, $2, $3, now(), $4)`,
			u.name, u.role, u.hash, u.expires); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, `INSERT INTO fleet_locks (username, locked, record) VALUES ('t-locked', true, '{}')`); err != nil {
		t.Fatal(err)
	}
	// EMQX: password_hash = lower hex SHA-256(salt || password).
	emqx := func(user, password string) bool {
		var ph string
		var salt []byte
		err := c.QueryRow(ctx, `SELECT password_hash, salt FROM emqx_authn WHERE username = $1 LIMIT 1`, user).Scan(&ph, &salt)
		if err == pgx.ErrNoRows {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(append(salt, password...))
		return hex.EncodeToString(sum[:]) == ph
	}
	if !emqx("t-01", f.Password) {
		t.Error("the hub's secret does not pass EMQX's salted sha256 through emqx_authn")
	}
	if emqx("t-01", "wrong") {
		t.Error("a wrong secret passes")
	}
	if emqx("t-old", "an-expired-secret") {
		t.Error("an expired user is in emqx_authn")
	}
	if emqx("t-locked", f.Password) {
		t.Error("a locked user is in emqx_authn")
	}
	if !emqx("enroll", "enroll") {
		t.Error("the enroll user is not in emqx_authn")
	}

	rules := func(user string) (allow map[string][]string, deny []string) {
		rows, err := c.Query(ctx, `SELECT permission, action, topic FROM emqx_authz WHERE username = $1 ORDER BY prio`, user)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		allow = map[string][]string{}
		for rows.Next() {
			var p, a, topic string
			if err := rows.Scan(&p, &a, &topic); err != nil {
				t.Fatal(err)
			}
			topic = strings.ReplaceAll(topic, "${username}", user)
			if p == "deny" {
				deny = append(deny, a+" "+topic)
				continue
			}
			allow[a] = append(allow[a], topic)
		}
		return allow, deny
	}
	allow, _ := rules("t-01")
	var wantPub, wantSub []string
	for _, a := range dynsec.TotemACL("t-01").ACLs {
		switch a.Type {
		case dynsec.PublishSend:
			wantPub = append(wantPub, a.Topic)
		case dynsec.SubscribeLiteral:
			wantSub = append(wantSub, a.Topic)
		}
	}
	for _, s := range [][]string{allow["publish"], allow["subscribe"], wantPub, wantSub} {
		sort.Strings(s)
	}
	if strings.Join(allow["publish"], " ") != strings.Join(wantPub, " ") || strings.Join(allow["subscribe"], " ") != strings.Join(wantSub, " ") {
		t.Errorf("a totem's EMQX rules %v differ from its mosquitto role pub %v sub %v", allow, wantPub, wantSub)
	}
	if len(allow["all"]) != 0 {
		t.Errorf("a totem has 'all' rules: %v", allow["all"])
	}
	if a, _ := rules("t-unknown"); len(a) != 0 {
		t.Errorf("an unknown user has rules: %v", a)
	}
	if a, _ := rules("c-1"); !contains(a["subscribe"], "totem/v1/+/reply/c-1") || contains(a["subscribe"], "totem/v1/+/op") {
		t.Errorf("console rules: %v", a)
	}
	_, deny := rules("enroll")
	if len(deny) == 0 || deny[0] != "subscribe eq totemhub/v1/enroll/+/reply" {
		t.Errorf("the enroll user's '+' over every reply is not denied first: %v", deny)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
