package screens

// The CMS's refusals as the citizen reads them: the hub sends a code
// (cms.Code*) with an Italian message for logs; the panel and the receipt
// say the catalogue's text for the code, in the session's language. A code
// the catalogue does not know reads as "reject_unknown", never as itself.
// The texts are catalogue.toml's [rejections]; a test checks every code
// cms declares is there.

// Rejection is the text, in l, of the CMS's refusal code.
func (l Lang) Rejection(code string) string {
	if t, ok := rejections[code]; ok {
		return t[l]
	}
	return rejectUnknown[l]
}
