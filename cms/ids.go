package cms

// Lengths of the codes the CMS issues for a card.
const (
	PINDigits = 8 // printed first half + notified second half, 4 + 4
	PUKDigits = 8
	CIPDigits = 8
)

// MaxCIPFailures is how many wrong CIPs a card takes before self-service
// revocation is blocked for it (the counter still revokes).
const MaxCIPFailures = 3

func digits(s string, n int) bool {
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

func luhn(s string) byte {
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

// OperatorSerial reports whether serial is an operator card's: 16 digits,
// distribution level 8 or 9.
func OperatorSerial(serial string) bool {
	return digits(serial, 16) && (serial[0] == '8' || serial[0] == '9')
}

// TEAM derives the 20-digit codice TEAM printed on the back of a card from
// its serial ("80380", the 5-digit region code, the 9-digit card id, a Luhn
// digit), or "" when the serial has none. It is the same derivation as the
// card stack's (drivers/cns), which this package may not import.
func TEAM(serial string) string {
	if !digits(serial, 16) || luhn(serial[:15]) != serial[15] {
		return ""
	}
	switch serial[0] {
	case '5', '6', '8', '9':
	default:
		return ""
	}
	s := "80380" + "00" + serial[1:4] + serial[4:13]
	return s + string(luhn(s))
}

// ValidTEAM reports whether team is well formed as a codice TEAM: 20
// digits, "80380" first, the Luhn check digit over the first 19 last. A
// totem checks a typed code with it before asking the CMS.
func ValidTEAM(team string) bool {
	return digits(team, 20) && team[:5] == "80380" && luhn(team[:19]) == team[19]
}

var (
	cfOdd = [36]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
		1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23} // A-Z
	// Positions (0-based) that are digits, or their omocodia letters.
	cfDigitPos = [...]int{6, 7, 9, 10, 12, 13, 14}
)

const cfOmocodia = "LMNPQRSTUV"

// ValidCF reports whether cf is a well-formed codice fiscale of a person
// (omocodia included) with the right check character.
func ValidCF(cf string) bool {
	if len(cf) != 16 {
		return false
	}
	isDigitPos := func(i int) bool {
		for _, p := range cfDigitPos {
			if p == i {
				return true
			}
		}
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
