package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/aslcns/totem/sync/protocol"
	"github.com/aslcns/totem/sync/techset"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// The field technicians who may open maintenance mode at a totem's panel
// (issue 16): ops enrolls them here (technician_add prints the TOTP
// secret once, as an otpauth URI), the hub keeps the set (techset.Store)
// and pushes it, signed with its own ops key for each totem, retained on
// totem/v1/{totem}/technicians: at every change to every totem it knows,
// and to each totem that comes online. technician_unlock_code gives the
// one-time code that opens a totem whose clock is not synchronised.

// Technician is a technician as technician_list answers: no secret.
type Technician struct {
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Added time.Time `json:"added"`
}

// TechnicianAdded is technician_add's answer: the secret, once.
type TechnicianAdded struct {
	Technician
	URI string `json:"otpauth_uri"`
}

// UnlockCode is technician_unlock_code's answer.
type UnlockCode struct {
	Totem   string    `json:"totem"`
	ID      string    `json:"id"`
	Code    string    `json:"code"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires"`
}

// Issuer names the totems' TOTP entries in the technicians' apps.
const Issuer = "Totem ASL"

// technicianCommands are the hub commands on the technician set; their
// roles are in sync/cmdsig's table like every other command's.
var technicianCommands = commandTable{
	"technician_add":         using((*commands).technicians, (*commands).technicianAdd),
	"technician_list":        using((*commands).technicians, (*commands).technicianList),
	"technician_remove":      using((*commands).technicians, (*commands).technicianRemove),
	"technician_unlock_code": using((*commands).technicians, (*commands).technicianUnlockCode),
}

// technicians is the technician set its commands act on (using).
func (cs *commands) technicians() (*techset.Store, error) {
	h := cs.h
	if h.o.Technicians == nil || h.o.TechKey == nil {
		return nil, errors.New("this hub keeps no technician set")
	}
	return h.o.Technicians, nil
}

func (cs *commands) technicianAdd(st *techset.Store, cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	m, err := st.Add(cmd.Args["name"], time.Now())
	if err != nil {
		return nil, err
	}
	// An audit line without the name: the technician's number and who
	// enrolled them.
	h.log.Info("technician enrolled", "technician", m.ID, "console", console, "key", cmd.Key)
	h.pushTechnicians()
	return protocol.Marshal(TechnicianAdded{Technician: Technician{ID: m.ID, Name: m.Name, Added: m.Added}, URI: otpauthURI(m)})
}

// otpauthURI is a technician's Key URI.
func otpauthURI(m techset.Member) string {
	return OTPAuthURI(Issuer, m.ID+" "+m.Name, m.Secret)
}

// OTPAuthURI is the Key URI Google Authenticator reads for account's
// entry under issuer (the secret in base32, 6 digits, 30 s, SHA-1): the
// technicians' and the ops console accounts'.
func OTPAuthURI(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	return "otpauth://totp/" + url.PathEscape(issuer+":"+account) + "?" + v.Encode()
}

func (cs *commands) technicianList(st *techset.Store, _ *protocol.Command, _ string) (json.RawMessage, error) {
	out := []Technician{}
	for _, m := range st.List() {
		out = append(out, Technician{ID: m.ID, Name: m.Name, Added: m.Added})
	}
	return protocol.Marshal(out)
}

func (cs *commands) technicianRemove(st *techset.Store, cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	m, err := st.Remove(cmd.Args["name"])
	if err != nil {
		return nil, err
	}
	h.log.Info("technician removed", "technician", m.ID, "console", console, "key", cmd.Key)
	h.pushTechnicians()
	return protocol.Marshal(Technician{ID: m.ID, Name: m.Name, Added: m.Added})
}

func (cs *commands) technicianUnlockCode(st *techset.Store, cmd *protocol.Command, console string) (json.RawMessage, error) {
	h := cs.h
	totem := cmd.Args["totem"]
	if !protocol.ValidTotemID(totem) {
		return nil, errors.New("totem: want a totem id")
	}
	m, err := st.Find(cmd.Args["name"])
	if err != nil {
		return nil, err
	}
	now := time.Now()
	code := techset.UnlockCode(st.UnlockKey(totem), totem, m.ID, now)
	issued := time.Unix(techset.Minute(now)*60, 0).UTC()
	h.log.Info("unlock code issued", "technician", m.ID, "totem", totem, "console", console, "key", cmd.Key)
	return protocol.Marshal(UnlockCode{Totem: totem, ID: m.ID, Code: code, Issued: issued, Expires: issued.Add(techset.UnlockTTL)})
}

// signedSet is totem's set, signed now.
func (h *Hub) signedSet(totem string) ([]byte, error) {
	s := h.o.Technicians.For(totem, time.Now())
	if err := techset.Sign(*h.o.TechKey, s); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// publishTechnicians sends totem its signed set, retained.
func (h *Hub) publishTechnicians(ctx context.Context, cm *autopaho.ConnectionManager, totem string) {
	if h.o.Technicians == nil || h.o.TechKey == nil || cm == nil {
		return
	}
	b, err := h.signedSet(totem)
	if err != nil {
		h.log.Error("technician set not signed", "err", err)
		return
	}
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: protocol.Topic(totem, protocol.LeafTechnicians), QoS: 1, Retain: true,
		Payload: b}); err != nil {
		h.log.Warn("technician set not sent", "totem", totem, "err", err)
	}
}

// pushTechnicians sends the set to every totem the fleet registry knows,
// on its own goroutine (a command's answer does not wait for it).
func (h *Hub) pushTechnicians() {
	if h.o.Fleet == nil {
		return
	}
	h.mu.Lock()
	cm := h.cm
	h.mu.Unlock()
	totems := h.o.Fleet.List(FleetFilter{})
	h.cmds.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ts := range totems {
			h.publishTechnicians(ctx, cm, ts.Totem)
		}
	})
}
