// Command totemctl is the technicians' and operations' MQTT console.
//
//	totemctl [--config FILE] [--broker URL] [--creds FILE] status [--offline] [--alert] [--backlog N] [-o table|json] [TOTEM]
//	totemctl [--config FILE] [--broker URL] [--creds FILE] cmd TOTEM NAME [KEY=VALUE…]
//	totemctl [--config FILE] [--broker URL] [--creds FILE] report [filters] [-o table|csv|json]
//	totemctl [flags] sendlog TOTEM [-n N] [-o table|csv|json]
//	totemctl [flags] sendlog TOTEM --print [-n N]
//	totemctl [flags] sendlog --hub [--totem T] [--outcome O] [--from D] [--to D] [--before N] [--max N] [-o …]
//	totemctl [flags] sendlog show N [-o table|json]
//	totemctl [flags] sendlog receipt N --out FILE.zip
//	totemctl [flags] resend TOTEM OPID
//	totemctl [flags] void TOTEM OPID
//	totemctl [flags] correct TOTEM OPID consents=CODE=1|0,… | payment=REFERENCE
//	totemctl [flags] cancel TOTEM OPID [--reason TEXT]
//	totemctl [flags] refund TOTEM OPID [--reason TEXT]
//	totemctl [flags] resync TOTEM [-o table|json]
//	totemctl [flags] keygen --id ID --role technician|ops [--out FILE]
//
// status shows the hub's fleet registry: every totem provisioned, its
// presence and since when, backlog, devices and last outcome.
// cmd sends a console command and prints the totem's reply. sendlog shows
// the elenco invii of a totem or of the hub; resend, void, correct, cancel
// and resync are the technician's actions on it (void gives up a
// quarantined entry: its sequence number becomes a void at the hub). Every
// command is signed with the console's key (--key, key_file); keygen makes a
// key pair and prints the entry the totems' and the hub's configuration need
// to trust it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aslcns/totem/cmd/internal/cli"
	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/config"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/pki"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

func main() { cli.Main(run) }

// handler runs one of totemctl's words with the configuration and the
// arguments after it.
type handler func(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error

// commands are totemctl's words, each with what runs it.
var commands = func() map[string]handler {
	t := map[string]handler{
		"status": statusCmd, "report": report, "sendlog": sendlog, "resync": resync, "keygen": keygen,
		"locks": locks, "unlock": unlock, "lock": lockUser, "enroll": enrollTotem, "credentials": credentialsList, "job": job,
		"technician": technician, "audit": auditCmd, "config": configCmd, "cmd": consoleCmd,
	}
	for _, name := range actions {
		t[name] = func(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
			return action(ctx, cfg, name, args, stdout, stderr)
		}
	}
	return t
}()

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, g := globalFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadTotemctl(g.cfgPath)
	if err != nil {
		return err
	}
	if g.brokerURL != "" {
		cfg.Broker.URL = g.brokerURL
	}
	if g.credsPath != "" {
		cfg.Broker.CredentialsFile = g.credsPath
	}
	if g.keyPath != "" {
		cfg.KeyFile = g.keyPath
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("totemctl: no command")
	}
	if h, ok := commands[rest[0]]; ok {
		return h(ctx, cfg, rest[1:], stdout, stderr)
	}
	fs.Usage()
	return fmt.Errorf("totemctl: unknown command %q", rest[0])
}

// globals are the flags before the command's word.
type globals struct{ cfgPath, brokerURL, credsPath, keyPath string }

// globalFlags are totemctl's flags, with the usage of every command.
func globalFlags(stderr io.Writer) (*flag.FlagSet, *globals) {
	var g globals
	fs := cli.Flags("totemctl", stderr)
	fs.StringVar(&g.cfgPath, "config", "", "configuration file (default: embedded defaults)")
	fs.StringVar(&g.brokerURL, "broker", "", "MQTT broker URL (overrides the config)")
	fs.StringVar(&g.credsPath, "creds", "", "console credentials file (overrides the config)")
	fs.StringVar(&g.keyPath, "key", "", "console signing key file (overrides the config's key_file)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: totemctl [flags] status [--offline] [--alert] [--backlog N] [-o table|json] [TOTEM]\n"+
			"       totemctl [flags] report [--totem T] [--kind K] [--operator O] [--outcome accepted|rejected] [--from D] [--to D] [--by-day] [-o table|csv|json]\n"+
			"       totemctl [flags] sendlog TOTEM [-n N] [-o table|csv|json]\n"+
			"       totemctl [flags] sendlog TOTEM --print [-n N]\n"+
			"       totemctl [flags] sendlog --hub [--totem T] [--outcome accepted|rejected|refused|duplicate] [--from D] [--to D] [--before N] [--max N] [-o table|csv|json]\n"+
			"       totemctl [flags] sendlog show N [-o table|json]\n"+
			"       totemctl [flags] sendlog receipt N --out FILE.zip  # the entry's ricevuta: PDF, and a CSV of the errors\n"+
			"       totemctl [flags] resend TOTEM OPID\n"+
			"       totemctl [flags] void TOTEM OPID\n"+
			"       totemctl [flags] correct TOTEM OPID consents=CODE=1|0,… | payment=REFERENCE\n"+
			"       totemctl [flags] cancel TOTEM OPID [--reason TEXT]\n"+
			"       totemctl [flags] refund TOTEM OPID [--reason TEXT]  # the reader fee of a cancelled reader request\n"+
			"       totemctl [flags] resync TOTEM [-o table|json]\n"+
			"       totemctl [flags] cmd TOTEM NAME [KEY=VALUE…] [--json]   (status and jobs print tables; --json the raw reply)\n  commands: "+commandList(totemCommands())+"\n"+
			"       totemctl [flags] locks [-o table|json]\n"+
			"       totemctl [flags] unlock NAME\n"+
			"       totemctl [flags] lock NAME\n"+
			"       totemctl [flags] enroll TOTEM\n"+
			"       totemctl [flags] credentials [-o table|json]\n"+
			"       totemctl [flags] technician add NAME [--light] | list [-o table|json] | remove NAME|NUMBER\n"+
			"       totemctl [flags] technician unlock-code TOTEM NAME|NUMBER\n"+
			"       totemctl [flags] keygen --id ID --role technician|ops [--out FILE]\n"+
			"       totemctl [flags] job create --package FILE --target all|asl=NAME|ID,ID… [--rate N/min] [--abort-after-failures P%] [--id JOB]\n"+
			"       totemctl [flags] job status [JOB] [-o table|json] | job cancel JOB\n"+
			"       totemctl [flags] audit [--totem T|hub] [--actor A] [--action A] [--since T] [--until T] [--max N] [-o table|json]\n"+
			"       totemctl [flags] audit verify | audit add ACTION [DETAIL]\n"+
			"       totemctl [flags] config get TOTEM | config set TOTEM KEY=VALUE…\n"+
			"  every command is signed with the console's key (--key, key_file)")
		fs.PrintDefaults()
	}
	return fs, &g
}

// consoleCmd is `totemctl cmd TOTEM NAME [KEY=VALUE…] [--json]`: a
// console command to a totem, its reply printed.
func consoleCmd(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || !protocol.ValidTotemID(args[0]) {
		fs, _ := globalFlags(stderr)
		fs.Usage()
		return errors.New("totemctl: cmd TOTEM NAME [KEY=VALUE…]")
	}
	// The totems' table of commands is the verifier's: a name it
	// lacks would only come back refused. test-credentials is
	// test_credentials: names are snake case on the wire.
	args[1] = strings.ReplaceAll(args[1], "-", "_")
	if _, ok := cmdsig.Needs(args[0], args[1]); !ok {
		return fmt.Errorf("totemctl: %q is not a totem command; commands: %s", args[1], commandList(totemCommands()))
	}
	a := map[string]string{}
	asJSON := false
	for _, kv := range args[2:] {
		if kv == "--json" || kv == "-json" {
			asJSON = true
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("totemctl: argument %q: want KEY=VALUE", kv)
		}
		a[k] = v
	}
	return command(ctx, cfg, args[0], args[1], a, asJSON, stdout)
}

// actions are the subcommands that send the command of the same name to a
// totem (the technician's actions on its send log); each must be in the
// totems' table of sync/cmdsig, which TestEveryCommandRunsEndToEnd checks.
var actions = [5]string{"resend", "void", "correct", "cancel", "refund"}

// argHints are the arguments of the totems' commands, for the usage.
var argHints = map[string]string{"sendlog": " [n=N]", "sendlog_print": " [n=N]", "reprint": " id=N", "resend": " id=OPID",
	"void": " id=OPID", "correct": " id=OPID consents=…|payment=…", "cancel": " id=OPID [reason=…]", "refund": " id=OPID [reason=…]"}

// commandList lists a table of commands with their arguments and the role
// each needs.
func commandList(t map[string]string) string {
	out := make([]string, 0, len(t))
	for name, role := range t {
		out = append(out, name+argHints[name]+" ("+role+")")
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

type client struct {
	cm    *autopaho.ConnectionManager
	me    creds.File
	mu    sync.Mutex
	onMsg func(*paho.Publish)
}

func connect(ctx context.Context, cfg *config.Totemctl) (*client, error) {
	me, err := creds.Load(cfg.Broker.CredentialsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("totemctl: %w (is the hub running? it provisions the console)", err)
	}
	if err != nil { // malformed, or readable by others: creds says what to do
		return nil, fmt.Errorf("totemctl: %w", err)
	}
	u, err := url.Parse(cfg.Broker.URL)
	if err != nil {
		return nil, fmt.Errorf("totemctl: broker url: %w", err)
	}
	tlsCfg, caFile, err := cli.BrokerTLS(cfg.Broker.URL, cfg.Broker.TLSClient)
	if err != nil {
		return nil, fmt.Errorf("totemctl: %w", err)
	}
	c := &client{me: me}
	connErr := make(chan error, 1)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:      []*url.URL{u},
		TlsCfg:          tlsCfg,
		KeepAlive:       30,
		ConnectUsername: me.Username,
		ConnectPassword: []byte(me.Password),
		ConnectTimeout:  cfg.Timeout.Duration,
		OnConnectError: func(err error) {
			select {
			case connErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: me.Username + "-" + cli.RandomID(4),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.mu.Lock()
				f := c.onMsg
				c.mu.Unlock()
				if f != nil {
					f(pr.Packet)
				}
				return true, nil
			}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("totemctl: %w", err)
	}
	c.cm = cm
	actx, cancel := context.WithTimeout(ctx, cfg.Timeout.Duration)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cm.AwaitConnection(actx) }()
	select {
	case err := <-connErr:
		cm.Disconnect(context.Background())
		return nil, fmt.Errorf("totemctl: cannot connect to %s: %w", u.Host, pki.Explain(err, u.Host, caFile))
	case err := <-done:
		if err != nil {
			cm.Disconnect(context.Background())
			return nil, fmt.Errorf("totemctl: cannot connect to %s within %s", u.Host, cfg.Timeout.Duration)
		}
	}
	return c, nil
}

func (c *client) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.cm.Disconnect(ctx)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

// command sends a console command to a totem and prints the reply: a
// table for the replies that have one (status, jobs), the raw JSON for the
// others or when asJSON.
func command(ctx context.Context, cfg *config.Totemctl, totem, name string, args map[string]string, asJSON bool, stdout io.Writer) error {
	r, err := totemRequest(ctx, cfg, totem, name, args)
	if err != nil {
		return err
	}
	return renderReply(stdout, name, r.Data, asJSON)
}

// commandTTL is how long a signed command stays valid: the receiver keeps
// its id until then (and a clock skew allowance) to refuse a replay.
const commandTTL = time.Minute

// request publishes a command on topic with the MQTT 5 response topic rt and
// waits for the reply carrying its correlation data.
func (c *client) request(ctx context.Context, cfg *config.Totemctl, topic, rt, name string, args map[string]string) (*protocol.Reply, error) {
	id := cli.RandomID(8)
	replies := make(chan *protocol.Reply, 1)
	c.mu.Lock()
	c.onMsg = func(p *paho.Publish) {
		if p.Properties == nil || string(p.Properties.CorrelationData) != id {
			return
		}
		if r, err := protocol.DecodeReply(p.Payload); err == nil {
			select {
			case replies <- r:
			default:
			}
		}
	}
	c.mu.Unlock()
	if _, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: rt, QoS: 1}}}); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	key, err := cmdsig.LoadPrivate(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	target := cmdsig.HubTarget
	if topic != protocol.HubCmdTopic {
		target, _, _ = protocol.ParseTopic(topic)
	}
	cmd := protocol.Command{V: protocol.Version, ID: id, Name: name, Args: args}
	if err := cmdsig.Sign(key, &cmd, target, "", time.Now(), commandTTL); err != nil {
		return nil, err
	}
	b, _ := protocol.Marshal(cmd)
	if _, err := c.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: b,
		Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte(id)}}); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	t := time.NewTimer(cfg.Timeout.Duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("did not answer within %s (offline?)", cfg.Timeout.Duration)
	case r := <-replies:
		if !r.OK {
			if r.Code != "" {
				return nil, fmt.Errorf("%s (%s)", r.Error, r.Code)
			}
			return nil, errors.New(r.Error)
		}
		return r, nil
	}
}

// report asks the hub for the Reportistica and prints it.
func report(ctx context.Context, cfg *config.Totemctl, args []string, stdout, stderr io.Writer) error {
	fs := cli.Flags("report", stderr)
	totem := fs.String("totem", "", "only this totem")
	operator := fs.String("operator", "", "only this operator (card serial)")
	kind := fs.String("kind", "", "only this operation kind (consent, reader, activation…)")
	outcome := fs.String("outcome", "", "accepted or rejected")
	from := fs.String("from", "", "from this day (YYYY-MM-DD, inclusive)")
	to := fs.String("to", "", "to this day (YYYY-MM-DD, exclusive)")
	byDay := fs.Bool("by-day", false, "one row per day")
	out := outputFlag(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkOutput(*out, true); err != nil {
		return err
	}
	a := map[string]string{}
	for k, v := range map[string]string{"totem": *totem, "operator": *operator, "kind": *kind, "outcome": *outcome,
		"from": *from, "to": *to} {
		if v != "" {
			a[k] = v
		}
	}
	if *byDay {
		a["by_day"] = "true"
	}
	rows, err := hubReply[[]cms.ReportRow](ctx, cfg, "report", a, "report")
	if err != nil {
		return err
	}
	switch *out {
	case "json":
		return writeJSON(stdout, rows)
	case "csv":
		return writeCSV(stdout, []string{"day", "totem", "operator", "kind", "accepted", "rejected", "reject_codes"},
			rows, func(row cms.ReportRow) []string {
				return []string{row.Day, row.Totem, row.Operator, row.Kind, fmt.Sprint(row.Accepted), fmt.Sprint(row.Rejected), codes(row.Codes)}
			})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tTOTEM\tOPERATOR\tKIND\tACCEPTED\tREJECTED\tREJECT CODES")
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", or(row.Day), row.Totem, or(row.Operator), row.Kind,
			row.Accepted, row.Rejected, or(codes(row.Codes)))
	}
	return tw.Flush()
}

func codes(m map[string]int) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
