package cardid

import "testing"

func TestTEAM(t *testing.T) {
	for _, tt := range []struct{ serial, team string }{
		{"6090012345678000", "80380000900123456782"}, // card.md's example
		{"8090000000042006", "80380000900000000422"}, // an operator card
		{"6090012345678001", ""},                     // check digit
		{"1090012345678000", ""},                     // test card: no TEAM
		{"7090012345678001", ""},                     // level 7: no TEAM
		{"609001234567800", ""},
		{"60900123456780x0", ""},
	} {
		if got := TEAM(tt.serial); got != tt.team {
			t.Errorf("TEAM(%s) = %q, want %q", tt.serial, got, tt.team)
		}
		if tt.team != "" && !ValidTEAM(tt.team) {
			t.Errorf("ValidTEAM(%s) = false", tt.team)
		}
	}
	for _, bad := range []string{"80380000900123456783", "90380000900123456782", "8038000090012345678", ""} {
		if ValidTEAM(bad) {
			t.Errorf("ValidTEAM(%q) = true", bad)
		}
	}
}

func TestValidSerial(t *testing.T) {
	for _, tt := range []struct {
		serial string
		ok     bool
	}{
		{"6090012345678000", true}, {"6090012345678001", false},
		{"7090012345678001", true}, // level 7 carries no check digit
		{"1090012345678009", true}, {"609001234567800", false}, {"609001234567800a", false},
	} {
		if ValidSerial(tt.serial) != tt.ok {
			t.Errorf("ValidSerial(%q) != %v", tt.serial, tt.ok)
		}
	}
}

func TestValidCF(t *testing.T) {
	for _, tt := range []struct {
		cf string
		ok bool
	}{
		{"RSSMRA80A01H501U", true},
		{"VRDLCU15C10H501Y", true},
		{"RSSMRA80A01H501X", false}, // check char
		{"RSSMRA8XA01H501U", false}, // X is no omocodia letter
		{"rssmra80a01h501u", false},
		{"", false},
	} {
		if got := ValidCF(tt.cf); got != tt.ok {
			t.Errorf("ValidCF(%q) = %v", tt.cf, got)
		}
	}
}

func FuzzTEAM(f *testing.F) {
	for _, s := range []string{"6090012345678000", "8090000000042006", "7090012345678001", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, serial string) {
		if team := TEAM(serial); team != "" && !ValidTEAM(team) {
			t.Fatalf("TEAM(%q) = %q, which ValidTEAM refuses", serial, team)
		}
	})
}
