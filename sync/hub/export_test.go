package hub

import "github.com/eclipse/paho.golang/paho"

// Observe lets the external tests feed the registry a message.
func Observe(f *Fleet, p *paho.Publish) bool { return f.observe(p) }

// OpsSubscribed reports whether a partitioned hub is subscribed to
// totem's operations on its connection.
func OpsSubscribed(h *Hub, totem string) bool {
	h.ops.mu.Lock()
	defer h.ops.mu.Unlock()
	return h.ops.have[totem]
}
