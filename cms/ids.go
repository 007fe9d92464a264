package cms

import "github.com/aslcns/totem/cardid"

// Lengths of the codes the CMS issues for a card.
const (
	PINDigits = 8 // printed first half + notified second half, 4 + 4
	PUKDigits = 8
	CIPDigits = 8
)

// MaxCIPFailures is how many wrong CIPs a card takes before self-service
// revocation is blocked for it (the counter still revokes).
const MaxCIPFailures = 3

// digits reports whether s is exactly n decimal digits.
func digits(s string, n int) bool { return cardid.Digits(s, n) }

// OperatorSerial reports whether serial is an operator card's: 16 digits,
// distribution level 8 or 9.
func OperatorSerial(serial string) bool {
	return digits(serial, 16) && (serial[0] == '8' || serial[0] == '9')
}

// TEAM derives the 20-digit codice TEAM printed on the back of a card from
// its serial, or "" when the serial has none: the derivation the card
// stack (drivers/cns) uses too, from cardid.
func TEAM(serial string) string { return cardid.TEAM(serial) }

// ValidTEAM reports whether team is well formed as a codice TEAM: 20
// digits, "80380" first, the Luhn check digit over the first 19 last. A
// totem checks a typed code with it before asking the CMS.
func ValidTEAM(team string) bool { return cardid.ValidTEAM(team) }

// ValidCF reports whether cf is a well-formed codice fiscale of a person
// (omocodia included) with the right check character.
func ValidCF(cf string) bool { return cardid.ValidCF(cf) }
