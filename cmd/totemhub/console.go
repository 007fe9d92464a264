package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/hub/web"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/term"
)

// userCommand runs `totemhub user add NAME --role technician|ops` and
// `totemhub user list`. The password is read from stdin (a prompt on a
// terminal, else its first line); the TOTP key is printed as the
// otpauth:// URI an authenticator app takes. It works while the hub runs:
// the hub reads the accounts file again when it changes.
func userCommand(cfg *config.Totemhub, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	path := filepath.Join(cfg.StateDir, web.UsersFile)
	if len(args) == 0 {
		return errors.New("totemhub: user add NAME --role technician|ops | user list | user code NAME | user uri NAME")
	}
	switch args[0] {
	case "list":
		u, err := web.OpenUsers(path)
		if err != nil {
			return err
		}
		list, err := u.List()
		for _, a := range list {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", a.Name, a.Role, a.Created.Local().Format(time.DateOnly))
		}
		return err
	case "code", "uri":
		if len(args) != 2 {
			return fmt.Errorf("totemhub: user %s NAME", args[0])
		}
		u, err := web.OpenUsers(path)
		if err != nil {
			return err
		}
		a, ok, err := u.Get(args[1])
		if err != nil || !ok {
			return fmt.Errorf("totemhub: no account %q (%v)", args[1], err)
		}
		if args[0] == "uri" {
			fmt.Fprintln(stdout, a.URI())
			return nil
		}
		code, err := a.Code(time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, code)
		return nil
	case "add":
	default:
		return fmt.Errorf("totemhub: user: unknown command %q", args[0])
	}
	fs := cli.Flags("totemhub user add", stderr)
	role := fs.String("role", "", "technician or ops")
	rest := args[1:]
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" {
		name = fs.Arg(0)
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	u, err := web.OpenUsers(path)
	if err != nil {
		return err
	}
	key, err := u.Add(name, *role, pw, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "account %s (%s) added to %s\n", name, *role, path)
	fmt.Fprintf(stdout, "TOTP: add this key to the authenticator app (or scan it as a QR code):\n%s\n", key.URL())
	return nil
}

// readPassword reads the new account's password: without echo, twice, on
// a terminal; the first line of stdin otherwise (scripts, the demo).
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("totemhub: the passwords differ")
		}
		return string(a), nil
	}
	if stdin == nil {
		return "", errors.New("totemhub: user add reads the password from stdin")
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// consoleLink carries the console's technician actions to the totems: a
// connection of the hub's console user (fleet.console) to the embedded
// broker; the commands are signed with that console's key, which the
// totems trust (console_keys_file).
type consoleLink struct {
	cm *autopaho.ConnectionManager
	me creds.File

	mu      sync.Mutex
	waiting map[string]chan *protocol.Reply
	subbed  map[string]bool
}

var _ web.Commander = (*consoleLink)(nil)

// startConsoleLink connects as the console of cfg.Fleet.Console and
// returns the link and its signing key; nil when there is no console.
func startConsoleLink(ctx context.Context, cfg *config.Totemhub, brokerURL string, tlsCfg *tls.Config, log *slog.Logger) (*consoleLink, *cmdsig.PrivateKey, error) {
	if cfg.Fleet.Console == "" || !cfg.Broker.Embedded {
		return nil, nil, nil
	}
	me, err := creds.Load(filepath.Join(cfg.Fleet.CredentialsDir, cfg.Fleet.Console+".json"))
	if err != nil {
		return nil, nil, err
	}
	key, err := cmdsig.LoadPrivate(filepath.Join(cfg.Fleet.CredentialsDir, cfg.Fleet.Console+".key"))
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, nil, err
	}
	l := &consoleLink{me: me, waiting: map[string]chan *protocol.Reply{}, subbed: map[string]bool{}}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{ServerUrls: []*url.URL{u}, TlsCfg: tlsCfg, KeepAlive: 30,
		ConnectUsername: me.Username, ConnectPassword: []byte(me.Password), ConnectTimeout: 5 * time.Second,
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			l.mu.Lock()
			l.subbed = map[string]bool{} // a clean session forgot them
			l.mu.Unlock()
		},
		OnConnectError: func(err error) { log.Warn("console link", "err", err) },
		ClientConfig: paho.ClientConfig{ClientID: me.Username + "-web-" + cli.RandomID(4),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				l.received(pr.Packet)
				return true, nil
			}}},
	})
	if err != nil {
		return nil, nil, err
	}
	l.cm = cm
	return l, &key, nil
}

func (l *consoleLink) received(p *paho.Publish) {
	if p.Properties == nil {
		return
	}
	r, err := protocol.DecodeReply(p.Payload)
	if err != nil {
		return
	}
	l.mu.Lock()
	ch := l.waiting[string(p.Properties.CorrelationData)]
	l.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// Command publishes the signed cmd to its totem and waits for the reply.
func (l *consoleLink) Command(ctx context.Context, cmd *protocol.Command) (*protocol.Reply, error) {
	if err := l.cm.AwaitConnection(ctx); err != nil {
		return nil, errors.New("the hub's console is not connected to the broker")
	}
	rt := protocol.ReplyTopic(cmd.To, l.me.Username)
	l.mu.Lock()
	need := !l.subbed[rt]
	l.mu.Unlock()
	if need {
		if _, err := l.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		l.mu.Lock()
		l.subbed[rt] = true
		l.mu.Unlock()
	}
	ch := make(chan *protocol.Reply, 1)
	l.mu.Lock()
	l.waiting[cmd.ID] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiting, cmd.ID)
		l.mu.Unlock()
	}()
	b, err := protocol.Marshal(*cmd)
	if err != nil {
		return nil, err
	}
	if _, err := l.cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(cmd.To, protocol.LeafCmd), QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte(cmd.ID)}}); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	select {
	case <-ctx.Done():
		return nil, errors.New("the totem did not answer in time (offline?)")
	case r := <-ch:
		return r, nil
	}
}

// Close disconnects.
func (l *consoleLink) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.cm.Disconnect(ctx)
}
