//go:build !linux

package outbox

// dropCache does nothing where page-cache folios are not a concern.
func dropCache(string) {}
