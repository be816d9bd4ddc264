package redis

import "encoding/json"

// unackedRecord is an unacked hash value decoded: Kombu's JSON array
// [envelope, exchange, routing_key].
type unackedRecord struct {
	env    []byte // the envelope's bytes
	ex, rk string
}

// parseRecord decodes an unacked hash value. A string first element holds
// the bytes of a message that was not JSON (the scripts record such a
// message as a JSON string, so that the record stays JSON).
func parseRecord(raw []byte) (unackedRecord, bool) {
	var rec []json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec) < 3 {
		return unackedRecord{}, false
	}
	var r unackedRecord
	json.Unmarshal(rec[1], &r.ex)
	json.Unmarshal(rec[2], &r.rk)
	r.env = []byte(rec[0])
	var s string
	if len(r.env) > 0 && r.env[0] == '"' && json.Unmarshal(r.env, &s) == nil {
		r.env = []byte(s)
	}
	return r, true
}
