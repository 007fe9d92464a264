package cns

import "github.com/aslcns/totem/hal"

// ATR is a parsed Answer To Reset.
type ATR struct {
	Raw        []byte
	Historical []byte
}

// ParseATR extracts the historical bytes of an ATR. It never fails: a
// malformed ATR has no historical bytes.
func ParseATR(b []byte) ATR {
	a := ATR{Raw: b}
	if len(b) < 2 {
		return a
	}
	k := int(b[1] & 0x0F)
	y := b[1] >> 4
	i := 2
	for {
		for bit := byte(1); bit <= 8; bit <<= 1 {
			if y&bit != 0 {
				i++
			}
		}
		if y&0x8 == 0 {
			break
		}
		if i-1 >= len(b) {
			return a
		}
		y = b[i-1] >> 4
	}
	if i+k > len(b) {
		return a
	}
	a.Historical = b[i : i+k]
	return a
}

// CNS reports whether the historical bytes carry 'C”N”S' at H10–H12.
func (a ATR) CNS() bool {
	h := a.Historical
	return len(h) >= 12 && h[9] == 'C' && h[10] == 'N' && h[11] == 'S'
}

// Contactless reports whether the ATR is a PC/SC contactless one
// (3B 8n 80 01 …).
func (a ATR) Contactless() bool {
	b := a.Raw
	return len(b) >= 4 && b[0] == 0x3B && b[1]&0xF0 == 0x80 && b[2] == 0x80 && b[3] == 0x01
}

// MaskMaker is historical byte H4 (05 Oberthur/IDEMIA, 08 Siemens/Infineon,
// 09 STIncard, 0C Athena, 04 G&D), or 0 when the ATR is not a CNS one.
func (a ATR) MaskMaker() byte {
	if !a.CNS() {
		return 0
	}
	return a.Historical[3]
}

// STIncard reports whether the mask is STIncard's (H4 = 09), which wants
// P2 = 0x90 on PIN commands.
func (a ATR) STIncard() bool { return a.MaskMaker() == 0x09 }

// Class is what the ATR alone says: ClassCNS, ClassContactless or
// ClassUnknown (to be probed). Operator cards and CIEs are told apart only
// by reading the chip.
func (a ATR) Class() hal.CardClass {
	switch {
	case a.CNS():
		return hal.ClassCNS
	case a.Contactless():
		return hal.ClassContactless
	}
	return hal.ClassUnknown
}
