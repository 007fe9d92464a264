package uplink

// signal wakes a loop: capacity 1, a notification while one is pending
// adds nothing.
type signal chan struct{}

// notify wakes the loop without waiting.
func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}
