package cns

import (
	"errors"
	"fmt"
	"time"

	"github.com/aslcns/totem/cardid"
)

// Personal is the decoded content of EF.Dati_personali. It is personal
// data: never log it.
type Personal struct {
	Issuer           string // field 1, 4 digits
	IssueDate        time.Time
	Expiry           time.Time
	Surname          string
	Name             string
	BirthDate        time.Time
	Sex              string // "M", "F" or ""
	Height           string
	CF               string // codice fiscale
	Citizenship      string
	BirthTown        string // Belfiore code
	BirthCountry     string
	BirthAct         string
	ResidenceTown    string // Belfiore code
	Address          string
	ExpatriationNote string
}

// ErrPersonal is wrapped by every parse error of EF.Dati_personali.
var ErrPersonal = errors.New("cns: malformed personal data")

const (
	personalFields  = 16
	personalMaxSize = 4096 // far above the 400 bytes of the standard file
)

func hexVal(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		n = n<<4 | int(d)
	}
	return n, true
}

// PersonalLength returns how many bytes of the file must be read to hold
// the whole record announced by the 6-character header: the header value
// plus 6, which covers both conventions (length including or excluding the
// header itself).
func PersonalLength(header []byte) (int, error) {
	if len(header) < 6 {
		return 0, fmt.Errorf("%w: short header", ErrPersonal)
	}
	n, ok := hexVal(header[:6])
	if !ok {
		return 0, fmt.Errorf("%w: header is not hex", ErrPersonal)
	}
	if n > personalMaxSize {
		return 0, fmt.Errorf("%w: header length %d out of bounds", ErrPersonal, n)
	}
	return n + 6, nil
}

// ParsePersonal decodes EF.Dati_personali strictly. The header may count
// itself or not; the record is bounded by the header, by len(b) and by the
// first 00 byte; all 16 fields must be present (empty ones as "00").
func ParsePersonal(b []byte) (*Personal, error) {
	if len(b) > personalMaxSize+6 {
		b = b[:personalMaxSize+6]
	}
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if len(b) < 6 {
		return nil, fmt.Errorf("%w: short header", ErrPersonal)
	}
	n, ok := hexVal(b[:6])
	if !ok {
		return nil, fmt.Errorf("%w: header is not hex", ErrPersonal)
	}
	var f [personalFields]string
	off := 6
	for i := range f {
		if off+2 > len(b) {
			return nil, fmt.Errorf("%w: field %d: truncated length", ErrPersonal, i+1)
		}
		l, ok := hexVal(b[off : off+2])
		if !ok {
			return nil, fmt.Errorf("%w: field %d: length is not hex", ErrPersonal, i+1)
		}
		off += 2
		if off+l > len(b) {
			return nil, fmt.Errorf("%w: field %d: length %d out of bounds", ErrPersonal, i+1, l)
		}
		v := b[off : off+l]
		for _, c := range v {
			if c < 0x20 || c > 0x7E {
				return nil, fmt.Errorf("%w: field %d: not printable ASCII", ErrPersonal, i+1)
			}
		}
		f[i] = string(v)
		off += l
	}
	if n != off && n+6 != off {
		return nil, fmt.Errorf("%w: header length %d does not match the %d bytes used", ErrPersonal, n, off)
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d stray bytes after the last field", ErrPersonal, len(b)-off)
	}
	p := &Personal{
		Issuer: f[0], Surname: f[3], Name: f[4], Sex: f[6], Height: f[7], CF: f[8],
		Citizenship: f[9], BirthTown: f[10], BirthCountry: f[11], BirthAct: f[12],
		ResidenceTown: f[13], Address: f[14], ExpatriationNote: f[15],
	}
	if len(p.Issuer) != 4 || !allDigits(p.Issuer) {
		return nil, fmt.Errorf("%w: issuer code", ErrPersonal)
	}
	var err error
	for _, d := range []struct {
		name string
		s    string
		t    *time.Time
		req  bool
	}{
		{"issue date", f[1], &p.IssueDate, false},
		{"expiry", f[2], &p.Expiry, true},
		{"birth date", f[5], &p.BirthDate, false},
	} {
		if d.s == "" && !d.req {
			continue
		}
		if *d.t, err = parseDate(d.s); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPersonal, d.name, err)
		}
	}
	if p.Sex != "" && p.Sex != "M" && p.Sex != "F" {
		return nil, fmt.Errorf("%w: sex", ErrPersonal)
	}
	if !validCF(p.CF) {
		return nil, fmt.Errorf("%w: codice fiscale", ErrPersonal)
	}
	return p, nil
}

// parseDate parses DDMMYYYY, rejecting dates that do not exist.
func parseDate(s string) (time.Time, error) {
	if len(s) != 8 || !allDigits(s) {
		return time.Time{}, errors.New("not DDMMYYYY")
	}
	t, err := time.Parse("02012006", s)
	if err != nil {
		return time.Time{}, errors.New("not a date")
	}
	return t, nil
}

// validCF accepts a codice fiscale of a person with the right check
// character (omocodia substitutions included; cardid.ValidCF, the check the
// CMS applies to a typed CF) or an 11-digit temporary one. A chip whose CF
// fails its check character holds corrupt or mis-personalised data: the
// card is unreadable, not a different person.
func validCF(s string) bool {
	if len(s) == 11 {
		return allDigits(s)
	}
	return cardid.ValidCF(s)
}

// EncodePersonal builds an EF.Dati_personali record from 16 field values
// (in file order), with the header counting itself when inclusive is true.
// It is the inverse of ParsePersonal, for virtual cards and tests; values
// longer than 255 bytes are cut.
func EncodePersonal(fields [16]string, inclusive bool) []byte {
	body := make([]byte, 0, 256)
	for _, v := range fields {
		if len(v) > 255 {
			v = v[:255]
		}
		body = fmt.Appendf(body, "%02X", len(v))
		body = append(body, v...)
	}
	n := len(body)
	if inclusive {
		n += 6
	}
	return append(fmt.Appendf(nil, "%06X", n), body...)
}
