package enroll

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// A new totem knows nothing of the hub's private CA: only its code. The
// code must not go to a broker nothing vouches for, so before the
// exchange such a totem asks for the CA (FetchCA), over TLS that verifies
// nothing yet, sending no code: only its id and a fresh nonce. The hub
// answers with its CA certificate and
//
//	MAC = HMAC-SHA256(K, "totem-enroll-ca/1" NUL nonce SHA-256(CA DER) totem)
//
// where K = argon2id(code, "totem-enroll-ca/1" NUL totem NUL salt) is the
// code's verifier, which the hub computed when it issued the code and
// keeps (with its per-code salt and parameters) instead of the code. The
// totem derives K from the typed code, checks the MAC, checks that the
// chain its own connection presented verifies against that CA for the
// broker's name, and only then trusts the CA. A man in the middle cannot
// make the MAC (no code) and cannot relay the hub's either: it binds the
// totem's nonce and the CA, and the chain the totem saw (the middle's)
// does not chain to the hub's CA. Argon2id makes guessing the 60-bit code
// from a MAC (which anyone may ask for, within the enroll user's limits)
// infeasible in its 7 days.

// NonceLen is a CA request's nonce length.
const NonceLen = 32

// saltLen is a verifier's per-code salt length.
const saltLen = 16

const caLabel = "totem-enroll-ca/1\x00"

// KDF is the argon2id parameters of a verifier, kept in the code's record
// and sent to the totem with the salt.
type KDF struct {
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"` // KiB
	Threads uint8  `json:"p"`
}

// DefaultKDF is what a new code's verifier costs: 64 MiB, one pass, 4
// lanes (above OWASP's 46 MiB/1 pass; the console's passwords use 19
// MiB/2 passes), under a second on a totem, once per enrollment.
var DefaultKDF = KDF{Time: 1, Memory: 64 * 1024, Threads: 4}

// Bounds of the parameters a totem accepts: the hub's answer is not
// authenticated before the MAC is checked, and the MAC needs K, so
// parameters out of these bounds (a denial of service by memory, or a
// verifier too cheap to protect the code) are refused first.
const (
	minMemory  = 19 * 1024
	maxMemory  = 256 * 1024
	maxTime    = 10
	maxThreads = 16
)

func (k KDF) check() error {
	if k.Time < 1 || k.Time > maxTime || k.Memory < minMemory || k.Memory > maxMemory || k.Threads < 1 || k.Threads > maxThreads {
		return fmt.Errorf("enroll: verifier parameters t=%d m=%d p=%d out of bounds", k.Time, k.Memory, k.Threads)
	}
	return nil
}

// Verifier is what the hub keeps of a code to answer a CA request
// without keeping the code: K, its salt and its parameters.
type Verifier struct {
	Salt []byte `json:"salt"`
	KDF  KDF    `json:"kdf"`
	Key  []byte `json:"key"`
}

// NewVerifier derives a fresh verifier (new salt, DefaultKDF) of a
// normalised code for totem.
func NewVerifier(totem, code string) (Verifier, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, fmt.Errorf("enroll: %w", err)
	}
	return Verifier{Salt: salt, KDF: DefaultKDF, Key: deriveKey(totem, code, salt, DefaultKDF)}, nil
}

func deriveKey(totem, code string, salt []byte, k KDF) []byte {
	s := make([]byte, 0, len(caLabel)+len(totem)+1+len(salt))
	s = append(append(append(append(s, caLabel...), totem...), 0), salt...)
	return argon2.IDKey([]byte(code), s, k.Time, k.Memory, k.Threads, 32)
}

// CAMAC is the MAC of a CA answer: it binds the totem's nonce, the CA
// certificate (DER) and the totem to the key of the code's verifier.
func CAMAC(key, nonce, caDER []byte, totem string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(caLabel))
	m.Write(nonce)
	d := sha256.Sum256(caDER)
	m.Write(d[:])
	m.Write([]byte(totem))
	return m.Sum(nil)
}

// errMismatch is the refusal of a CA answer whose MAC does not check: the
// typed code is not the one the hub issued for this totem, or whoever
// answered does not hold it.
var errMismatch = &Error{Reason: ReasonMismatch,
	Msg: "the code does not match this totem's enrollment, or the broker is not the hub (nothing was written)"}

// checkCA checks a CA answer to nonce for totem against the typed code,
// then the chain the totem's own connection presented (leaf first)
// against that CA for serverName. It returns the CA as PEM.
func checkCA(r Reply, totem, code string, nonce []byte, chain []*x509.Certificate, serverName string) ([]byte, error) {
	if r.KDF == nil || len(r.CA) == 0 || len(r.Salt) < saltLen || len(r.Salt) > 64 || len(r.MAC) != sha256.Size {
		return nil, errors.New("enroll: the hub's answer holds no CA certificate and proof")
	}
	if err := r.KDF.check(); err != nil {
		return nil, err
	}
	key := deriveKey(totem, code, r.Salt, *r.KDF)
	if !hmac.Equal(r.MAC, CAMAC(key, nonce, r.CA, totem)) {
		return nil, errMismatch
	}
	ca, err := x509.ParseCertificate(r.CA)
	if err != nil || !ca.BasicConstraintsValid || !ca.IsCA {
		return nil, errors.New("enroll: the hub's answer holds no CA certificate")
	}
	if len(chain) == 0 {
		return nil, errors.New("enroll: the broker presented no certificate")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: serverName, Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, &Error{Reason: ReasonMismatch, Msg: fmt.Sprintf("the certificate this connection presented is not the hub's for %s "+
			"(something between this totem and the hub?): the code was not sent and nothing was written: %v", serverName, err)}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.CA}), nil
}
