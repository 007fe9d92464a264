// Package update holds the signed update bundle: a payload (a .deb, or
// for tests any bytes) and a manifest naming its package, version,
// architecture, size, SHA-256 and the SHA-256 of each chunk, signed with
// Ed25519 by an ops console key. The keys are the console keys of
// sync/cmdsig (key files, trust lists): a totem already trusts them for
// its commands, and an update is an ops decision like a correction.
//
// The per-chunk digests are what make a download over MQTT resumable and
// safe: every chunk is checked against the signed manifest when it
// arrives, so a corrupted or forged chunk is refused before it is written,
// and the whole payload is checked once more against its digest before it
// is installed.
package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/aslcns/totem/internal/asciiset"
	"github.com/aslcns/totem/internal/strictjson"
	"github.com/aslcns/totem/sync/cmdsig"
	"github.com/aslcns/totem/sync/protocol"
)

// Limits of a bundle. A totem has a small flash: a payload past MaxSize is
// not an update for it, and a chunk must fit an MQTT message the broker
// accepts with room for its envelope.
const (
	MaxSize          = 256 << 20
	MinChunk         = 4 << 10
	MaxChunk         = 128 << 10 // in base64 with its envelope, under the broker's 256 KiB packets
	DefaultChunk     = 64 << 10
	MaxManifestBytes = 2 << 20 // 4096 chunks of 64-hex digests fit with room
	manifestVersion  = 1
)

// Arches are the Debian architectures a totem runs; "all" fits any.
var Arches = []string{"amd64", "arm64", "armhf", "all"}

// Refusals, to test with errors.Is.
var (
	ErrInvalid   = errors.New("update: invalid manifest")
	ErrSignature = errors.New("update: bad signature")
	ErrUntrusted = errors.New("update: key not trusted for updates")
	ErrArch      = errors.New("update: wrong architecture")
	ErrDigest    = errors.New("update: digest mismatch")
)

// Manifest describes a payload. Sig covers every other field (see
// signedBytes).
type Manifest struct {
	V         int      `json:"v"`
	Package   string   `json:"package"`
	Version   string   `json:"version"`
	Arch      string   `json:"arch"`
	Size      int64    `json:"size"`
	SHA256    string   `json:"sha256"`     // lower-case hex of the whole payload
	ChunkSize int      `json:"chunk_size"` // every chunk but the last has this size
	Chunks    []string `json:"chunks"`     // lower-case hex SHA-256 of each chunk
	Key       string   `json:"key"`        // the cmdsig key id that signed
	Sig       []byte   `json:"sig"`        // Ed25519 over signedBytes
}

// Build describes payload in chunks of chunkSize (DefaultChunk if 0). It
// is not signed yet.
func Build(pkg, version, arch string, payload []byte, chunkSize int) (*Manifest, error) {
	if chunkSize == 0 {
		chunkSize = DefaultChunk
	}
	sum := sha256.Sum256(payload)
	m := &Manifest{V: manifestVersion, Package: pkg, Version: version, Arch: arch, Size: int64(len(payload)),
		SHA256: hex.EncodeToString(sum[:]), ChunkSize: chunkSize}
	for off := 0; off < len(payload); off += chunkSize {
		c := sha256.Sum256(payload[off:min(off+chunkSize, len(payload))])
		m.Chunks = append(m.Chunks, hex.EncodeToString(c[:]))
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Sign signs m with k, which must be an ops key.
func (m *Manifest) Sign(k cmdsig.PrivateKey) error {
	if k.Role != cmdsig.Ops {
		return fmt.Errorf("%w: key %s has role %s, an update needs ops", ErrUntrusted, k.ID, k.Role)
	}
	m.Key = k.ID
	if err := m.check(); err != nil {
		return err
	}
	m.Sig = ed25519.Sign(k.Key, m.signedBytes())
	return nil
}

// Marshal encodes m as it travels and is stored.
func (m *Manifest) Marshal() ([]byte, error) { return json.Marshal(m) }

// signedBytes is the canonical encoding the signature covers: a domain
// tag (so no other signed object of ours can pass as a manifest), then
// every field length-prefixed in a fixed order.
func (m *Manifest) signedBytes() []byte {
	var b bytes.Buffer
	b.WriteString("totem-update-manifest/v1\x00")
	str := func(s string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		b.WriteString(s)
	}
	num := func(n int64) { b.Write(binary.BigEndian.AppendUint64(nil, uint64(n))) }
	num(int64(m.V))
	str(m.Package)
	str(m.Version)
	str(m.Arch)
	num(m.Size)
	str(m.SHA256)
	num(int64(m.ChunkSize))
	num(int64(len(m.Chunks)))
	for _, c := range m.Chunks {
		str(c)
	}
	str(m.Key)
	return b.Bytes()
}

// Decode parses a manifest strictly: size bound, unknown fields and
// trailing data refused, every field checked. It does not verify the
// signature (Verify does); its errors never quote the input.
func Decode(b []byte) (*Manifest, error) {
	return strictjson.DecodeChecked(b, MaxManifestBytes, ErrInvalid, (*Manifest).check)
}

// check validates the fields; the messages name fields, not values that
// could be anything.
func (m *Manifest) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalid, what) }
	switch {
	case m.V != manifestVersion:
		return bad("version")
	case !validName(m.Package, 64, false):
		return bad("package")
	case !validName(m.Version, 64, true):
		return bad("version string")
	case !slices.Contains(Arches, m.Arch):
		return bad("arch")
	case m.Size <= 0 || m.Size > MaxSize:
		return bad("size")
	case !validHex(m.SHA256):
		return bad("sha256")
	case m.ChunkSize < MinChunk || m.ChunkSize > MaxChunk:
		return bad("chunk_size")
	case int64(len(m.Chunks)) != (m.Size+int64(m.ChunkSize)-1)/int64(m.ChunkSize):
		return bad("chunk count")
	case m.Key != "" && !protocol.ValidTotemID(m.Key):
		return bad("key")
	case len(m.Sig) != 0 && len(m.Sig) != ed25519.SignatureSize:
		return bad("sig")
	}
	for _, c := range m.Chunks {
		if !validHex(c) {
			return bad("chunk digest")
		}
	}
	return nil
}

// validName accepts Debian package names (lower case, digits, + - .) and,
// with version, Debian version strings (also upper case, ~ and :): both
// end up in file names and dpkg arguments.
func validName(s string, max int, version bool) bool {
	set := debName
	if version {
		set = debVersion
	}
	return set.Valid(s, 1, max) && s[0] != '-' && s[0] != '.'
}

var (
	debName    = asciiset.Of("a-z0-9+.-")
	debVersion = asciiset.Of("A-Za-z0-9+.~:-")
)

func validHex(s string) bool { return asciiset.LowerHex.Valid(s, 2*sha256.Size, 2*sha256.Size) }

// Verify decodes a manifest and accepts it only if an ops key of trusted
// signed it and it is for arch (or for all architectures).
func Verify(b []byte, trusted []cmdsig.PublicKey, arch string) (*Manifest, error) {
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if m.Key == "" || len(m.Sig) == 0 {
		return nil, fmt.Errorf("%w: unsigned", ErrSignature)
	}
	i := slices.IndexFunc(trusted, func(k cmdsig.PublicKey) bool { return k.ID == m.Key })
	if i < 0 {
		return nil, fmt.Errorf("%w: key %s is not in the trust list", ErrUntrusted, m.Key)
	}
	if k := trusted[i]; k.Role != cmdsig.Ops {
		return nil, fmt.Errorf("%w: key %s has role %s", ErrUntrusted, k.ID, k.Role)
	}
	if !ed25519.Verify(trusted[i].Key, m.signedBytes(), m.Sig) {
		return nil, fmt.Errorf("%w: key %s", ErrSignature, m.Key)
	}
	if m.Arch != "all" && m.Arch != arch {
		return nil, fmt.Errorf("%w: bundle for %s, this is %s", ErrArch, m.Arch, arch)
	}
	return m, nil
}

// ChunkLen returns the length of chunk i.
func (m *Manifest) ChunkLen(i int) int {
	if i == len(m.Chunks)-1 {
		return int(m.Size - int64(i)*int64(m.ChunkSize))
	}
	return m.ChunkSize
}

// CheckChunk checks chunk i against its digest.
func (m *Manifest) CheckChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.Chunks) {
		return fmt.Errorf("%w: chunk %d of %d", ErrInvalid, i, len(m.Chunks))
	}
	if len(data) != m.ChunkLen(i) {
		return fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrDigest, i, len(data), m.ChunkLen(i))
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != m.Chunks[i] {
		return fmt.Errorf("%w: chunk %d", ErrDigest, i)
	}
	return nil
}

// CheckPayload reads r to the end and checks its size and digest.
func (m *Manifest) CheckPayload(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, m.Size+1))
	if err != nil {
		return fmt.Errorf("update: read payload: %w", err)
	}
	if n != m.Size {
		return fmt.Errorf("%w: payload has %d bytes, want %d", ErrDigest, n, m.Size)
	}
	if hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return fmt.Errorf("%w: payload", ErrDigest)
	}
	return nil
}

// Chunk returns chunk i of payload.
func (m *Manifest) Chunk(payload []byte, i int) []byte {
	off := i * m.ChunkSize
	return payload[off : off+m.ChunkLen(i)]
}

// The states of an update at one totem, as the totem reports them and
// the hub records them per job.
const (
	StateQueued      = "queued"      // the hub has not offered it yet
	StateDownloading = "downloading" // chunks are coming
	StateInstalled   = "installed"   // installed and restarted, on probation
	StateCommitted   = "committed"   // passed its health check: final
	StateRolledBack  = "rolled_back" // failed its health check, previous version back: final
	StateFailed      = "failed"      // refused or not installable, nothing changed: final
)

// Final reports whether s ends an update at a totem.
func Final(s string) bool { return s == StateCommitted || s == StateRolledBack || s == StateFailed }

// Status is what a totem reports about an update.
type Status struct {
	Job     string `json:"job"`
	Version string `json:"version"` // the bundle's
	State   string `json:"state"`
	Chunk   int    `json:"chunk,omitempty"` // chunks held, while downloading
	Chunks  int    `json:"chunks,omitempty"`
	Reason  string `json:"reason,omitempty"` // why it failed or rolled back
}
