// Package totem is the root of the Totem module: self-service health totems
// for Italian ASL lobbies (totemd), the central gateway they synchronise
// with (totemhub) and the technicians' console (totemctl). See README.md.
//
// The root holds no code, only the tests that keep the module's shape.
package totem
