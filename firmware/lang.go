package firmware

import "github.com/aslcns/totem/firmware/screens"

// Lang is a catalogue language (firmware/screens holds the catalogue).
type Lang = screens.Lang

// Languages.
const (
	IT = screens.IT
	EN = screens.EN
)

// ParseLang maps "it"/"en" to a Lang (Italian for anything else).
func ParseLang(s string) Lang { return screens.ParseLang(s) }
