package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The hub that embeds the broker takes the fleet's operations from it and
// answers them in-process (hub.Local), not over a loopback MQTT
// connection: no encoding, no socket, no per-message acknowledgement, and
// above all no store of the hub's unacknowledged messages, which mochi
// holds without bound (one copy each, the whole store copied again every
// second to look for expired ones), acknowledges to the publisher before
// the hub has them, and drops past its quota. In-process, a message is
// handed over on its publisher's connection goroutine, so a hub that waits
// for room holds that publisher back (TCP flow control), and nothing is
// held for it in between.
//
// mochi's inline client, which this uses, is the client id "inline": a
// network client asking for it is refused (admit: client_id_in_use, its
// username differs).

// localSubID is the id of the broker's in-process subscriptions (mochi
// keys them by filter and id: one per filter).
const localSubID = 1

// Subscribe calls handle for each message published on filter, with the
// topic and payload (valid during the call only), in each publisher's
// order and on its connection's goroutine, after the broker acknowledged
// the message to the publisher: while handle runs, the broker reads
// nothing more from that publisher.
func (s *Server) Subscribe(filter string, handle func(topic string, payload []byte)) error {
	return s.mq.Subscribe(filter, localSubID, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		handle(pk.TopicName, pk.Payload)
	})
}

// Unsubscribe ends Subscribe's subscription to filter.
func (s *Server) Unsubscribe(filter string) error { return s.mq.Unsubscribe(filter, localSubID) }

// Publish delivers payload on topic to its subscribers, at QoS qos at
// most, as the broker itself (not retained).
func (s *Server) Publish(topic string, payload []byte, qos byte) error {
	return s.mq.Publish(topic, payload, false, qos)
}
