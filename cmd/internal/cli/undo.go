package cli

// Undo is what a program's wiring steps register to undo themselves
// (close a store, stop a loop), run in reverse order by Run, as the
// defers of one long function would.
type Undo struct{ fs []func() }

// Push registers f to run before everything pushed earlier.
func (u *Undo) Push(f func()) { u.fs = append(u.fs, f) }

// Run runs what was pushed, the last first, and forgets it.
func (u *Undo) Run() {
	for i := len(u.fs) - 1; i >= 0; i-- {
		u.fs[i]()
	}
	u.fs = nil
}
