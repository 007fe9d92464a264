package cns

import (
	"errors"
	"fmt"

	"github.com/aslcns/totem/cardid"
)

// Serial-number distribution levels (first digit of EF.ID_Carta).
const (
	LevelNational = '5'
	LevelRegional = '6'
	LevelOther    = '7'
)

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// LuhnDigit returns the Luhn check digit of the decimal string s.
func LuhnDigit(s string) byte { return cardid.Luhn(s) }

// CheckSerial validates a 16-digit card serial: digits only and, for
// levels 5, 6, 8 and 9, the Luhn check digit over the first 15.
func CheckSerial(serial string) error {
	if !cardid.Digits(serial, 16) {
		return errors.New("cns: serial is not 16 digits")
	}
	if !cardid.ValidSerial(serial) {
		return errors.New("cns: serial check digit mismatch")
	}
	return nil
}

// Operator reports whether the serial is an operator card's (level 8 or 9).
func Operator(serial string) bool {
	return len(serial) == 16 && (serial[0] == '8' || serial[0] == '9')
}

// TEAM derives the 20-digit codice TEAM printed on the back of the card
// from the chip's serial: "80380", the 5-digit region code, the 9-digit
// card id and a Luhn digit. It returns "" when the serial has no TEAM
// (levels other than 5, 6, 8, 9, or a malformed serial). The arithmetic is
// cardid's, shared with the CMS.
func TEAM(serial string) string { return cardid.TEAM(serial) }

// CheckTEAM checks a typed codice TEAM against the chip's serial.
func CheckTEAM(team, serial string) error {
	if len(team) != 20 || !allDigits(team) {
		return errors.New("cns: TEAM code is not 20 digits")
	}
	if LuhnDigit(team[:19]) != team[19] {
		return errors.New("cns: TEAM code check digit mismatch")
	}
	want := TEAM(serial)
	if want == "" {
		return fmt.Errorf("cns: serial has no TEAM code")
	}
	if team != want {
		return errors.New("cns: TEAM code does not match the card")
	}
	return nil
}
