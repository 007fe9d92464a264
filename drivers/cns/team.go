package cns

import (
	"errors"
	"fmt"
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
func LuhnDigit(s string) byte {
	sum := 0
	double := true
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// CheckSerial validates a 16-digit card serial: digits only and, for
// levels 5, 6, 8 and 9, the Luhn check digit over the first 15.
func CheckSerial(serial string) error {
	if len(serial) != 16 || !allDigits(serial) {
		return errors.New("cns: serial is not 16 digits")
	}
	switch serial[0] {
	case '5', '6', '8', '9':
		if LuhnDigit(serial[:15]) != serial[15] {
			return errors.New("cns: serial check digit mismatch")
		}
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
// (levels other than 5, 6, 8, 9, or a malformed serial).
func TEAM(serial string) string {
	if CheckSerial(serial) != nil {
		return ""
	}
	switch serial[0] {
	case '5', '6', '8', '9':
	default:
		return ""
	}
	s := "80380" + "00" + serial[1:4] + serial[4:13]
	return s + string(LuhnDigit(s))
}

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
