package uplink

import (
	"context"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/aslcns/totem/sync/protocol"
)

// helloReq is update.Req{V: 1, Kind: update.ReqHello}, spelled out: the
// link only forwards the update protocol, it does not speak it.
var helloReq = []byte(`{"v":1,"kind":"hello"}`)

func (u *Uplink) setupUpdates(ctx context.Context, cm *autopaho.ConnectionManager) error {
	if u.o.OnUpdate == nil {
		return nil
	}
	t := u.o.Totem
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: protocol.Topic(t, protocol.LeafUpdate), QoS: 1},
	}}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(t, protocol.LeafUpdateReq), QoS: 1, Payload: helloReq}); err != nil {
		return fmt.Errorf("update hello: %w", err)
	}
	return nil
}

// PublishUpdateReq sends b on the totem's update_req topic (QoS 1).
func (u *Uplink) PublishUpdateReq(ctx context.Context, b []byte) error {
	u.mu.Lock()
	cm := u.cm
	u.mu.Unlock()
	if cm == nil || !u.connected.Load() {
		return ErrOffline
	}
	_, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(u.o.Totem, protocol.LeafUpdateReq), QoS: 1, Payload: b})
	return err
}

// TelemetrySent is when a health report last left; zero before the
// first. An update's health check wants one after its restart.
func (u *Uplink) TelemetrySent() time.Time {
	n := u.telemetrySent.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
