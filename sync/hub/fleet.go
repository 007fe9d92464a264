package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aslcns/totem/internal/clock"
	"github.com/aslcns/totem/sync/creds"
	"github.com/aslcns/totem/sync/protocol"
	"github.com/eclipse/paho.golang/paho"
)

// Presence values of a registry entry beyond protocol.Online/Offline.
const (
	NeverSeen = "never_seen" // provisioned, no message from it yet

	ReasonWill    = "will"    // the broker published its Last Will
	ReasonGoodbye = "goodbye" // it said offline itself before leaving
	ReasonSilent  = "silent"  // nothing from it for 3 telemetry intervals
)

// TotemStatus is the registry's entry for one totem: what the hub last
// heard from it. Everything but Totem, Status, Since, Reason and LastSeen
// comes from the totem and is shown as the totem said it (a console must
// sanitise it before printing).
type TotemStatus struct {
	Totem    string    `json:"totem"`
	Status   string    `json:"status"` // online, offline or never_seen
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"` // why offline
	LastSeen time.Time `json:"last_seen,omitzero"`
	Session  uint64    `json:"session,omitempty"` // of its current (or last) connection
	Boot     string    `json:"boot,omitempty"`
	Version  string    `json:"version,omitempty"`
	Location string    `json:"location,omitempty"`
	ASL      string    `json:"asl,omitempty"` // the ASL it serves, as it says

	TelemetryAt time.Time         `json:"telemetry_at,omitzero"` // the totem's clock
	Queue       int               `json:"queue"`
	OldestSeq   uint64            `json:"oldest_seq,omitempty"`
	Oldest      time.Time         `json:"oldest,omitzero"` // oldest pending operation, the totem's clock
	Storage     float64           `json:"storage,omitempty"`
	StorageHigh bool              `json:"storage_alarm,omitempty"`
	Quarantined int               `json:"quarantined,omitempty"`
	Devices     map[string]string `json:"devices,omitempty"`
	ClockSynced *bool             `json:"clock_synced,omitempty"` // from its latest operation's stamp
	Last        *LastOp           `json:"last,omitempty"`
	// CredentialsExpire is when the broker refuses the totem's current
	// secret (the embedded broker's user registry; zero: never, or a hub
	// on an external broker). Read when listed, not kept.
	CredentialsExpire time.Time `json:"credentials_expire,omitzero"`
	Alerts            []string  `json:"alerts,omitempty"` // computed when listed
	// ReissueCounter: the hub's configuration says the totem stands at an
	// ASL counter enabled to reissue cards (FleetOptions.Counters). Set
	// when listed, never from what the totem says.
	ReissueCounter bool `json:"reissue_counter,omitempty"`
}

// LastOp is the hub's answer to a totem's latest operation.
type LastOp struct {
	Seq        uint64    `json:"seq"`
	Kind       string    `json:"kind"`
	Transport  string    `json:"transport"`
	Processing string    `json:"processing"`
	Codes      []string  `json:"codes,omitempty"`
	At         time.Time `json:"at"`
}

// FleetPage is the Data of the hub's fleet command.
type FleetPage struct {
	At          time.Time     `json:"at"`
	SilentAfter float64       `json:"silent_after_s"`
	Total       int           `json:"total"` // entries that match, on every page
	Totems      []TotemStatus `json:"totems"`
	Next        string        `json:"next,omitempty"` // after= of the next page; empty: no more
}

// FleetFilter selects entries of the registry.
type FleetFilter struct {
	Offline bool // offline or never seen
	Alert   bool // with an alert
	Backlog int  // at least this many operations queued at the totem; 0: any
}

// FleetOptions configure OpenFleet.
type FleetOptions struct {
	// TelemetryInterval is the totems' telemetry interval: a totem heard
	// from for none of 3 intervals is offline ("silent"). Default 30 s.
	TelemetryInterval time.Duration
	Logger            *slog.Logger
	Now               func() time.Time // default time.Now
	// Counters are the totems that stand at ASL counters enabled to
	// reissue cards (seed 002, "solo presso sportelli aziendali
	// abilitati"): the hub tells the CMS so with each of their operations
	// (cms.Op.Counter), whatever a totem claims.
	Counters []string
}

// Fleet is the hub's registry of its totems, kept in memory, written to
// its FleetStore every second (what changed, in one write: a telemetry
// message costs no write of its own) so that a restarted hub still lists
// every totem, the offline ones included. On a store other hub processes
// share (SharedFleetStore) it also reads, every second, the entries they
// wrote: every hub lists every totem, with the answer to its latest
// operation whichever hub applied it. It is safe for concurrent use.
type Fleet struct {
	st     FleetStore
	log    *slog.Logger
	silent time.Duration
	now    func() time.Time
	start  time.Time
	// counters: FleetOptions.Counters, fixed at open.
	counters map[string]bool

	mu    sync.Mutex
	m     map[string]*entry
	dirty map[string]bool

	// On a SharedFleetStore: the store's clock of the latest write read,
	// and whether the last write or read failed (logged once an outage).
	cursor  time.Time
	failing bool

	stop func() // ends the loop calling tick and waits for it
}

type entry struct {
	TotemStatus
	heard  time.Time        // last message, or the hub's start: the silence clock
	events []protocol.Event // the latest maxEvents, oldest first; in memory only
}

// maxEvents is how many of a totem's recent events the registry keeps for
// the console.
const maxEvents = 20

// OpenFleet opens (creating) the registry in the bbolt file at path (one
// process's: presence.db) and starts its clock.
func OpenFleet(path string, o FleetOptions) (*Fleet, error) {
	st, err := openBoltFleet(path)
	if err != nil {
		return nil, err
	}
	f, err := NewFleet(st, o)
	if err != nil {
		st.Close()
		return nil, err
	}
	return f, nil
}

// NewFleet opens the registry kept in st and starts its clock; closing
// the registry closes st.
func NewFleet(st FleetStore, o FleetOptions) (*Fleet, error) {
	if o.TelemetryInterval <= 0 {
		o.TelemetryInterval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &Fleet{st: st, log: o.Logger, silent: 3 * o.TelemetryInterval, now: o.Now, start: o.Now(),
		m: make(map[string]*entry), dirty: make(map[string]bool),
		counters: make(map[string]bool, len(o.Counters))}
	for _, id := range o.Counters {
		f.counters[id] = true
	}
	if b, ok := st.(*boltFleet); ok {
		b.log = o.Logger
	}
	if sh, ok := st.(SharedFleetStore); ok {
		all, cursor, err := sh.Changed(time.Time{})
		if err != nil {
			return nil, fmt.Errorf("hub: open fleet registry: %w", err)
		}
		f.cursor = cursor
		for _, ts := range all {
			f.m[ts.Totem] = &entry{TotemStatus: ts, heard: f.start}
		}
	} else {
		all, err := st.Load()
		if err != nil {
			return nil, fmt.Errorf("hub: open fleet registry: %w", err)
		}
		for _, ts := range all {
			f.m[ts.Totem] = &entry{TotemStatus: ts, heard: f.start}
		}
	}
	f.stop = clock.Go(context.Background(), func(ctx context.Context) { clock.Every(ctx, time.Second, f.tick) })
	return f, nil
}

// Close stops the registry's clock and writes what changed.
func (f *Fleet) Close() error {
	f.stop()
	err := f.flush()
	if cerr := f.st.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReissueCounter reports whether the registry knows totem as standing at
// an ASL counter enabled to reissue cards. A nil Fleet knows none.
func (f *Fleet) ReissueCounter(totem string) bool {
	return f != nil && f.counters[totem]
}

// Provisioned adds totems that were provisioned, as never seen unless the
// registry knows them already.
func (f *Fleet) Provisioned(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if _, ok := f.m[id]; !ok && protocol.ValidTotemID(id) {
			f.m[id] = &entry{TotemStatus: TotemStatus{Totem: id, Status: NeverSeen}, heard: f.start}
			f.dirty[id] = true
		}
	}
}

// tick marks silent totems offline and writes changes: the registry's
// clock calls it once a second.
func (f *Fleet) tick() (done bool) {
	f.sweep()
	err := f.flush()
	if err == nil {
		err = f.refresh()
	}
	switch {
	case err != nil && !f.failing:
		f.log.Warn("fleet registry not written or read: retrying every second", "err", err)
	case err == nil && f.failing:
		f.log.Info("fleet registry written and read again")
	}
	f.failing = err != nil
	return false
}

// refresh reads the entries other hub processes wrote to a shared store
// since the last look and merges them in (merge). A little before the
// last look, since a write's clock is taken before it commits: a write
// still committing then is read the next time; entries read twice merge
// to the same.
func (f *Fleet) refresh() error {
	sh, ok := f.st.(SharedFleetStore)
	if !ok {
		return nil
	}
	since := f.cursor
	if !since.IsZero() {
		since = since.Add(-refreshOverlap)
	}
	got, cursor, err := sh.Changed(since)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cursor.After(f.cursor) {
		f.cursor = cursor
	}
	for i := range got {
		r := &got[i]
		e, ok := f.m[r.Totem]
		if !ok {
			f.m[r.Totem] = &entry{TotemStatus: *r, heard: later(f.start, r.LastSeen)}
			continue
		}
		f.merge(e, r)
	}
	return nil
}

// refreshOverlap is how far before its last look refresh reads again.
const refreshOverlap = 5 * time.Second

// merge brings into e what another hub process wrote of the totem (r):
// what it heard, when it heard it later than this hub (all hubs hear
// every totem's presence and telemetry, so that is rare), and the answer
// to a later operation (which only the hub that applied it knows).
// f.mu is held.
func (f *Fleet) merge(e *entry, r *TotemStatus) {
	if r.LastSeen.After(e.LastSeen) || (r.LastSeen.Equal(e.LastSeen) && !f.dirty[e.Totem] && e.Status != NeverSeen) ||
		(e.Status == NeverSeen && r.Status != NeverSeen) {
		last, synced := e.Last, e.ClockSynced
		e.TotemStatus = *r
		e.Last, e.ClockSynced = last, synced
		e.heard = later(e.heard, r.LastSeen)
	}
	if r.Last != nil && (e.Last == nil || r.Last.Seq > e.Last.Seq || (r.Last.Seq == e.Last.Seq && r.Last.At.After(e.Last.At))) {
		e.Last, e.ClockSynced = r.Last, r.ClockSynced
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sweep marks offline every online totem not heard from for the silence
// window.
func (f *Fleet) sweep() {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, e := range f.m {
		if e.Status == protocol.Online && now.Sub(e.heard) >= f.silent {
			e.Status, e.Reason, e.Since = protocol.Offline, ReasonSilent, e.LastSeen
			if e.Since.IsZero() {
				e.Since = e.heard
			}
			f.dirty[id] = true
			f.log.Info("totem silent: offline", "totem", id, "last_seen", e.LastSeen)
		}
	}
}

func (f *Fleet) flush() error {
	f.mu.Lock()
	if len(f.dirty) == 0 {
		f.mu.Unlock()
		return nil
	}
	vals := make([]TotemStatus, 0, len(f.dirty))
	for id := range f.dirty {
		if e, ok := f.m[id]; ok {
			vals = append(vals, e.copy())
		}
	}
	f.dirty = make(map[string]bool)
	f.mu.Unlock()
	if err := f.st.Save(vals); err != nil {
		// Written the next time, with what changed meanwhile.
		f.mu.Lock()
		for _, ts := range vals {
			f.dirty[ts.Totem] = true
		}
		f.mu.Unlock()
		return err
	}
	return nil
}

// copy returns the entry's status, sharing nothing with it.
func (e *entry) copy() TotemStatus {
	ts := e.TotemStatus
	if len(ts.Devices) > 0 {
		d := make(map[string]string, len(ts.Devices))
		for k, v := range ts.Devices {
			d[k] = v
		}
		ts.Devices = d
	}
	if ts.Last != nil {
		l := *ts.Last
		l.Codes = append([]string(nil), l.Codes...)
		ts.Last = &l
	}
	if ts.ClockSynced != nil {
		c := *ts.ClockSynced
		ts.ClockSynced = &c
	}
	return ts
}

// get returns the entry of totem, creating it; f.mu is held.
func (f *Fleet) get(totem string) *entry {
	e, ok := f.m[totem]
	if !ok {
		e = &entry{TotemStatus: TotemStatus{Totem: totem, Status: NeverSeen}}
		f.m[totem] = e
	}
	f.dirty[totem] = true
	return e
}

// seen records a live message from totem: it is connected.
func (f *Fleet) seen(e *entry, now time.Time) {
	e.LastSeen, e.heard = now, now
	if e.Status != protocol.Online {
		e.Status, e.Reason, e.Since = protocol.Online, "", now
	}
}

// observe records what a message says about its totem; it returns false
// when the message goes on to the worker (operations, presence: the
// policy follows an online) and true when the registry consumed it
// (telemetry).
func (f *Fleet) observe(p *paho.Publish) bool {
	totem, leaf, ok := protocol.ParseTopic(p.Topic)
	if !ok {
		return false
	}
	now := f.now().UTC()
	switch leaf {
	case protocol.LeafState:
		st, err := protocol.DecodeState(p.Payload)
		if err != nil || st.Totem != totem {
			return false // the worker counts and logs it
		}
		f.mu.Lock()
		f.presence(f.get(totem), st, p.Retain, now)
		f.mu.Unlock()
		return false
	case protocol.LeafTelemetry:
		t, err := protocol.DecodeTelemetry(p.Payload)
		if err != nil || t.Totem != totem {
			return true // QoS 0, advisory: the next one will do
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		e := f.get(totem)
		if !p.Retain {
			f.seen(e, now)
		} else if !e.TelemetryAt.IsZero() && !t.At.After(e.TelemetryAt) {
			return true // an old retained copy: the registry knows better
		}
		e.TelemetryAt = t.At
		e.Queue, e.OldestSeq, e.Oldest = t.Queue.Depth, t.Queue.OldestSeq, t.Queue.Oldest
		e.Devices = nil
		for d, s := range t.Devices {
			if len(e.Devices) == maxDevices {
				break
			}
			if e.Devices == nil {
				e.Devices = make(map[string]string)
			}
			e.Devices[clip(d)] = clip(s)
		}
		if s := t.Storage; s != nil {
			e.Storage, e.StorageHigh, e.Quarantined = s.Fraction, s.Alarm, s.Quarantined
		}
		return true
	case protocol.LeafEvent:
		ev, err := protocol.DecodeEvent(p.Payload)
		if err != nil || ev.Totem != totem || p.Retain {
			return true // advisory, QoS 0: nothing to answer
		}
		ev.Level, ev.Code, ev.Message = clip(ev.Level), clip(ev.Code), clip(ev.Message)
		f.mu.Lock()
		defer f.mu.Unlock()
		e := f.get(totem)
		f.seen(e, now)
		if len(e.events) == maxEvents {
			e.events = append(e.events[:0], e.events[1:]...)
		}
		e.events = append(e.events, *ev)
		return true
	default:
		if !p.Retain {
			f.mu.Lock()
			f.seen(f.get(totem), now)
			f.mu.Unlock()
		}
		return false
	}
}

// Events returns totem's recent events (the latest 20 since the hub
// started), newest first, as the totem sent them (clipped; a console must
// sanitise them before showing them).
func (f *Fleet) Events(totem string) []protocol.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.m[totem]
	if !ok {
		return nil
	}
	out := make([]protocol.Event, len(e.events))
	for i, ev := range e.events {
		out[len(out)-1-i] = ev
	}
	return out
}

// presence applies a State; f.mu is held. A state from an older
// connection than the one the registry knows (lower session in the same
// boot, or an offline from another boot than the current online one) is
// stale and changes nothing: the Last Will of a connection the broker
// noticed dead only after the totem reconnected arrives after the newer
// online.
func (f *Fleet) presence(e *entry, st *protocol.State, retained bool, now time.Time) {
	if st.Session != 0 && e.Session != 0 {
		sameBoot := clip(st.Boot) == e.Boot
		switch {
		case sameBoot && st.Session < e.Session:
			return
		case !sameBoot && st.Status == protocol.Offline && e.Status == protocol.Online:
			return
		}
	}
	if retained && st.Status == protocol.Online && e.Status == protocol.Offline && e.Session == st.Session &&
		(clip(st.Boot) == e.Boot || st.Boot == "") {
		return // the retained birth of a connection the registry saw end
	}
	if st.Session != 0 {
		e.Session = st.Session
	}
	if st.Boot != "" {
		e.Boot = clip(st.Boot)
	}
	if st.Version != "" {
		e.Version = clip(st.Version)
	}
	if st.Location != "" {
		e.Location = clip(st.Location)
	}
	if st.ASL != "" {
		e.ASL = clip(st.ASL)
	}
	if !retained {
		e.LastSeen, e.heard = now, now
	}
	switch st.Status {
	case protocol.Online:
		if e.Status != protocol.Online {
			e.Since = now
			if retained && !st.Since.IsZero() {
				e.Since = st.Since
			}
		}
		e.Status, e.Reason = protocol.Online, ""
	case protocol.Offline:
		if e.Status != protocol.Offline {
			e.Since = now
		}
		e.Status, e.Reason = protocol.Offline, ReasonWill
		if !st.Since.IsZero() {
			e.Reason = ReasonGoodbye
		}
	}
}

// answered records the hub's answer to one of a totem's operations.
func (f *Fleet) answered(op *protocol.Op, res *protocol.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.get(op.Totem)
	if e.Last != nil && e.Last.Seq > op.Seq && res.Transport.Status == protocol.TransportReceived {
		return // an older operation's duplicate
	}
	l := &LastOp{Seq: op.Seq, Kind: op.Kind, Transport: res.Transport.Status, Processing: res.Processing.Status, At: res.Transport.At}
	for _, er := range res.Processing.Errors {
		l.Codes = append(l.Codes, er.Code)
	}
	e.Last = l
	if op.Stamp != nil {
		synced := op.Stamp.Synced
		e.ClockSynced = &synced
	}
}

// alerts says what a console should look at; e is a copy.
func alerts(e *TotemStatus) []string {
	var a []string
	if e.Status != protocol.Online {
		a = append(a, "offline")
	}
	devs := make([]string, 0, len(e.Devices))
	for d, s := range e.Devices {
		if s != "ok" {
			devs = append(devs, d)
		}
	}
	sort.Strings(devs)
	for _, d := range devs {
		a = append(a, "device:"+d)
	}
	if e.StorageHigh {
		a = append(a, "storage")
	}
	if e.Quarantined > 0 {
		a = append(a, "quarantine")
	}
	if e.ClockSynced != nil && !*e.ClockSynced {
		a = append(a, "clock")
	}
	return a
}

// List returns the entries that match, by totem id.
func (f *Fleet) List(flt FleetFilter) []TotemStatus {
	f.mu.Lock()
	out := make([]TotemStatus, 0, len(f.m))
	for _, e := range f.m {
		ts := e.copy()
		ts.ReissueCounter = f.counters[ts.Totem]
		out = append(out, ts)
	}
	f.mu.Unlock()
	sel := out[:0]
	for _, ts := range out {
		ts.Alerts = alerts(&ts)
		switch {
		case flt.Offline && ts.Status == protocol.Online:
		case flt.Alert && len(ts.Alerts) == 0:
		case flt.Backlog > 0 && ts.Queue < flt.Backlog:
		default:
			sel = append(sel, ts)
		}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].Totem < sel[j].Totem })
	return sel
}

// credentialsExpiry fills in each totem's credentials expiry from the
// broker's user registry, in one read for the page.
func (h *Hub) credentialsExpiry(page []TotemStatus) {
	if h.o.Accounts == nil || len(page) == 0 {
		return
	}
	users, err := h.o.Accounts.Credentials()
	if err != nil {
		h.log.Warn("fleet: credentials expiry not read", "err", err)
		return
	}
	exp := make(map[string]time.Time, len(users))
	for _, u := range users {
		if u.Role == creds.RoleTotem {
			exp[u.Username] = u.Expires
		}
	}
	for i := range page {
		page[i].CredentialsExpire = exp[page[i].Totem]
	}
}

// InASL returns the totems that last said they serve asl (compared
// without case and surrounding spaces), by id: a fleet job's targets. A
// totem never heard from since it was provisioned is in none.
func (f *Fleet) InASL(asl string) []string {
	want := strings.TrimSpace(asl)
	f.mu.Lock()
	var out []string
	for id, e := range f.m {
		if want != "" && strings.EqualFold(strings.TrimSpace(e.ASL), want) {
			out = append(out, id)
		}
	}
	f.mu.Unlock()
	sort.Strings(out)
	return out
}

// SilentAfter is how long a totem may say nothing before it is offline.
func (f *Fleet) SilentAfter() time.Duration { return f.silent }

// Bounds on what a totem puts in its entry, so a page of the fleet
// command stays small whatever a totem sends.
const (
	maxDevices = 8
	maxField   = 64
)

func clip(s string) string {
	if len(s) > maxField {
		return s[:maxField]
	}
	return s
}

var errNoFleet = errors.New("this hub keeps no fleet registry")
