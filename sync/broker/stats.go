package broker

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

// Stats counts what the broker refused or survived since it started: abuse
// is counted, not logged line by line, so a flood shows as a figure.
type Stats struct {
	AcceptErrors    int64 // Accept failures (EMFILE…), each retried
	OverCapacity    int64 // connections closed at accept: max_connections open already
	ConnectTimeouts int64 // connections closed for no CONNECT within connect_timeout
	OversizeConnect int64 // connections closed for a first packet over max_connect_packet
	NotConnect      int64 // connections closed for a first packet that is not a CONNECT
	TLSFailures     int64 // connections closed for a failed TLS handshake (not TLS, unknown CA…)

	BadCredentials   int64 // CONNACK 0x86: anonymous, unknown user or wrong secret
	Lockouts         int64 // users locked after MaxFailures failed authentications in a row
	LockedRefused    int64 // CONNACK 0x8A: a locked user (the failure that locked it included)
	ExpiredRefused   int64 // CONNACK 0x86 "expired": the right secret past its expiry
	EnrollConns      int64 // connections of the enroll user admitted
	EnrollRate       int64 // CONNACK 0x9F: the enroll user over its limit, per source or overall
	NotAuthorized    int64 // CONNACK 0x87: a known user connecting as it may not (its Last Will)
	ClientIDRefused  int64 // CONNACK 0x85: another user's client id, or a totem's own not its name
	RetainRefusedCon int64 // CONNACK 0x9A: a retained Last Will where nothing is retained
	Takeovers        int64 // a user's connection replaced by a new one of the same user and client id
	TakeoverWaits    int64 // connections that waited for the previous one of their client id to end
	TakeoverTimeouts int64 // of those, let in before it ended (takeoverWait)

	PublishDenied   int64 // publishes refused by the ACL (and to $SYS)
	SubscribeDenied int64 // subscriptions refused by the ACL
	RetainRefused   int64 // retained publishes refused: topic not retained, or over maxRetained
	LogSuppressed   int64 // refusal log lines left out by the rate limit
}

// String lists the non-zero counters as name=value, "" when all are zero.
func (s Stats) String() string {
	var b strings.Builder
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if n := v.Field(i).Int(); n != 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%d", v.Type().Field(i).Name, n)
		}
	}
	return b.String()
}

// counters are the live Stats.
type counters struct {
	acceptErrors, overCapacity, connectTimeouts, oversizeConnect, notConnect atomic.Int64
	tlsFailures, lockouts, lockedRefused                                     atomic.Int64
	enrollConnections, enrollRateRefused, expiredRefused                     atomic.Int64
	badCredentials, notAuthorized, clientIDRefused, retainRefusedCon         atomic.Int64
	takeovers, publishDenied, subscribeDenied, retainRefused, logSuppressed  atomic.Int64
	takeoverWaits, takeoverTimeouts                                          atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		AcceptErrors:     c.acceptErrors.Load(),
		OverCapacity:     c.overCapacity.Load(),
		ConnectTimeouts:  c.connectTimeouts.Load(),
		OversizeConnect:  c.oversizeConnect.Load(),
		NotConnect:       c.notConnect.Load(),
		TLSFailures:      c.tlsFailures.Load(),
		BadCredentials:   c.badCredentials.Load(),
		Lockouts:         c.lockouts.Load(),
		LockedRefused:    c.lockedRefused.Load(),
		ExpiredRefused:   c.expiredRefused.Load(),
		EnrollConns:      c.enrollConnections.Load(),
		EnrollRate:       c.enrollRateRefused.Load(),
		NotAuthorized:    c.notAuthorized.Load(),
		ClientIDRefused:  c.clientIDRefused.Load(),
		RetainRefusedCon: c.retainRefusedCon.Load(),
		Takeovers:        c.takeovers.Load(),
		TakeoverWaits:    c.takeoverWaits.Load(),
		TakeoverTimeouts: c.takeoverTimeouts.Load(),
		PublishDenied:    c.publishDenied.Load(),
		SubscribeDenied:  c.subscribeDenied.Load(),
		RetainRefused:    c.retainRefused.Load(),
		LogSuppressed:    c.logSuppressed.Load(),
	}
}

// logEvery is how often a kind of refusal line is written at most: a
// client repeating a refusal thousands of times writes a line a period,
// with the count held back, not thousands (internal/lograte).
const logEvery = 6 * time.Second
