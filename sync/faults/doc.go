// Package faults is the fault harness of the sync stack: its tests run a
// totem's outbox and uplink against a real broker and the hub while the
// totem is killed with SIGKILL under load, the link is cut and restored,
// the broker restarts and the hub dies between applying and answering, and
// check that every acknowledged operation is applied exactly once, in order.
// The central side runs on the embedded broker and on Debian's mosquitto
// (with the ACL of deploy/mosquitto), with one hub instance or two
// sharing $share/totemhub.
//
// The package holds no code outside its tests.
package faults
