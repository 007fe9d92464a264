package update

import (
	"encoding/json"
	"fmt"

	"github.com/aslcns/totem/internal/strictjson"
	"github.com/aslcns/totem/sync/protocol"
)

// MaxMessage bounds a message on the update topics: a chunk of MaxChunk
// in base64 with its envelope, or a manifest, under the broker's default
// packet size (256 KiB).
const MaxMessage = 240 << 10

// Kinds of Msg (hub → totem, protocol.LeafUpdate).
const (
	MsgOffer  = "offer"  // Job, Manifest: download and install this
	MsgChunk  = "chunk"  // Job, Chunk, Data
	MsgCancel = "cancel" // Job: stop downloading it
	MsgError  = "error"  // Job, Chunk, Error: the hub will not serve it
)

// Kinds of Req (totem → hub, protocol.LeafUpdateReq).
const (
	ReqHello  = "hello"  // sent on connect: the hub offers a pending job again
	ReqGet    = "get"    // Job, Chunk
	ReqStatus = "status" // Status
)

// Msg is what the hub sends a totem on its update topic.
type Msg struct {
	V        int             `json:"v"`
	Kind     string          `json:"kind"`
	Job      string          `json:"job"`
	Manifest json.RawMessage `json:"manifest,omitempty"`
	Chunk    int             `json:"chunk,omitempty"`
	Data     []byte          `json:"data,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Req is what a totem sends the hub on its update_req topic.
type Req struct {
	V      int     `json:"v"`
	Kind   string  `json:"kind"`
	Job    string  `json:"job,omitempty"`
	Chunk  int     `json:"chunk,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// decodeStrict decodes a message of the update topics: strictjson's rules,
// at most MaxMessage bytes.
func decodeStrict[T any](b []byte) (*T, error) {
	v, err := strictjson.Decode[T](b, MaxMessage)
	if err != nil {
		return nil, fmt.Errorf("%w: message: %w", ErrInvalid, err)
	}
	return v, nil
}

// DecodeMsg decodes and checks a hub's message.
func DecodeMsg(b []byte) (*Msg, error) {
	m, err := decodeStrict[Msg](b)
	if err != nil {
		return nil, err
	}
	ok := m.V == protocol.Version && protocol.ValidTotemID(m.Job) && m.Chunk >= 0 && len(m.Error) <= 200
	switch m.Kind {
	case MsgOffer:
		ok = ok && len(m.Manifest) > 0
	case MsgChunk:
		ok = ok && len(m.Data) > 0 && len(m.Data) <= MaxChunk
	case MsgCancel, MsgError:
	default:
		ok = false
	}
	if !ok {
		return nil, fmt.Errorf("%w: update message", ErrInvalid)
	}
	return m, nil
}

// DecodeReq decodes and checks a totem's request.
func DecodeReq(b []byte) (*Req, error) {
	r, err := decodeStrict[Req](b)
	if err != nil {
		return nil, err
	}
	ok := r.V == protocol.Version && r.Chunk >= 0
	switch r.Kind {
	case ReqHello:
	case ReqGet:
		ok = ok && protocol.ValidTotemID(r.Job)
	case ReqStatus:
		ok = ok && r.Status != nil && protocol.ValidTotemID(r.Status.Job) && len(r.Status.Reason) <= 1024 &&
			len(r.Status.Version) <= 64 && r.Status.Chunk >= 0 && r.Status.Chunks >= 0
	default:
		ok = false
	}
	if !ok {
		return nil, fmt.Errorf("%w: update request", ErrInvalid)
	}
	return r, nil
}

// Upload is a piece of a bundle a console sends the hub on its upload
// topic: the manifest or the payload, at an offset. The upload is
// trusted by nothing but the signed job_create command that follows it,
// which names the manifest by its digest.
type Upload struct {
	V      int    `json:"v"`
	Part   string `json:"part"` // "manifest" or "payload"
	Offset int64  `json:"offset"`
	Total  int64  `json:"total"` // the part's size
	Data   []byte `json:"data"`
}

// Upload parts.
const (
	PartManifest = "manifest"
	PartPayload  = "payload"
)

// DecodeUpload decodes and checks an upload piece.
func DecodeUpload(b []byte) (*Upload, error) {
	u, err := decodeStrict[Upload](b)
	if err != nil {
		return nil, err
	}
	limit := int64(MaxSize)
	if u.Part == PartManifest {
		limit = MaxManifestBytes
	}
	ok := u.V == protocol.Version && (u.Part == PartManifest || u.Part == PartPayload) &&
		u.Total > 0 && u.Total <= limit && u.Offset >= 0 && len(u.Data) > 0 && len(u.Data) <= MaxChunk &&
		u.Offset+int64(len(u.Data)) <= u.Total
	if !ok {
		return nil, fmt.Errorf("%w: upload", ErrInvalid)
	}
	return u, nil
}
