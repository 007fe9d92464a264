package cms

// Subject is what a request about one card names: the card (by its
// reference or, where the request allows it, by a TEAM code typed), the
// channel and the operator at a counter. A backend loads the card and
// records the outcome from it, whatever the kind.
type Subject struct {
	Card     CardRef
	TEAM     string
	Channel  string
	Operator string
}

// Subject is the card, channel and operator of a consent.
func (r *ConsentRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card, channel and operator of an activation.
func (r *ActivationRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card, channel and operator of a reprint.
func (r *ReprintRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card (or TEAM code), channel and operator of a revocation.
func (r *RevocationRequest) Subject() Subject { return Subject{r.Card, r.TEAM, r.Channel, r.Operator} }

// Subject is the card, channel and operator of a reader request.
func (r *ReaderRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card, channel and operator of a history request.
func (r *HistoryRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card and channel of a PIN event (no operator: it is done
// on the chip by the holder).
func (r *PINEvent) Subject() Subject { return Subject{r.Card, "", r.Channel, ""} }

// Subject is the card, channel and operator of a reissue.
func (r *ReissueRequest) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }

// Subject is the card (or TEAM code), channel and operator of a lookup.
func (r *LookupRequest) Subject() Subject { return Subject{r.Card, r.TEAM, r.Channel, r.Operator} }

// Subject is the card, channel and operator of a wrong-data report.
func (r *WrongDataReport) Subject() Subject { return Subject{r.Card, "", r.Channel, r.Operator} }
