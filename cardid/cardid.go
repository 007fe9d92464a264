// Package cardid holds the arithmetic of the identifiers printed on and
// read from a TS-CNS card: the Luhn digit, the codice TEAM derived from the
// chip's serial, and the codice fiscale's check character. The CMS (cms)
// and the card stack (drivers/cns) both check these codes and may not
// import each other, so the one implementation lives here, in a leaf that
// imports only the standard library (layers_test.go keeps it a leaf).
package cardid

// Digits reports whether s is exactly n decimal digits (n > 0).
func Digits(s string, n int) bool {
	if len(s) != n || n == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Luhn returns the Luhn check digit of the decimal string s.
func Luhn(s string) byte {
	sum, double := 0, true
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// CheckedLevel reports whether serials of the distribution level l (the
// serial's first digit) carry a Luhn check digit and a codice TEAM: the
// national (5), regional (6) and operator (8, 9) levels.
func CheckedLevel(l byte) bool { return l == '5' || l == '6' || l == '8' || l == '9' }

// ValidSerial reports whether serial is a well-formed 16-digit card serial:
// digits only and, for the checked levels, the Luhn digit over the first 15.
func ValidSerial(serial string) bool {
	if !Digits(serial, 16) {
		return false
	}
	return !CheckedLevel(serial[0]) || Luhn(serial[:15]) == serial[15]
}

// TEAM derives the 20-digit codice TEAM printed on the back of a card from
// its serial: "80380", the 5-digit region code, the 9-digit card id and a
// Luhn digit. It returns "" when the serial has none (a level without
// TEAM, or a malformed serial).
func TEAM(serial string) string {
	if !ValidSerial(serial) || !CheckedLevel(serial[0]) {
		return ""
	}
	s := "80380" + "00" + serial[1:4] + serial[4:13]
	return s + string(Luhn(s))
}

// ValidTEAM reports whether team is well formed as a codice TEAM: 20
// digits, "80380" first, the Luhn check digit over the first 19 last.
func ValidTEAM(team string) bool {
	return Digits(team, 20) && team[:5] == "80380" && Luhn(team[:19]) == team[19]
}

var (
	cfOdd = [36]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
		1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23} // A-Z
	// Positions (0-based) that are digits, or their omocodia letters.
	cfDigitPos = [...]int{6, 7, 9, 10, 12, 13, 14}
)

const cfOmocodia = "LMNPQRSTUV"

func isDigitPos(i int) bool {
	for _, p := range cfDigitPos {
		if p == i {
			return true
		}
	}
	return false
}

// ValidCF reports whether cf is a well-formed codice fiscale of a person
// (omocodia included) with the right check character.
func ValidCF(cf string) bool {
	if len(cf) != 16 {
		return false
	}
	sum := 0
	for i := 0; i < 16; i++ {
		c := cf[i]
		isLetter := c >= 'A' && c <= 'Z'
		isDigit := c >= '0' && c <= '9'
		switch {
		case isDigitPos(i) && !(isDigit || isLetter && containsByte(cfOmocodia, c)):
			return false
		case !isDigitPos(i) && !isLetter:
			return false
		}
		if i == 15 {
			break
		}
		idx := int(c - 'A' + 10)
		if isDigit {
			idx = int(c - '0')
		}
		if i%2 == 0 {
			sum += cfOdd[idx]
		} else if isDigit {
			sum += int(c - '0')
		} else {
			sum += int(c - 'A')
		}
	}
	return cf[15] == byte('A'+sum%26)
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}
