package refcms

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aslcns/totem/cms"
	"github.com/aslcns/totem/cms/cmsstore"
	bolt "go.etcd.io/bbolt"
)

// Copied counts what CopyBolt moved.
type Copied struct {
	Ops, Audit, SendLog, Totems, Cards int
}

// CopyBolt reads the bbolt CMS at path (a hub's cms.db, the hub stopped:
// it holds the file's lock) and hands all of it to dst: the records, the
// operations with their protocol numbers and outcomes, the ledger, the
// numbering series, the audit and the send log in their order (totemhub
// migrate --from-bbolt).
func CopyBolt(path string, dst cmsstore.Loader) (Copied, error) {
	var n Copied
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return n, fmt.Errorf("refcms: %s (is its hub stopped?): %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%s: no bucket %q: not a CMS store, or one no hub of this version has opened yet", path, b)
			}
		}
		for _, step := range []func(*bolt.Tx, cmsstore.Loader, *Copied) error{copyRecords, copyFrame, copyLog} {
			if err := step(tx, dst, &n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("refcms: copy %s: %w", path, err)
	}
	return n, nil
}

// eachJSON calls fn with every record of bucket b decoded into a new T.
func eachJSON[T any](tx *bolt.Tx, b []byte, fn func(k []byte, v *T) error) error {
	return tx.Bucket(b).ForEach(func(k, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s %x: %w", b, k, err)
		}
		return fn(k, v)
	})
}

func copyRecords(tx *bolt.Tx, dst cmsstore.Loader, n *Copied) error {
	err := eachJSON(tx, bCards, func(_ []byte, c *cms.Card) error { n.Cards++; return dst.PutCard(*c) })
	if err != nil {
		return err
	}
	err = eachJSON(tx, bConsents, func(k []byte, cur *ConsentRecord) error {
		var prev ConsentRecord
		if raw := tx.Bucket(bConsentsPrev).Get(k); raw != nil {
			if err := json.Unmarshal(raw, &prev); err != nil {
				return fmt.Errorf("previous consents %x: %w", k, err)
			}
			if err := dst.PushConsent(string(k), prev); err != nil {
				return err
			}
		}
		return dst.PushConsent(string(k), *cur)
	})
	if err != nil {
		return err
	}
	err = eachJSON(tx, bHistory, func(k []byte, e *cms.HistoryEvent) error {
		serial, _, _ := bytes.Cut(k, []byte{0})
		return dst.AppendHistory(string(serial), *e)
	})
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error {
			return eachJSON(tx, bNotify, func(_ []byte, v *Notification) error { return dst.AppendNotification(*v) })
		},
		func() error {
			return eachJSON(tx, bPayments, func(k []byte, v *PaymentRecord) error { return dst.PutPayment(string(k), *v) })
		},
		func() error {
			return eachJSON(tx, bReissue, func(_ []byte, v *ReissueRecord) error { return dst.PutReissue(*v) })
		},
		func() error {
			return eachJSON(tx, bFSE, func(_ []byte, v *FSERecord) error { return dst.PutFSE(*v) })
		},
		func() error {
			return eachJSON(tx, bTickets, func(k []byte, v *Ticket) error { return dst.PutTicket(binary.BigEndian.Uint64(k), *v) })
		},
		func() error {
			return eachJSON(tx, bRefunds, func(k []byte, v *RefundRecord) error {
				totem, ref, _ := bytes.Cut(k, []byte{0})
				return dst.PutRefund(string(totem), string(ref), *v)
			})
		},
		func() error {
			return tx.Bucket(bCIPFail).ForEach(func(k, v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("cipfail %x: %d bytes", k, len(v))
				}
				return dst.SetCIPFailures(string(k), int(binary.BigEndian.Uint64(v)))
			})
		},
		func() error {
			return tx.Bucket(bMeta).ForEach(func(k, v []byte) error { return dst.PutMeta(string(k), bytes.Clone(v)) })
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// copyFrame copies the operations, the ledger and the numbering series.
func copyFrame(tx *bolt.Tx, dst cmsstore.Loader, n *Copied) error {
	err := eachJSON(tx, bOps, func(k []byte, rec *opRecord) error {
		id := k
		if totem, rest, ok := bytes.Cut(k, []byte{0}); ok {
			if string(totem) != rec.Totem {
				return fmt.Errorf("op %x: record of totem %q", k, rec.Totem)
			}
			id = rest
		} // else a record of an older version, under the op id alone
		n.Ops++
		return dst.PutOp(string(id), *rec)
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bLedger).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("ledger %q: %d bytes", k, len(v))
		}
		n.Totems++
		return dst.SetLedger(string(k), binary.BigEndian.Uint64(v))
	})
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"protocol": bProtocol, "queries": bQueries, "tickets": bTickets} {
		if err := dst.SetCounter(name, tx.Bucket(b).Sequence()); err != nil {
			return err
		}
	}
	return nil
}

// copyLog copies the audit and the send log merged in their one order
// (their keys come from one sequence, the audit bucket's).
func copyLog(tx *bolt.Tx, dst cmsstore.Loader, n *Copied) error {
	ac, sc := tx.Bucket(bAudit).Cursor(), tx.Bucket(bSendLog).Cursor()
	ak, av := ac.First()
	sk, sv := sc.First()
	for ak != nil || sk != nil {
		if sk == nil || (ak != nil && bytes.Compare(ak, sk) < 0) {
			var a AuditRecord
			if err := json.Unmarshal(av, &a); err != nil {
				return fmt.Errorf("audit %x: %w", ak, err)
			}
			if err := dst.PutAudit(a); err != nil {
				return err
			}
			n.Audit++
			ak, av = ac.Next()
			continue
		}
		var t cms.Transmission
		if err := json.Unmarshal(sv, &t); err != nil {
			return fmt.Errorf("send log %x: %w", sk, err)
		}
		if err := dst.PutSendLog(t, classOf(&t), uint64(t.Repeats)); err != nil {
			return err
		}
		n.SendLog++
		sk, sv = sc.Next()
	}
	return nil
}
