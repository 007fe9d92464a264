package rollout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/update"
)

// ServeOptions configure Serve's MQTT connection: the hub's credentials
// with a client id of its own (a second connection of the hub user).
type ServeOptions struct {
	URL      string
	TLS      *tls.Config
	ClientID string
	Username string
	Password string
	Logger   *slog.Logger
	// Tick is how often jobs move on (default 10 s): a wave is at most
	// a job's rate per minute, so a tick shorter than a minute only
	// spreads the offers.
	Tick time.Duration
}

// Publisher is where the server sends: the hub's MQTT connection.
type Publisher interface {
	Publish(ctx context.Context, p *paho.Publish) (*paho.PublishResponse, error)
}

// mqttSender is the Sender over MQTT.
type mqttSender struct {
	mu  sync.Mutex
	pub Publisher
	log *slog.Logger
}

func (s *mqttSender) send(totem string, m update.Msg) error {
	s.mu.Lock()
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return errors.New("rollout: not connected")
	}
	m.V = protocol.Version
	b, err := protocol.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pub.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafUpdate), QoS: 1, Payload: b})
	return err
}

func (s *mqttSender) Offer(totem, job string, manifest []byte) error {
	return s.send(totem, update.Msg{Kind: update.MsgOffer, Job: job, Manifest: manifest})
}

func (s *mqttSender) Cancel(totem, job string) error {
	return s.send(totem, update.Msg{Kind: update.MsgCancel, Job: job})
}

// NewMQTTSender returns the Sender Serve uses, to pass to Open.
func NewMQTTSender() Sender { return &mqttSender{} }

// Serve connects to the broker, answers the totems' update requests
// (hello: the pending offer again; get: a chunk; status: recorded) and
// ticks the jobs, until ctx ends. send must be the Sender r was opened
// with (NewMQTTSender).
func Serve(ctx context.Context, r *Rollout, send Sender, o ServeOptions) error {
	ms, ok := send.(*mqttSender)
	if !ok {
		return errors.New("rollout: Serve needs the sender of NewMQTTSender")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ms.log = o.Logger
	if o.Tick == 0 {
		o.Tick = 10 * time.Second
	}
	srv, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("rollout: broker url: %w", err)
	}
	// Bounded: a totem's request dropped here is asked again after its
	// timeout; an upload piece waits for room instead.
	reqs := make(chan *paho.Publish, 256)
	// subscribed wakes the loop below once a connection's subscriptions
	// are in place, to send the unanswered offers again (reoffer).
	subscribed := make(chan struct{}, 1)
	cm, err := autopaho.NewConnection(ctx, serveConfig(ctx, srv, o, reqs, subscribed))
	if err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	ms.mu.Lock()
	ms.pub = cm
	ms.mu.Unlock()
	t := time.NewTicker(o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			cm.Disconnect(dctx)
			cancel()
			<-cm.Done()
			return nil
		case <-t.C:
			if err := r.Tick(); err != nil {
				o.Logger.Warn("rollout tick", "err", err)
			}
		case <-subscribed:
			r.reoffer(ms, o.Logger)
		case p := <-reqs:
			r.handle(ms, p, o.Logger)
		}
	}
}

// serveConfig is Serve's connection: on every connection up it subscribes
// to the totems' update requests and the uploads, then wakes subscribed;
// what arrives goes to reqs (an upload piece waits for room, a request
// is dropped when reqs is full: the totem asks again after its timeout).
func serveConfig(ctx context.Context, srv *url.URL, o ServeOptions, reqs chan<- *paho.Publish, subscribed chan<- struct{}) autopaho.ClientConfig {
	return autopaho.ClientConfig{
		ServerUrls: []*url.URL{srv}, TlsCfg: o.TLS, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ReconnectBackoff: autopaho.NewExponentialBackoff(200*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectUsername:  o.Username, ConnectPassword: []byte(o.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() { // waits for the SUBACK: not on paho's goroutine
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
					{Topic: protocol.SharedUpdateFilter, QoS: 1},
					{Topic: protocol.SharedHubUploadFilter, QoS: 1},
				}}); err != nil {
					o.Logger.Error("update requests not subscribed", "err", err)
					return
				}
				select {
				case subscribed <- struct{}{}:
				default: // one pending wake-up is enough
				}
			}()
		},
		OnConnectError: func(err error) { o.Logger.Warn("rollout connect failed", "err", err) },
		ClientConfig: paho.ClientConfig{ClientID: o.ClientID, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if strings.HasPrefix(pr.Packet.Topic, protocol.HubUploadTopic("")) {
					select { // an upload waits: a piece lost would fail its digest
					case reqs <- pr.Packet:
					case <-ctx.Done():
					}
					return true, nil
				}
				select {
				case reqs <- pr.Packet:
				default: // the totem asks again after its timeout
				}
				return true, nil
			}}},
	}
}

// reoffer sends again, once the hub's connection is up and subscribed,
// the offers no totem has answered yet. An offer a tick made while the
// hub was not connected failed, and a totem's hello (on its connection)
// that reached the broker before the hub subscribed was dropped: without
// this, such an offer waited for ResendAfter. A totem's Offer is
// idempotent, so one that did get the offer loses nothing.
func (r *Rollout) reoffer(s *mqttSender, log *slog.Logger) {
	jobs, err := r.Jobs()
	if err != nil {
		log.Warn("update offers not sent again", "err", err)
		return
	}
	for _, j := range jobs {
		if j.State != JobRunning {
			continue
		}
		st, err := r.Status(j.ID)
		if err != nil {
			log.Warn("update offers not sent again", "job", j.ID, "err", err)
			continue
		}
		for _, t := range j.Targets {
			if tt := st.Totems[t]; tt.Offered.IsZero() || tt.State != update.StateQueued {
				continue
			}
			if err := s.Offer(t, j.ID, st.Job.Manifest); err != nil {
				log.Warn("update offer not sent", "totem", t, "job", j.ID, "err", err)
			}
		}
	}
}

// handle answers one request. The topic names the totem (the broker's
// ACL lets a totem publish only on its own), so a totem can only fetch
// what it was offered and only report for itself.
func (r *Rollout) handle(s *mqttSender, p *paho.Publish, log *slog.Logger) {
	if console, ok := strings.CutPrefix(p.Topic, protocol.HubUploadTopic("")); ok {
		u, err := update.DecodeUpload(p.Payload)
		if err == nil {
			err = r.Upload(console, u)
		}
		if err != nil {
			log.Warn("upload piece dropped", "console", console, "err", err)
		}
		return
	}
	totem, leaf, ok := protocol.ParseTopic(p.Topic)
	if !ok || leaf != protocol.LeafUpdateReq {
		return
	}
	req, err := update.DecodeReq(p.Payload)
	if err != nil {
		log.Warn("update request dropped", "totem", totem, "err", err)
		return
	}
	switch req.Kind {
	case update.ReqHello:
		if job, manifest := r.pending(totem); job != "" {
			if err := s.Offer(totem, job, manifest); err != nil {
				log.Warn("update offer not sent", "totem", totem, "job", job, "err", err)
			}
		}
	case update.ReqGet:
		m := update.Msg{Kind: update.MsgChunk, Job: req.Job, Chunk: req.Chunk}
		if m.Data, err = r.Chunk(totem, req.Job, req.Chunk); err != nil {
			m.Kind, m.Data, m.Error = update.MsgError, nil, err.Error()
		}
		if err := s.send(totem, m); err != nil {
			log.Warn("update chunk not sent", "totem", totem, "job", req.Job, "err", err)
		}
	case update.ReqStatus:
		if err := r.Report(totem, *req.Status); err != nil {
			log.Warn("update status refused", "totem", totem, "job", req.Status.Job, "err", err)
			return
		}
		log.Info("update status", "totem", totem, "job", req.Status.Job, "state", req.Status.State, "reason", req.Status.Reason)
	}
}

// pending returns the running job offered to totem that it has not
// finished, if any.
func (r *Rollout) pending(totem string) (string, []byte) {
	jobs, err := r.Jobs()
	if err != nil {
		return "", nil
	}
	for _, j := range jobs {
		if j.State != JobRunning {
			continue
		}
		st, err := r.Status(j.ID)
		if err != nil {
			continue
		}
		if t, ok := st.Totems[totem]; ok && !t.Offered.IsZero() && !update.Final(t.State) {
			return j.ID, st.Job.Manifest
		}
	}
	return "", nil
}
