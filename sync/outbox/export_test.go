package outbox

import bolt "go.etcd.io/bbolt"

// Commits returns how many transactions the committer committed.
func Commits(o *Outbox) int64 { return o.commits.Load() }

// Queued returns how many requests wait for the committer.
func Queued(o *Outbox) int { return len(o.reqs) }

// Do submits fn to the committer like any write.
func Do(o *Outbox, fn func(tx *bolt.Tx) error) error {
	return o.do(func(tx *bolt.Tx, _ *batch) error { return fn(tx) })
}
