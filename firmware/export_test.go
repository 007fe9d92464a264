package firmware

// KeysQueued is how many keys the feeds handed the session loop that it
// has not taken yet: a test that must know the loop has a key (before it
// looks at what the key did not do) waits for 0.
func (a *App) KeysQueued() int { return len(a.keys) }
