//go:build !cgo || !pcsc

package pcsc

import (
	"context"
	"fmt"

	"github.com/aslcns/totem/hal"
)

// Reader is unavailable in this build.
type Reader struct{}

var _ hal.CardReader = (*Reader)(nil)

// Available reports whether this build has PC/SC support.
const Available = false

// Open returns ErrUnavailable: this build has no PC/SC support.
func Open(ctx context.Context, o Options) (*Reader, error) {
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, hal.ErrNoReader)
}

// Readers returns ErrUnavailable.
func (r *Reader) Readers() ([]string, error) { return nil, ErrUnavailable }

// Next returns ErrUnavailable.
func (r *Reader) Next(ctx context.Context) (hal.CardEvent, error) {
	return hal.CardEvent{}, ErrUnavailable
}

// Connect returns ErrUnavailable.
func (r *Reader) Connect(ctx context.Context) (hal.Card, error) { return nil, ErrUnavailable }

// Close does nothing.
func (r *Reader) Close() error { return nil }

// Healthy reports false: there is no PC/SC support in this build.
func (r *Reader) Healthy() bool { return false }
