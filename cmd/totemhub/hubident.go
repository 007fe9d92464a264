package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/internal/goset"
	"github.com/aslcns/totem/sync/broker"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/enroll"
)

// provisioner registers a user and writes its credentials file: the
// registry, or the dynsec Mirror that also tells mosquitto.
type provisioner interface {
	Provision(username, role, path string) (creds.File, error)
}

// adminSocket is the running hub's local socket, in state_dir (0700), for
// what needs the registry the hub holds: `totemhub provision --role hub`.
const adminSocket = "admin.sock"

// adminRequest and adminReply are one exchange on the socket, a JSON line
// each way.
type adminRequest struct {
	Op   string `json:"op"` // "provision"
	Name string `json:"name"`
	Role string `json:"role"`
}

type adminReply struct {
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

// provisionHub registers hub identity name (role hub, the hub ACL) and
// writes credentials_dir/NAME.json for another hub process's [broker]
// credentials_file; it returns the file's path. A name registered with
// another role, the enroll user's and the names of the hub's own per-run
// clients are refused.
func provisionHub(cfg *config.Totemhub, reg *broker.Registry, p provisioner, name string) (string, error) {
	if name == enroll.Username || strings.HasPrefix(name, hubClientPrefix) {
		return "", fmt.Errorf("totemhub: %q is reserved (the enroll user, the hub's own clients %s…)", name, hubClientPrefix)
	}
	if name == cfg.Fleet.Console {
		return "", fmt.Errorf("totemhub: %q is the console of fleet.console", name)
	}
	return provisionAs(cfg, reg, p, name, creds.RoleHub)
}

// provisionAs provisions name with role, in fleet.credentials_dir,
// unless the registry has it with another role; it returns the
// credentials file's path.
func provisionAs(cfg *config.Totemhub, reg *broker.Registry, p provisioner, name, role string) (string, error) {
	u, ok, err := reg.Get(name)
	if err != nil {
		return "", err
	}
	if ok && u.Role != role {
		return "", fmt.Errorf("totemhub: %q is registered as a %s, not a %s: choose another name", name, u.Role, role)
	}
	path := filepath.Join(cfg.Fleet.CredentialsDir, name+".json")
	if _, err := p.Provision(name, role, path); err != nil {
		return "", err
	}
	return path, nil
}

// provisionRoleCommand is `totemhub provision --role hub NAME`: through
// the running hub's socket when it runs, else on the registry directly.
func provisionRoleCommand(ctx context.Context, cfg *config.Totemhub, args []string, stdout io.Writer) error {
	if len(args) != 3 || args[0] != "--role" {
		return errors.New("totemhub: provision --role hub NAME")
	}
	role, name := args[1], args[2]
	if role != creds.RoleHub {
		return fmt.Errorf("totemhub: provision --role %q: only hub (totems: provision TOTEM)", role)
	}
	path, viaHub, err := provisionViaHub(ctx, cfg, name)
	if !viaHub {
		reg, pg, oerr := openFleetRegistry(ctx, cfg)
		if oerr != nil {
			return oerr
		}
		defer reg.Close()
		if pg != nil {
			defer pg.Close()
		}
		path, err = provisionHub(cfg, reg, reg, name)
	}
	if err != nil {
		return err
	}
	how := ""
	if viaHub {
		how = " (by the running hub)"
	}
	fmt.Fprintf(stdout, "hub %s provisioned%s: credentials in %s (its [broker] credentials_file)\n", name, how, path)
	return nil
}

// provisionViaHub asks the running hub, if one listens on the socket;
// viaHub is false when none does.
func provisionViaHub(ctx context.Context, cfg *config.Totemhub, name string) (path string, viaHub bool, err error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "unix", filepath.Join(cfg.StateDir, adminSocket))
	if err != nil {
		return "", false, nil
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	b, _ := json.Marshal(adminRequest{Op: "provision", Name: name, Role: creds.RoleHub})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return "", true, fmt.Errorf("totemhub: the running hub: %w", err)
	}
	var r adminReply
	if err := json.NewDecoder(io.LimitReader(conn, 64<<10)).Decode(&r); err != nil {
		return "", true, fmt.Errorf("totemhub: the running hub's answer: %w", err)
	}
	if r.Error != "" {
		return "", true, fmt.Errorf("totemhub: the running hub refused: %s", r.Error)
	}
	return r.Path, true, nil
}

// serveAdmin listens on state_dir/admin.sock (0600, in the 0700 state
// dir: whoever may open fleet.db may ask) until stop.
func serveAdmin(ctx context.Context, cfg *config.Totemhub, reg *broker.Registry, p provisioner, log *slog.Logger) (stop func(), err error) {
	path := filepath.Join(cfg.StateDir, adminSocket)
	// This hub holds the registry of state_dir: a socket left there is
	// a dead hub's.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("totemhub: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		// A state_dir path too long for a socket name, say: the hub
		// serves all the same, and provisioning waits for it to stop.
		log.Warn("no admin socket: provision --role hub needs the hub stopped", "err", err)
		return func() {}, nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("totemhub: admin socket: %w", err)
	}
	wait := goset.Accept(l, func(conn net.Conn) {
		defer conn.Close()
		serveAdminConn(conn, cfg, reg, p, log)
	})
	cctx, cancel := context.WithCancel(ctx)
	go func() { <-cctx.Done(); l.Close() }()
	return func() { cancel(); l.Close(); wait() }, nil
}

func serveAdminConn(conn net.Conn, cfg *config.Totemhub, reg *broker.Registry, p provisioner, log *slog.Logger) {
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, 4096)).ReadBytes('\n')
	var req adminRequest
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var r adminReply
	switch {
	case err != nil:
		r.Error = "malformed request"
	case req.Op != "provision" || req.Role != creds.RoleHub:
		r.Error = "unknown request: only provision of a hub identity"
	default:
		if r.Path, err = provisionHub(cfg, reg, p, req.Name); err != nil {
			r.Error = err.Error()
		} else {
			log.Info("hub identity provisioned", "hub", req.Name, "file", r.Path)
		}
	}
	b, _ := json.Marshal(r)
	_, _ = conn.Write(append(b, '\n'))
}
