// Package strictjson decodes JSON that comes from outside the process (a
// peer's message, a signed file handed on) the one strict way: a size
// bound checked before anything is read, unknown members refused, and
// nothing after the value but white space. Its errors say what is wrong,
// never what the input holds (a name, a code): callers log them.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Decode decodes b, at most max bytes, into a new T. The errors are not
// wrapped: the caller says what it was decoding (its own sentinel).
func Decode[T any](b []byte, max int) (*T, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), max)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("malformed JSON (%d bytes)", len(b))
	}
	// Token, not More: More is false before a '}' or a ']', which would
	// let one through after the value.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

// DecodeChecked is Decode, its error wrapped in invalid (the caller's
// sentinel), then check, the type's own checks of the value decoded,
// whose error is returned as it is.
func DecodeChecked[T any](b []byte, max int, invalid error, check func(*T) error) (*T, error) {
	v, err := Decode[T](b, max)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", invalid, err)
	}
	if err := check(v); err != nil {
		return nil, err
	}
	return v, nil
}
