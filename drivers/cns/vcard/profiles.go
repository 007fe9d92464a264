package vcard

import (
	"slices"

	"github.com/aslcns/totem/drivers/cns"
)

// withTCK completes an ATR with its check byte.
func withTCK(b []byte) []byte {
	var x byte
	for _, v := range b[1:] {
		x ^= v
	}
	return append(b, x)
}

// cnsATR is a contact TS-CNS ATR (T=1) with mask maker h4.
func cnsATR(h4 byte) []byte {
	return withTCK([]byte{0x3B, 0xFF, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x55,
		0x00, 0x6B, 0x02, h4, 0x03, 0x03, 0x01, 0x01, 0x01, 'C', 'N', 'S', 0x10, 0x31, 0x80})
}

// serial builds a serial from level+issuer (4 digits) and a 9-digit card id.
func serial(prefix, ci string) string {
	s := prefix + ci + "00"
	return s + string(cns.LuhnDigit(s))
}

func fields(issuer, issued, expiry, surname, name, birth, sex, cf, town, address string) [16]string {
	return [16]string{issuer, issued, expiry, surname, name, birth, sex, "", cf, "", town, "", "", town, address, ""}
}

var demoFields = fields("6090", "31122024", "31122030", "ROSSI", "MARIO", "01011980", "M",
	"RSSMRA80A01H501U", "H501", "VIA ROMA 1")

// DemoSerial is the demo citizen's card serial (hal/sim.DemoCard).
const DemoSerial = "6090012345678000"

func demo(name, desc string, atr []byte, q Quirks) Profile {
	return Profile{
		Name: name, Desc: desc, ATR: atr, Serial: DemoSerial,
		Personal: cns.EncodePersonal(demoFields, true),
		PIN:      "12345", PUK: "12345678", Tries: 3, Quirks: q,
	}
}

// citizen is a classic CNS of a citizen other than the demo's, with the
// demo PIN and PUK.
func citizen(name, desc, serial string, f [16]string) Profile {
	return Profile{
		Name: name, Desc: desc, ATR: cnsATR(0x05), Serial: serial,
		Personal: cns.EncodePersonal(f, true),
		PIN:      "12345", PUK: "12345678", Tries: 3,
	}
}

func profiles() []Profile {
	malformed := cns.EncodePersonal(demoFields, true)
	// The surname's length says 0x7F bytes: it runs past the record.
	malformed[6+6+10+10] = '7'
	malformed[6+6+10+10+1] = 'F'
	excl := demo("excl", "classic CNS whose header does not count itself", cnsATR(0x08), Quirks{})
	excl.Personal = cns.EncodePersonal(demoFields, false)
	badCF := demoFields
	badCF[8] = "RSSMRA80A01H501X" // the check character of RSSMRA80A01H501 is U
	badcf := demo("badcf", "personal data whose codice fiscale fails its check character", cnsATR(0x05), Quirks{})
	badcf.Personal = cns.EncodePersonal(badCF, true)
	blocked := demo("blocked", "demo citizen, PIN blocked", cnsATR(0x05), Quirks{})
	blocked.Tries = 0
	return []Profile{
		demo("cns", "classic CNS (Oberthur), demo citizen ROSSI MARIO", cnsATR(0x05), Quirks{}),
		excl,
		demo("oldpath", "old lot without SELECT by path: step-by-step FIDs", cnsATR(0x0C), Quirks{NoPathSelect: true}),
		demo("le00", "lot that errors on Le=00 for files over 256 bytes", cnsATR(0x08), Quirks{Le00Error: true}),
		demo("6c", "lot answering 6Cxx past the end of file, no FCI", cnsATR(0x04), Quirks{WrongLength: true}),
		demo("applet", "2025 lot: CNS applet AID first, then relative path; ATR without marker",
			withTCK([]byte{0x3B, 0xF8, 0x18, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 'T', 'S', '2', '0', '2', '5', 'v', '3'}),
			Quirks{NeedApplet: true, GetResponse: true}),
		demo("stincard", "STIncard mask (H4=09): PIN commands need P2=0x90, T=0 style 61xx", cnsATR(0x09),
			Quirks{STIncard: true, GetResponse: true}),
		blocked,
		{
			Name: "operator", Desc: "operator card (serial level 8), BIANCHI LUCA", ATR: cnsATR(0x05),
			Serial: serial("8090", "000000042"),
			Personal: cns.EncodePersonal(fields("8090", "15032023", "15032029", "BIANCHI", "LUCA", "15031975", "M",
				"BNCLCU75C15F205O", "F205", ""), true),
			PIN: "54321", PUK: "87654321", Tries: 3,
		},
		citizen("minor", "minor's card waiting for activation (assisted mode), VERDI LUCA", serial("6090", "011111111"),
			fields("6090", "31032025", "31032031", "VERDI", "LUCA", "10032015", "M",
				"VRDLCU15C10H501Y", "H501", "VIA ROMA 3")),
		citizen("issued", "adult's card waiting for activation (assisted mode), VERDI ANNA", serial("6090", "022222222"),
			fields("6090", "31082026", "31082032", "VERDI", "ANNA", "10081970", "F",
				"VRDNNA70M50F205B", "F205", "VIA MILANO 4")),
		citizen("expired", "citizen card expired on 2020-12-31, VERDI ANNA", serial("6090", "000777001"),
			fields("6090", "01012015", "31122020", "VERDI", "ANNA", "01011970", "F",
				"VRDNNA70A41H501F", "H501", "VIA NAPOLI 2")),
		{
			Name: "malformed", Desc: "personal data whose surname runs past the record", ATR: cnsATR(0x05),
			Serial: DemoSerial, Personal: malformed, PIN: "12345", PUK: "12345678", Tries: 3,
		},
		{
			Name: "cie", Desc: "contactless CIE 3.0 exposing only the NIS", NIS: "123456789012",
			ATR:    withTCK([]byte{0x3B, 0x8E, 0x80, 0x01, 0x80, 0x31, 0x80, 0x66, 0xB1, 0x84, 0x0C, 0x01, 0x6E, 0x01, 0x83, 0x00, 0x90, 0x00}),
			Quirks: Quirks{CIE: true},
		},
		{
			Name: "cie-nxp", Desc: "CIE 3.0 on an NXP chip: no IAS application, NIS on the master-file route", NIS: "987654321098",
			ATR:    withTCK([]byte{0x3B, 0x8F, 0x80, 0x01, 0x80, 0x31, 0x80, 0x65, 0xB0, 0x85, 0x04, 0x00, 0x11, 0x12, 0x0F, 0xFF, 0x82, 0x90, 0x00}),
			Quirks: Quirks{CIE: true, CIENXP: true},
		},
		badcf,
		demo("cns-nfc", "ST2022 TS-CNS over NFC: bare ATR, CNS files under the JSign4 application",
			[]byte{0x3B, 0x80, 0x80, 0x01, 0x01}, Quirks{NeedApplet: true, JSign: true}),
	}
}

// Profiles returns every profile, the classic demo card first.
func Profiles() []Profile { return profiles() }

// Lookup returns the profile called name.
func Lookup(name string) (Profile, bool) {
	ps := profiles()
	i := slices.IndexFunc(ps, func(p Profile) bool { return p.Name == name })
	if i < 0 {
		return Profile{}, false
	}
	return ps[i], true
}
