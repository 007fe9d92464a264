package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/aslcns/totem/sync/cmdsig"
)

func opsKey(t testing.TB, id string) cmdsig.PrivateKey {
	t.Helper()
	k, err := cmdsig.Generate(id, cmdsig.Ops)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func payload(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func signed(t testing.TB, k cmdsig.PrivateKey, arch string, p []byte) []byte {
	t.Helper()
	m, err := Build("totemd", "1.2.3-1", arch, p, MinChunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(k); err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyGood(t *testing.T) {
	k := opsKey(t, "ops1")
	p := payload(t, 3*MinChunk+17)
	m, err := Verify(signed(t, k, "arm64", p), []cmdsig.PublicKey{k.Public()}, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Chunks) != 4 || m.ChunkLen(3) != 17 {
		t.Fatalf("chunks %d, last %d", len(m.Chunks), m.ChunkLen(3))
	}
	for i := range m.Chunks {
		if err := m.CheckChunk(i, m.Chunk(p, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.CheckPayload(bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	// "all" fits any architecture.
	if _, err := Verify(signed(t, k, "all", p), []cmdsig.PublicKey{k.Public()}, "armhf"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := opsKey(t, "ops1")
	other := opsKey(t, "ops1") // same id, another key: a forger's
	tech, err := cmdsig.Generate("tech1", cmdsig.Technician)
	if err != nil {
		t.Fatal(err)
	}
	p := payload(t, 2*MinChunk)
	trusted := []cmdsig.PublicKey{k.Public(), tech.Public()}
	good := signed(t, k, "arm64", p)

	// A technician key cannot sign an update, neither by Sign nor by a
	// manifest it signed by hand.
	m, _ := Build("totemd", "2", "arm64", p, 0)
	if err := m.Sign(tech); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Sign with a technician key: %v", err)
	}
	m.Key = tech.ID
	m.Sig = nil
	mm := *m
	mm.Sig = ed25519Sign(tech, &mm)
	techSigned, _ := mm.Marshal()

	tampered, _ := Decode(good)
	tampered.Version = "9.9.9"
	tamperedB, _ := tampered.Marshal()

	digest, _ := Decode(good)
	digest.Chunks[0] = digest.Chunks[1]
	digestB, _ := digest.Marshal()

	unsigned, _ := Decode(good)
	unsigned.Sig = nil
	unsignedB, _ := unsigned.Marshal()

	for _, c := range []struct {
		name string
		b    []byte
		arch string
		want error
	}{
		{"forged", signed(t, other, "arm64", p), "arm64", ErrSignature},
		{"tampered version", tamperedB, "arm64", ErrSignature},
		{"tampered chunk digest", digestB, "arm64", ErrSignature},
		{"unsigned", unsignedB, "arm64", ErrSignature},
		{"unknown key", signed(t, opsKey(t, "ops2"), "arm64", p), "arm64", ErrUntrusted},
		{"technician key", techSigned, "arm64", ErrUntrusted},
		{"wrong arch", good, "armhf", ErrArch},
		{"garbage", []byte(`{"v":1,"package":"x"`), "arm64", ErrInvalid},
		{"unknown field", append(bytes.TrimSuffix(bytes.Clone(good), []byte("}")), []byte(`,"extra":1}`)...), "arm64", ErrInvalid},
		{"trailing", append(append([]byte{}, good...), []byte(" {}")...), "arm64", ErrInvalid},
	} {
		if _, err := Verify(c.b, trusted, c.arch); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func ed25519Sign(k cmdsig.PrivateKey, m *Manifest) []byte {
	return edSign(k.Key, m.signedBytes())
}

func TestCorruptedPayload(t *testing.T) {
	k := opsKey(t, "ops1")
	p := payload(t, 2*MinChunk+5)
	m, err := Verify(signed(t, k, "amd64", p), []cmdsig.PublicKey{k.Public()}, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(m.Chunk(p, 1))
	bad[10] ^= 1
	if err := m.CheckChunk(1, bad); !errors.Is(err, ErrDigest) {
		t.Fatalf("corrupted chunk: %v", err)
	}
	if err := m.CheckChunk(2, m.Chunk(p, 1)); !errors.Is(err, ErrDigest) {
		t.Fatalf("chunk of the wrong length: %v", err)
	}
	if err := m.CheckChunk(3, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("chunk past the end: %v", err)
	}
	q := bytes.Clone(p)
	q[len(q)-1] ^= 1
	if err := m.CheckPayload(bytes.NewReader(q)); !errors.Is(err, ErrDigest) {
		t.Fatalf("corrupted payload: %v", err)
	}
	if err := m.CheckPayload(bytes.NewReader(append(bytes.Clone(p), 0))); !errors.Is(err, ErrDigest) {
		t.Fatalf("longer payload: %v", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	p := payload(t, 100)
	for _, c := range []struct{ pkg, ver, arch string }{
		{"../etc", "1", "amd64"}, {"totemd", "1 2", "amd64"}, {"totemd", "-1", "amd64"},
		{"Totemd", "1", "amd64"}, {"totemd", "1", "i386"},
	} {
		if _, err := Build(c.pkg, c.ver, c.arch, p, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v", c, err)
		}
	}
	if _, err := Build("totemd", "1", "amd64", nil, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty payload: %v", err)
	}
}

// FuzzDecode: the decoder never panics, and what it accepts re-encodes to
// a manifest it accepts again with the same signed bytes.
func FuzzDecode(f *testing.F) {
	k := opsKey(f, "ops1")
	f.Add(signed(f, k, "arm64", payload(f, MinChunk+1)))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"package":"totemd","version":"1","arch":"all","size":1,"sha256":"","chunk_size":4096,"chunks":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded manifest refused: %v", err)
		}
		if !bytes.Equal(m.signedBytes(), m2.signedBytes()) {
			t.Fatal("signed bytes changed through an encode")
		}
		if len(m.Chunks) > MaxSize/MinChunk {
			t.Fatalf("%d chunks accepted", len(m.Chunks))
		}
	})
}

var edSign = ed25519.Sign
