// Package pgserver starts a private PostgreSQL: initdb into a
// temporary directory, pg_ctl on a unix socket in it (no TCP listener, so
// nothing on the machine is touched or reachable), one migrated template
// database and a fresh database per test made from it (CREATE DATABASE …
// TEMPLATE, a file copy: milliseconds). The server it started is stopped
// by its own pg_ctl at the end; Kill and Restart stop it the way a crash
// does (-m immediate) and bring it back, for the crash suites.
//
// postgres refuses to run as root, and CI runs as root: as root every
// server command runs through `runuser -u postgres --` in a directory
// owned by postgres. Without PostgreSQL installed Start returns ErrMissing,
// which says what to install. cms/pgstore/pgtest, the kit for tests,
// wraps this package; benches (make bench-fleet) use it directly, which
// the layering rule forbids for pgtest.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// Options configures a Server.
type Options struct {
	// Migrate brings the template database to the schema under test.
	Migrate func(ctx context.Context, url string) error
	// NoFsync sets fsync=off: for speed suites only, never for a suite
	// that stops the server like a crash.
	NoFsync bool
}

// Server is a private PostgreSQL cluster.
type Server struct {
	Dir  string // temporary directory: data/, the socket, the log
	Port int    // names the socket (.s.PGSQL.Port); there is no TCP listener
	bin  string
	opts Options
	asPG bool // run server commands as the postgres user (we are root)
	n    atomic.Int64
	mu   sync.Mutex
	up   bool
}

// ErrMissing says PostgreSQL's server programs are not installed.
var ErrMissing = errors.New("pgserver: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql")

// Bin returns the directory of the newest installed PostgreSQL's server
// programs.
func Bin() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return "", ErrMissing
	}
	sort.Slice(m, func(i, j int) bool { return version(m[i]) < version(m[j]) })
	return filepath.Dir(m[len(m)-1]), nil
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

const template = "migrated"

// Start initialises and starts a private server, and creates the migrated
// template database. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, opts: opts, asPG: os.Geteuid() == 0}
	s.reapOrphans(ctx)
	if s.Dir, err = os.MkdirTemp("", "pgtest"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if s.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(s.Dir)
			return nil, fmt.Errorf("pgserver: running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			os.RemoveAll(s.Dir)
			return nil, err
		}
	}
	if s.Port, err = freePort(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := s.run(ctx, "initdb", "-D", s.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C"); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := s.passwordRole(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+template); err != nil {
		s.Stop()
		return nil, err
	}
	if opts.Migrate != nil {
		if err := opts.Migrate(ctx, s.URL(template)); err != nil {
			s.Stop()
			return nil, fmt.Errorf("pgserver: migrate the template: %w", err)
		}
	}
	return s, nil
}

// PasswordRole is the one role whose password the server checks
// (scram-sha-256); every other role is trusted. Tests of a wrong password
// create it with CREATE ROLE … LOGIN PASSWORD.
const PasswordRole = "pwcheck"

// passwordRole puts PasswordRole's line first in pg_hba.conf.
func (s *Server) passwordRole() error {
	p := filepath.Join(s.data(), "pg_hba.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p, append([]byte("local all "+PasswordRole+" scram-sha-256\n"), b...), 0o600)
}

// ownerFile holds the pid of the test process that started the server.
const ownerFile = "owner.pid"

// reapOrphans stops and removes the servers of earlier test processes
// that died without stopping them (a test binary killed by go test's
// timeout runs no cleanup): only directories this kit made (with an
// owner file) whose owner process is gone.
func (s *Server) reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest*", ownerFile))
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // alive (or not ours to judge)
		}
		o := &Server{Dir: filepath.Dir(f), bin: s.bin, asPG: s.asPG, up: true}
		if _, err := os.Stat(filepath.Join(o.data(), "postmaster.pid")); err == nil {
			if o.stop(ctx, "immediate") != nil {
				continue // never remove the files of a server that may run
			}
		}
		os.RemoveAll(o.Dir)
	}
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

// run runs one of PostgreSQL's programs, as postgres when we are root.
func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	name := filepath.Join(s.bin, prog)
	if s.asPG {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgserver: %s: %w: %s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Restart starts the server (again, after Kill or Stop).
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -p %d -c max_connections=200 -c shared_buffers=32MB", s.Dir, s.Port)
	if s.opts.NoFsync {
		o += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	if err := s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.Dir, "log"), "-o", o, "-w", "-t", "60", "start"); err != nil {
		return err
	}
	s.up = true
	return nil
}

// Kill stops the server the way a crash does: pg_ctl stop -m immediate
// (no checkpoint, every connection cut; the next start recovers from
// the WAL).
func (s *Server) Kill(ctx context.Context) error { return s.stop(ctx, "immediate") }

// Stop stops the server (fast shutdown) and removes its directory. It is
// for the end of a suite.
func (s *Server) Stop() error {
	err := s.stop(context.Background(), "fast")
	if err != nil {
		err = s.stop(context.Background(), "immediate")
	}
	if err != nil {
		// pg_ctl failed twice: SIGQUIT (immediate shutdown) to the
		// postmaster we started, and keep its files.
		if b, rerr := os.ReadFile(filepath.Join(s.data(), "postmaster.pid")); rerr == nil {
			if pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); pid > 0 {
				syscall.Kill(pid, syscall.SIGQUIT)
			}
		}
		return err
	}
	return os.RemoveAll(s.Dir)
}

func (s *Server) stop(ctx context.Context, mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return nil
	}
	if err := s.run(ctx, "pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return err
	}
	s.up = false
	return nil
}

// URL returns the URL of database db as the superuser postgres.
func (s *Server) URL(db string) string { return s.URLAs(db, "postgres", "") }

// URLAs returns the URL of database db as role user (trust
// authentication: the password is not checked).
func (s *Server) URLAs(db, user, password string) string {
	u := url.URL{Scheme: "postgres", Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	u.RawQuery = url.Values{"host": {s.Dir}, "port": {strconv.Itoa(s.Port)}, "sslmode": {"disable"}}.Encode()
	return u.String()
}

// NewDB creates a fresh database from the migrated template and returns
// its URL.
func (s *Server) NewDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", s.n.Add(1))
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// NewEmptyDB creates an empty database (no schema) and returns its URL.
func (s *Server) NewEmptyDB(ctx context.Context) (string, error) {
	name := fmt.Sprintf("e%d", s.n.Add(1))
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", err
	}
	return s.URL(name), nil
}

// Exec runs sql on database db as postgres.
func (s *Server) Exec(ctx context.Context, db, sql string) error { return s.exec(ctx, db, sql) }

func (s *Server) exec(ctx context.Context, db, sql string) error {
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return fmt.Errorf("pgserver: connect: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgserver: %s: %w", sql, err)
	}
	return nil
}

// freePort returns a TCP port free now on the loopback. The server opens
// no TCP port (an empty listen_addresses): the number only names its socket,
// and is free anyway so the URL can never reach another server.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
